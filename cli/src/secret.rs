//! The embedded default may run without `SECRET_KEY`: it makes one, says so
//! loudly, and keeps it in a file next to the database so that a restart can
//! still decrypt what was stored. Production refuses to start without one
//! (see `Config`).

use anyhow::Context;
use paygate_common::crypto::generate_secret;
use std::path::PathBuf;

/// Where the generated key lives: `<database file stem>.secret` beside it.
fn secret_path(database_url: &str) -> Option<PathBuf> {
    let path = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    Some(PathBuf::from(path).with_extension("secret"))
}

pub fn resolve(configured: Option<String>, database_url: &str) -> anyhow::Result<String> {
    if let Some(s) = configured {
        return Ok(s);
    }
    let Some(path) = secret_path(database_url) else {
        tracing::warn!(
            "SECRET_KEY is not set and the database is in memory: using a throwaway key"
        );
        return Ok(generate_secret());
    };
    if path.exists() {
        let s = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let s = s.trim().to_string();
        if s.is_empty() {
            anyhow::bail!("{} is empty; delete it or set SECRET_KEY", path.display());
        }
        tracing::warn!(file = %path.display(), "SECRET_KEY is not set: using the generated key kept beside the database");
        return Ok(s);
    }
    let s = generate_secret();
    write_private(&path, &s).with_context(|| format!("writing {}", path.display()))?;
    tracing::warn!(file = %path.display(),
        "SECRET_KEY is not set: generated one and saved it beside the database. \
         Set SECRET_KEY (and keep this file) before storing real payer data");
    Ok(s)
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_sits_beside_the_database() {
        assert_eq!(
            secret_path("sqlite://paygate.db"),
            Some(PathBuf::from("paygate.secret"))
        );
        assert_eq!(
            secret_path("sqlite:///var/lib/pg/x.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/pg/x.secret"))
        );
        assert_eq!(secret_path("sqlite::memory:"), None);
        assert_eq!(secret_path("postgres://x"), None);
    }
}
