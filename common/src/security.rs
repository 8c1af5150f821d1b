//! Settings that protect paygate from hostile or careless clients: HTTP
//! timeouts and limits, the rate limit on creating routes, trusted proxies,
//! per-gateway source allowlists and the `user_identifier` pattern. Read with
//! the rest of the configuration; a bad value stops start-up naming it.

use crate::config::{ConfigError, Env};
use ipnet::IpNet;
use std::time::Duration;

/// Payme calls merchants only from these (docs/gateways/payme.md, "Source addresses").
pub const PAYME_PRODUCTION_SOURCES: &[&str] = &["185.234.113.0/28"];
/// Click's addresses as one integrator lists them (docs/gateways/click.md, "Source addresses").
pub const CLICK_PRODUCTION_SOURCES: &[&str] =
    &["185.8.212.176/29", "185.8.212.184/31", "185.8.212.186/32"];

/// The seed's user identifier: an Iranian mobile number, `09` and nine digits.
pub const DEFAULT_USER_IDENTIFIER_PATTERN: &str = "^09[0-9]{9}$";

#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// A request line and headers must arrive within this.
    pub header_timeout: Duration,
    /// A whole request body must arrive within this.
    pub body_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// Connections past this are closed at once.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 2048,
        }
    }
}

/// Tokens per client address on the creating routes; `None` is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Who may call a gateway's callback route. An empty list lets anyone.
#[derive(Debug, Clone, Default)]
pub struct SourceAllowlists {
    pub medogram: Vec<IpNet>,
    pub atmos: Vec<IpNet>,
    pub payme: Vec<IpNet>,
    pub click: Vec<IpNet>,
}

impl SourceAllowlists {
    /// The list guarding `provider`'s inbound routes.
    pub fn for_provider(&self, provider: crate::domain::Provider) -> &[IpNet] {
        use crate::domain::Provider;
        match provider {
            Provider::Medogram => &self.medogram,
            Provider::Atmos => &self.atmos,
            Provider::Payme => &self.payme,
            Provider::Click => &self.click,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SecuritySettings {
    pub http: HttpLimits,
    pub rate_limit: Option<RateLimit>,
    /// How many reverse proxies in front of paygate append to `X-Forwarded-For`.
    pub trusted_proxies: usize,
    pub allowlists: SourceAllowlists,
    pub user_identifier_pattern: regex::Regex,
    /// Key the simulators' control endpoints (`_config`, `_stats`, `_reset`,
    /// user registration) accept besides an admin API key.
    pub sandbox_admin_key: Option<String>,
    /// Let the simulators send payers to any http(s) return link, not only
    /// to `PAYGATE_PUBLIC_URL`.
    pub sandbox_any_return_link: bool,
    /// Leave the control endpoints open (tests and benchmarks only; the
    /// simulators are never mounted in production anyway).
    pub sandbox_open_control: bool,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            http: HttpLimits::default(),
            rate_limit: Some(RateLimit {
                per_second: 20,
                burst: 100,
            }),
            trusted_proxies: 0,
            allowlists: SourceAllowlists::default(),
            user_identifier_pattern: regex::Regex::new(DEFAULT_USER_IDENTIFIER_PATTERN)
                .expect("literal pattern"),
            sandbox_admin_key: None,
            sandbox_any_return_link: false,
            sandbox_open_control: false,
        }
    }
}

fn err(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// `off`/empty: nobody is filtered; `production`: the gateway's published
/// addresses; otherwise a comma-separated list of CIDRs or single addresses.
pub fn parse_allowlist(
    var: &'static str,
    value: Option<&str>,
    production: &[&str],
) -> Result<Vec<IpNet>, ConfigError> {
    let value = match value.map(str::trim) {
        None | Some("") | Some("off") => return Ok(Vec::new()),
        Some("production") if !production.is_empty() => production.join(","),
        Some("production") => {
            return Err(err(var, "this gateway publishes no addresses; list them"))
        }
        Some(v) => v.to_string(),
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| err(var, format!("{item:?} is not an address or CIDR")))
        })
        .collect()
}

fn positive_ms(
    env: &Env<'_>,
    var: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let ms: u64 = env.parse_var(var, default.as_millis() as u64)?;
    if ms == 0 {
        return Err(err(var, "must be at least 1"));
    }
    Ok(Duration::from_millis(ms))
}

