//! How long a payment may wait for its payer before it expires
//! (`PAYGATE_PAYMENT_TTL`, overridable per gateway with
//! `PAYGATE_PAYMENT_TTL_<GATEWAY>`). Durations are written the humantime way
//! (`24h`, `90s`, `1h 30m`, `500ms`), which is what operators type; the
//! maintained `humantime` crate parses them rather than a hand-written parser.

use crate::config::{ConfigError, Env};
use crate::domain::Provider;
use std::collections::HashMap;
use std::time::Duration;

/// The default: a payer who has not paid within a day is not coming back.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentTtl {
    default: Duration,
    overrides: HashMap<Provider, Duration>,
}

impl Default for PaymentTtl {
    fn default() -> Self {
        PaymentTtl {
            default: DEFAULT_TTL,
            overrides: HashMap::new(),
        }
    }
}

/// The per-gateway variable (a `&'static str` so a configuration error can name it).
pub fn override_var(provider: Provider) -> &'static str {
    match provider {
        Provider::Medogram => "PAYGATE_PAYMENT_TTL_MEDOGRAM",
        Provider::Atmos => "PAYGATE_PAYMENT_TTL_ATMOS",
        Provider::Payme => "PAYGATE_PAYMENT_TTL_PAYME",
        Provider::Click => "PAYGATE_PAYMENT_TTL_CLICK",
    }
}

fn parse(env: &Env<'_>, var: &'static str) -> Result<Option<Duration>, ConfigError> {
    let Some(text) = env.text_var(var) else {
        return Ok(None);
    };
    let ttl = humantime::parse_duration(&text).map_err(|e| ConfigError {
        var,
        problem: format!("expected a duration such as 24h, 90s or 1h 30m, got {text:?} ({e})"),
    })?;
    if ttl.is_zero() {
        return Err(ConfigError {
            var,
            problem: "must be longer than zero".into(),
        });
    }
    Ok(Some(ttl))
}

impl PaymentTtl {
    pub fn load(env: &Env<'_>) -> Result<PaymentTtl, ConfigError> {
        let default = parse(env, "PAYGATE_PAYMENT_TTL")?.unwrap_or(DEFAULT_TTL);
        let mut overrides = HashMap::new();
        for provider in Provider::all() {
            if let Some(ttl) = parse(env, override_var(provider))? {
                overrides.insert(provider, ttl);
            }
        }
        Ok(PaymentTtl { default, overrides })
    }

    /// How long a `provider` payment may wait for its payer.
    pub fn for_provider(&self, provider: Provider) -> Duration {
        self.overrides
            .get(&provider)
            .copied()
            .unwrap_or(self.default)
    }

    /// The shortest time to live of any gateway: the expiry sweep runs often
    /// enough for it.
    pub fn shortest(&self) -> Duration {
        self.overrides
            .values()
            .copied()
            .fold(self.default, Duration::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<PaymentTtl, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = move |k: &str| map.get(k).cloned();
        PaymentTtl::load(&Env::new(&get))
    }

    #[test]
    fn a_day_by_default_and_per_gateway_overrides() {
        let t = load(&[]).unwrap();
        for p in Provider::all() {
            assert_eq!(t.for_provider(p), Duration::from_secs(86_400));
        }
        let t = load(&[
            ("PAYGATE_PAYMENT_TTL", "2h"),
            ("PAYGATE_PAYMENT_TTL_PAYME", "12h 30m"),
            ("PAYGATE_PAYMENT_TTL_ATMOS", "90s"),
        ])
        .unwrap();
        assert_eq!(
            t.for_provider(Provider::Medogram),
            Duration::from_secs(7200)
        );
        assert_eq!(
            t.for_provider(Provider::Payme),
            Duration::from_secs(12 * 3600 + 1800)
        );
        assert_eq!(t.for_provider(Provider::Atmos), Duration::from_secs(90));
        assert_eq!(t.shortest(), Duration::from_secs(90));
    }

    #[test]
    fn bad_values_name_their_variable() {
        let e = load(&[("PAYGATE_PAYMENT_TTL", "soon")]).unwrap_err();
        assert_eq!(e.var, "PAYGATE_PAYMENT_TTL");
        let e = load(&[("PAYGATE_PAYMENT_TTL_CLICK", "0s")]).unwrap_err();
        assert_eq!(e.var, "PAYGATE_PAYMENT_TTL_CLICK");
        // A bare number has no unit: refused rather than guessed.
        assert!(load(&[("PAYGATE_PAYMENT_TTL", "3600")]).is_err());
    }
}
