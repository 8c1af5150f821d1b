//! The notification settings (`PAYGATE_WEBHOOK_*`), read and checked at start-up.

use super::signing::Secret;
use crate::config::{ConfigError, Env};
use std::time::Duration;

/// Svix's schedule after the first, immediate attempt: 5 s, 5 min, 30 min,
/// 2 h, 5 h, 10 h, 10 h (about 28 h in all).
pub const DEFAULT_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The zero-setup endpoint (`PAYGATE_WEBHOOK_URL` + `PAYGATE_WEBHOOK_SECRET`).
    pub config_endpoint: Option<ConfigEndpoint>,
    /// Delays before the 2nd, 3rd, … attempt; the first is immediate. A
    /// message still undelivered after the last one has failed.
    pub retry_schedule: Vec<Duration>,
    /// One delivery's whole HTTP exchange.
    pub timeout: Duration,
    /// Deliveries in flight at once in one worker process (their own lane,
    /// see docs/notifications.md).
    pub concurrency: usize,
    /// How long a rotated-out secret still signs (beside the new one).
    pub rotation_grace: Duration,
}

impl Default for WebhookSettings {
    /// What `load` gives with nothing set (for a 64-slot worker).
    fn default() -> Self {
        WebhookSettings {
            config_endpoint: None,
            retry_schedule: parse_schedule(DEFAULT_SCHEDULE).unwrap_or_default(),
            timeout: Duration::from_secs(15),
            concurrency: 16,
            rotation_grace: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConfigEndpoint {
    pub url: String,
    pub secret: Secret,
}

fn err(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// `250ms`, `5s`, `5m`, `2h`. Hand-written: the only duration syntax paygate
/// reads, and not worth a dependency (humantime is not in the tree).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    Some(Duration::from_millis(n.checked_mul(ms)?))
}

pub fn parse_schedule(text: &str) -> Option<Vec<Duration>> {
    text.split(',')
        .map(parse_duration)
        .collect::<Option<Vec<_>>>()
        .filter(|s| s.len() <= 50)
}

fn duration(env: &Env<'_>, var: &'static str, default: &str) -> Result<Duration, ConfigError> {
    let text = env.text_var(var).unwrap_or_else(|| default.to_string());
    parse_duration(&text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            err(
                var,
                format!("expected a duration like 15s or 250ms, got {text:?}"),
            )
        })
}

pub fn load(env: &Env<'_>, worker_concurrency: usize) -> Result<WebhookSettings, ConfigError> {
    let url = env.text_var("PAYGATE_WEBHOOK_URL");
    let secret = env.text_var("PAYGATE_WEBHOOK_SECRET");
    let config_endpoint =
        match (url, secret) {
            (None, None) => None,
            (Some(_), None) => return Err(err(
                "PAYGATE_WEBHOOK_SECRET",
                "required with PAYGATE_WEBHOOK_URL (whsec_ followed by base64 of 24 to 64 bytes)",
            )),
            (None, Some(_)) => {
                return Err(err(
                    "PAYGATE_WEBHOOK_URL",
                    "required with PAYGATE_WEBHOOK_SECRET",
                ))
            }
            (Some(url), Some(secret)) => Some(ConfigEndpoint {
                url: super::check_url(&url).map_err(|m| err("PAYGATE_WEBHOOK_URL", m))?,
                secret: Secret::parse(&secret)
                    .map_err(|e| err("PAYGATE_WEBHOOK_SECRET", e.to_string()))?,
            }),
        };
    let schedule_text = env
        .text_var("PAYGATE_WEBHOOK_RETRY_SCHEDULE")
        .unwrap_or_else(|| DEFAULT_SCHEDULE.to_string());
    let retry_schedule = parse_schedule(&schedule_text).ok_or_else(|| {
        err(
            "PAYGATE_WEBHOOK_RETRY_SCHEDULE",
            "a comma-separated list of up to 50 delays like 5s,5m,2h",
        )
    })?;
    // A quarter of the worker's slots by default: payments keep the rest.
    let default_concurrency = (worker_concurrency / 4).max(1);
    let concurrency: usize = env.parse_var("PAYGATE_WEBHOOK_CONCURRENCY", default_concurrency)?;
    if concurrency == 0 || concurrency >= worker_concurrency.max(2) {
        return Err(err(
            "PAYGATE_WEBHOOK_CONCURRENCY",
            "must be at least 1 and below PAYGATE_WORKER_CONCURRENCY (payments need the rest)",
        ));
    }
    Ok(WebhookSettings {
        config_endpoint,
        retry_schedule,
        timeout: duration(env, "PAYGATE_WEBHOOK_TIMEOUT", "15s")?,
        concurrency,
        rotation_grace: duration(env, "PAYGATE_WEBHOOK_ROTATION_GRACE", "24h")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(vars: &[(&str, &str)]) -> Result<WebhookSettings, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        load(&Env::new(&get), 64)
    }

    #[test]
    fn durations_and_schedules_parse() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("10h"), Some(Duration::from_secs(36_000)));
        for bad in ["", "5", "s", "1.5s", "-1s", "5d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        let s = parse_schedule(DEFAULT_SCHEDULE).unwrap();
        assert_eq!(s.len(), 7);
        let total: Duration = s.iter().sum();
        assert!(total > Duration::from_secs(20 * 3600) && total < Duration::from_secs(30 * 3600));
    }

    #[test]
    fn defaults_and_errors_name_the_variable() {
        let s = load_with(&[]).unwrap();
        assert!(s.config_endpoint.is_none());
        let d = WebhookSettings::default();
        assert_eq!(
            (s.retry_schedule, s.timeout, s.concurrency, s.rotation_grace),
            (d.retry_schedule, d.timeout, d.concurrency, d.rotation_grace)
        );
        let s = load_with(&[]).unwrap();
        assert_eq!(s.concurrency, 16);
        assert_eq!(s.timeout, Duration::from_secs(15));
        let e = load_with(&[("PAYGATE_WEBHOOK_URL", "https://shop.example/hooks")]).unwrap_err();
        assert_eq!(e.var, "PAYGATE_WEBHOOK_SECRET");
        let e = load_with(&[
            ("PAYGATE_WEBHOOK_URL", "ftp://shop.example"),
            (
                "PAYGATE_WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
        ])
        .unwrap_err();
        assert_eq!(e.var, "PAYGATE_WEBHOOK_URL");
        let e = load_with(&[("PAYGATE_WEBHOOK_RETRY_SCHEDULE", "5s,soon")]).unwrap_err();
        assert_eq!(e.var, "PAYGATE_WEBHOOK_RETRY_SCHEDULE");
        let e = load_with(&[("PAYGATE_WEBHOOK_CONCURRENCY", "64")]).unwrap_err();
        assert_eq!(e.var, "PAYGATE_WEBHOOK_CONCURRENCY");
        let ok = load_with(&[
            ("PAYGATE_WEBHOOK_URL", "https://shop.example/hooks"),
            (
                "PAYGATE_WEBHOOK_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
        ])
        .unwrap();
        assert_eq!(
            ok.config_endpoint.unwrap().url,
            "https://shop.example/hooks"
        );
    }
}