pub fn load(env: &Env<'_>) -> Result<SecuritySettings, ConfigError> {
    let d = SecuritySettings::default();
    let http = HttpLimits {
        header_timeout: positive_ms(env, "PAYGATE_HTTP_HEADER_TIMEOUT_MS", d.http.header_timeout)?,
        body_timeout: positive_ms(env, "PAYGATE_HTTP_BODY_TIMEOUT_MS", d.http.body_timeout)?,
        idle_timeout: positive_ms(env, "PAYGATE_HTTP_IDLE_TIMEOUT_MS", d.http.idle_timeout)?,
        max_connections: env.parse_var("PAYGATE_HTTP_MAX_CONNECTIONS", d.http.max_connections)?,
    };
    if http.max_connections == 0 {
        return Err(err("PAYGATE_HTTP_MAX_CONNECTIONS", "must be at least 1"));
    }
    let default_rate = d.rate_limit.expect("on by default");
    let per_second: u32 = env.parse_var("PAYGATE_RATE_LIMIT_PER_SEC", default_rate.per_second)?;
    let burst: u32 = env.parse_var(
        "PAYGATE_RATE_LIMIT_BURST",
        default_rate.burst.max(per_second),
    )?;
    let rate_limit = match (per_second, burst) {
        (0, _) => None,
        (_, 0) => return Err(err("PAYGATE_RATE_LIMIT_BURST", "must be at least 1")),
        (per_second, burst) => Some(RateLimit { per_second, burst }),
    };
    let allowlists = SourceAllowlists {
        medogram: parse_allowlist(
            "PAYGATE_ALLOW_MEDOGRAM",
            env.text_var("PAYGATE_ALLOW_MEDOGRAM").as_deref(),
            &[],
        )?,
        atmos: parse_allowlist(
            "PAYGATE_ALLOW_ATMOS",
            env.text_var("PAYGATE_ALLOW_ATMOS").as_deref(),
            &[],
        )?,
        payme: parse_allowlist(
            "PAYGATE_ALLOW_PAYME",
            env.text_var("PAYGATE_ALLOW_PAYME").as_deref(),
            PAYME_PRODUCTION_SOURCES,
        )?,
        click: parse_allowlist(
            "PAYGATE_ALLOW_CLICK",
            env.text_var("PAYGATE_ALLOW_CLICK").as_deref(),
            CLICK_PRODUCTION_SOURCES,
        )?,
    };
    let pattern = env
        .text_var("PAYGATE_USER_IDENTIFIER_PATTERN")
        .unwrap_or_else(|| DEFAULT_USER_IDENTIFIER_PATTERN.to_string());
    let user_identifier_pattern = regex::Regex::new(&pattern).map_err(|e| {
        err(
            "PAYGATE_USER_IDENTIFIER_PATTERN",
            format!("not a regular expression: {e}"),
        )
    })?;
    Ok(SecuritySettings {
        http,
        rate_limit,
        trusted_proxies: env.parse_var("PAYGATE_TRUSTED_PROXIES", 0usize)?,
        allowlists,
        user_identifier_pattern,
        sandbox_admin_key: env.text_var("PAYGATE_SANDBOX_ADMIN_KEY"),
        sandbox_any_return_link: env.flag_var("PAYGATE_SANDBOX_ANY_RETURN_LINK", false)?,
        sandbox_open_control: env.flag_var("PAYGATE_SANDBOX_OPEN_CONTROL", false)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load_with(vars: &[(&str, &str)]) -> Result<SecuritySettings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = move |k: &str| map.get(k).cloned();
        load(&Env::new(&get))
    }

    #[test]
    fn defaults_are_on_and_sane() {
        let s = load_with(&[]).unwrap();
        assert_eq!(
            s.rate_limit,
            Some(RateLimit {
                per_second: 20,
                burst: 100
            })
        );
        assert!(s.allowlists.payme.is_empty() && s.allowlists.click.is_empty());
        assert!(s.user_identifier_pattern.is_match("09123456789"));
        assert!(!s.user_identifier_pattern.is_match(".."));
        assert_eq!(s.trusted_proxies, 0);
    }

    #[test]
    fn production_allowlists_cover_the_published_addresses() {
        let s = load_with(&[
            ("PAYGATE_ALLOW_PAYME", "production"),
            ("PAYGATE_ALLOW_CLICK", "production"),
        ])
        .unwrap();
        let has = |list: &[IpNet], ip: &str| {
            list.iter()
                .any(|n| n.contains(&ip.parse::<std::net::IpAddr>().unwrap()))
        };
        for i in 1..=15 {
            assert!(has(&s.allowlists.payme, &format!("185.234.113.{i}")));
        }
        assert!(!has(&s.allowlists.payme, "185.234.113.16"));
        for i in 176..=186 {
            assert!(has(&s.allowlists.click, &format!("185.8.212.{i}")), "{i}");
        }
        assert!(!has(&s.allowlists.click, "185.8.212.187"));
        assert!(!has(&s.allowlists.click, "185.8.212.175"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("PAYGATE_ALLOW_ATMOS", "10.0.0.0/33"),
            ("PAYGATE_ALLOW_MEDOGRAM", "production"),
            ("PAYGATE_USER_IDENTIFIER_PATTERN", "(("),
            ("PAYGATE_HTTP_HEADER_TIMEOUT_MS", "0"),
            ("PAYGATE_HTTP_MAX_CONNECTIONS", "many"),
            ("PAYGATE_RATE_LIMIT_BURST", "0"),
        ] {
            let e = load_with(&[(var, value)]).unwrap_err();
            assert_eq!(e.var, var, "{value}");
        }
        assert!(load_with(&[("PAYGATE_RATE_LIMIT_PER_SEC", "0")])
            .unwrap()
            .rate_limit
            .is_none());
    }
}
