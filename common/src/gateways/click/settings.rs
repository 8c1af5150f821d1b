//! Click settings from `CLICK_*` variables (the names issue 13 fixes):
//!
//! | Variable | Meaning |
//! |---|---|
//! | `CLICK_SERVICE_ID` | Our service id (digits). Setting it switches from the simulator to real Click and makes `CLICK_MERCHANT_ID` and `CLICK_SECRET_KEY` required. |
//! | `CLICK_MERCHANT_ID` | Our merchant id (digits), for the pay link. |
//! | `CLICK_SECRET_KEY` | Signs Prepare/Complete and the Merchant API `Auth` digest. |
//! | `CLICK_MERCHANT_USER_ID` | Merchant API user (digits); without it refunds and status checks are unavailable. |
//! | `CLICK_CHECKOUT_URL` | Pay page, default `https://my.click.uz/services/pay`. |
//! | `CLICK_MERCHANT_API_URL` | Merchant API base, default `https://api.click.uz/v2/merchant`. |
//!
//! With none of the first four set and the built-in simulator mounted, every
//! value is the simulator's ([`SANDBOX_SERVICE_ID`] …, URLs under the
//! simulator's base). A bad value is one [`ConfigError`] naming the variable.

use super::merchant_api::MerchantApiConfig;
use crate::config::ConfigError;
use std::fmt;
use std::time::Duration;

pub const CHECKOUT_URL: &str = "https://my.click.uz/services/pay";
pub const MERCHANT_API_URL: &str = "https://api.click.uz/v2/merchant";

/// The built-in simulator's credentials; the simulator (which shares no code
/// with this client) keeps equal defaults, and a test holds them equal.
pub const SANDBOX_SERVICE_ID: i64 = 41001;
pub const SANDBOX_MERCHANT_ID: &str = "17001";
pub const SANDBOX_MERCHANT_USER_ID: &str = "30001";
pub const SANDBOX_SECRET_KEY: &str = "sandbox-click-secret-key";
/// Paths under the simulator's base (`{public_url}/sandbox/click`).
pub const SANDBOX_CHECKOUT_PATH: &str = "/services/pay";
pub const SANDBOX_MERCHANT_API_PATH: &str = "/v2/merchant";

#[derive(Clone, PartialEq, Eq)]
pub struct ClickSettings {
    pub service_id: i64,
    pub merchant_id: String,
    pub secret_key: String,
    pub merchant_user_id: Option<String>,
    pub checkout_url: String,
    pub merchant_api_url: String,
    /// True when these are the simulator's values.
    pub sandbox: bool,
}

impl fmt::Debug for ClickSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickSettings")
            .field("service_id", &self.service_id)
            .field("merchant_id", &self.merchant_id)
            .field("secret_key", &"<redacted>")
            .field("merchant_user_id", &self.merchant_user_id)
            .field("checkout_url", &self.checkout_url)
            .field("merchant_api_url", &self.merchant_api_url)
            .field("sandbox", &self.sandbox)
            .finish()
    }
}

fn err(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// Trimmed; empty counts as unset.
    fn text(&self, var: &str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn digits(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        match self.text(var) {
            Some(v) if !v.bytes().all(|b| b.is_ascii_digit()) => Err(err(var, "must be digits")),
            other => Ok(other),
        }
    }

    fn url(&self, var: &'static str, default: String) -> Result<String, ConfigError> {
        let Some(v) = self.text(var) else {
            return Ok(default);
        };
        let parsed = url::Url::parse(&v).map_err(|_| err(var, "not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(err(var, "must be an http:// or https:// URL"));
        }
        Ok(v)
    }
}

impl ClickSettings {
    /// Reads the settings through `lookup`. `sandbox_base` is the simulator's
    /// base URL when it is mounted (e.g. `http://127.0.0.1:8080/sandbox/click`).
    /// `Ok(None)`: Click is not configured (orders with payment_type click are refused).
    pub fn from_lookup(
        lookup: &dyn Fn(&str) -> Option<String>,
        sandbox_base: Option<&str>,
    ) -> Result<Option<ClickSettings>, ConfigError> {
        let vars = Vars(lookup);
        let service_id = vars.digits("CLICK_SERVICE_ID")?;
        let merchant_id = vars.digits("CLICK_MERCHANT_ID")?;
        let secret_key = vars.text("CLICK_SECRET_KEY");
        let merchant_user_id = vars.digits("CLICK_MERCHANT_USER_ID")?;
        let Some(service_id) = service_id else {
            for (var, set) in [
                ("CLICK_MERCHANT_ID", merchant_id.is_some()),
                ("CLICK_SECRET_KEY", secret_key.is_some()),
                ("CLICK_MERCHANT_USER_ID", merchant_user_id.is_some()),
            ] {
                if set {
                    return Err(err(
                        "CLICK_SERVICE_ID",
                        format!("required when {var} is set"),
                    ));
                }
            }
            let Some(base) = sandbox_base else {
                return Ok(None);
            };
            let base = base.trim_end_matches('/');
            return Ok(Some(ClickSettings {
                service_id: SANDBOX_SERVICE_ID,
                merchant_id: SANDBOX_MERCHANT_ID.to_owned(),
                secret_key: SANDBOX_SECRET_KEY.to_owned(),
                merchant_user_id: Some(SANDBOX_MERCHANT_USER_ID.to_owned()),
                checkout_url: vars.url(
                    "CLICK_CHECKOUT_URL",
                    format!("{base}{SANDBOX_CHECKOUT_PATH}"),
                )?,
                merchant_api_url: vars.url(
                    "CLICK_MERCHANT_API_URL",
                    format!("{base}{SANDBOX_MERCHANT_API_PATH}"),
                )?,
                sandbox: true,
            }));
        };
        let service_id: i64 = service_id
            .parse()
            .map_err(|_| err("CLICK_SERVICE_ID", "too large"))?;
        Ok(Some(ClickSettings {
            service_id,
            merchant_id: merchant_id
                .ok_or_else(|| err("CLICK_MERCHANT_ID", "required when CLICK_SERVICE_ID is set"))?,
            secret_key: secret_key
                .ok_or_else(|| err("CLICK_SECRET_KEY", "required when CLICK_SERVICE_ID is set"))?,
            merchant_user_id,
            checkout_url: vars.url("CLICK_CHECKOUT_URL", CHECKOUT_URL.to_owned())?,
            merchant_api_url: vars.url("CLICK_MERCHANT_API_URL", MERCHANT_API_URL.to_owned())?,
            sandbox: false,
        }))
    }

    /// The Merchant API client's settings; `None` without `CLICK_MERCHANT_USER_ID`.
    pub fn merchant_api(&self, timeout: Duration) -> Option<MerchantApiConfig> {
        Some(MerchantApiConfig {
            base_url: self.merchant_api_url.clone(),
            service_id: self.service_id,
            merchant_user_id: self.merchant_user_id.clone()?,
            secret_key: self.secret_key.clone(),
            timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(
        vars: &[(&str, &str)],
        sandbox: Option<&str>,
    ) -> Result<Option<ClickSettings>, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ClickSettings::from_lookup(&move |k| map.get(k).cloned(), sandbox)
    }

    #[test]
    fn nothing_set_means_off_or_the_simulator() {
        assert_eq!(load(&[], None).unwrap(), None);
        let s = load(&[], Some("http://127.0.0.1:8080/sandbox/click/"))
            .unwrap()
            .unwrap();
        assert!(s.sandbox);
        assert_eq!(s.service_id, SANDBOX_SERVICE_ID);
        assert_eq!(s.secret_key, SANDBOX_SECRET_KEY);
        assert_eq!(
            s.checkout_url,
            "http://127.0.0.1:8080/sandbox/click/services/pay"
        );
        assert_eq!(
            s.merchant_api_url,
            "http://127.0.0.1:8080/sandbox/click/v2/merchant"
        );
        let api = s.merchant_api(Duration::from_secs(5)).unwrap();
        assert_eq!(api.merchant_user_id, SANDBOX_MERCHANT_USER_ID);
    }

    #[test]
    fn real_click() {
        let s = load(
            &[
                ("CLICK_SERVICE_ID", " 12345 "),
                ("CLICK_MERCHANT_ID", "678"),
                ("CLICK_SECRET_KEY", "k"),
            ],
            Some("http://ignored"),
        )
        .unwrap()
        .unwrap();
        assert!(!s.sandbox);
        assert_eq!(s.service_id, 12345);
        assert_eq!(s.checkout_url, CHECKOUT_URL);
        assert_eq!(s.merchant_api_url, MERCHANT_API_URL);
        assert!(
            s.merchant_api(Duration::from_secs(5)).is_none(),
            "no merchant user"
        );
        assert!(!format!("{s:?}").contains("\"k\""), "secret redacted");
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("CLICK_SECRET_KEY", "k")], "CLICK_SERVICE_ID"),
            (&[("CLICK_MERCHANT_USER_ID", "1")], "CLICK_SERVICE_ID"),
            (&[("CLICK_SERVICE_ID", "12a")], "CLICK_SERVICE_ID"),
            (
                &[("CLICK_SERVICE_ID", "99999999999999999999")],
                "CLICK_SERVICE_ID",
            ),
            (
                &[("CLICK_SERVICE_ID", "1"), ("CLICK_SECRET_KEY", "k")],
                "CLICK_MERCHANT_ID",
            ),
            (
                &[("CLICK_SERVICE_ID", "1"), ("CLICK_MERCHANT_ID", "2")],
                "CLICK_SECRET_KEY",
            ),
            (
                &[
                    ("CLICK_SERVICE_ID", "1"),
                    ("CLICK_MERCHANT_ID", "2"),
                    ("CLICK_SECRET_KEY", "k"),
                    ("CLICK_MERCHANT_USER_ID", "u"),
                ],
                "CLICK_MERCHANT_USER_ID",
            ),
            (&[("CLICK_CHECKOUT_URL", "ftp://x")], "CLICK_CHECKOUT_URL"),
            (
                &[("CLICK_MERCHANT_API_URL", "nope")],
                "CLICK_MERCHANT_API_URL",
            ),
        ];
        for (vars, var) in cases {
            let e = load(vars, Some("http://127.0.0.1/sandbox/click")).unwrap_err();
            assert_eq!(e.var, *var, "{vars:?}: {e}");
            assert!(e.to_string().contains(var));
        }
    }

    #[test]
    fn overrides_apply_to_the_simulator_too() {
        let s = load(
            &[("CLICK_CHECKOUT_URL", "https://pay.example/p")],
            Some("http://127.0.0.1/sandbox/click"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.checkout_url, "https://pay.example/p");
    }

    #[test]
    fn simulator_defaults_match() {
        let sim = paygate_sandbox::ClickConfig::default();
        assert_eq!(sim.service_id, SANDBOX_SERVICE_ID.to_string());
        assert_eq!(sim.merchant_id, SANDBOX_MERCHANT_ID);
        assert_eq!(sim.merchant_user_id, SANDBOX_MERCHANT_USER_ID);
        assert_eq!(sim.secret_key, SANDBOX_SECRET_KEY);
    }
}
