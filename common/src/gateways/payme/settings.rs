//! Payme settings from environment variables:
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | `PAYME_ID` | simulator's | Cashbox (merchant) id, the checkout's `m`. |
//! | `PAYME_KEY` | simulator's | Cashbox key; Payme authenticates as `Paycom:<key>`. |
//! | `PAYME_TEST_KEY` | — | The test cabinet's key, accepted as well. |
//! | `PAYME_ACCOUNT_FIELD` | `order_id` | The account field the cashbox is set up with. |
//! | `PAYME_TEST_MODE` | `false` | Test checkout (`https://test.paycom.uz`) instead of `https://checkout.paycom.uz`. |
//! | `PAYME_CHECKOUT_URL` | by test mode | Checkout host override. |
//!
//! `PAYME_ID` and `PAYME_KEY` come together. With neither set and the
//! built-in sandbox on, the simulator's id and key ([`SIMULATOR_MERCHANT_ID`],
//! [`SIMULATOR_KEY`]) and its checkout (`<public url>/sandbox/payme`) are
//! used; with neither set and no sandbox, Payme is not configured (`None`).
//! A bad value is one [`ConfigError`] naming the variable. The keys never
//! appear in `Debug` output or errors.

use crate::config::ConfigError;
use std::fmt;

/// The Payme simulator's cashbox id (paygate-sandbox uses the same value).
pub const SIMULATOR_MERCHANT_ID: &str = "5e730e8e0b852a417aa49ceb";
/// The Payme simulator's cashbox key (paygate-sandbox uses the same value).
pub const SIMULATOR_KEY: &str = "sandbox-payme-key-0123456789abcdefgh";
/// Where the simulator is mounted under the public URL.
pub const SIMULATOR_PATH: &str = "/sandbox/payme";
pub const PRODUCTION_CHECKOUT_URL: &str = "https://checkout.paycom.uz";
/// The test host (docs/gateways/payme.md, "Checkout URL": the sources also
/// name `https://checkout.test.paycom.uz`; use `PAYME_CHECKOUT_URL` for it).
pub const TEST_CHECKOUT_URL: &str = "https://test.paycom.uz";

#[derive(Clone, PartialEq, Eq)]
pub struct PaymeSettings {
    pub merchant_id: String,
    pub key: String,
    pub test_key: Option<String>,
    pub account_field: String,
    pub test_mode: bool,
    /// The checkout host the links point at (no trailing slash).
    pub checkout_url: String,
    /// Running against the built-in simulator's credentials.
    pub simulator: bool,
}

impl fmt::Debug for PaymeSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PaymeSettings")
            .field("merchant_id", &self.merchant_id)
            .field("key", &"<redacted>")
            .field("test_key", &self.test_key.as_ref().map(|_| "<redacted>"))
            .field("account_field", &self.account_field)
            .field("test_mode", &self.test_mode)
            .field("checkout_url", &self.checkout_url)
            .field("simulator", &self.simulator)
            .finish()
    }
}

fn err(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

impl PaymeSettings {
    /// Reads the variables through `get` (so tests never touch the process
    /// environment). `sandbox`: the built-in simulators are mounted;
    /// `public_url`: paygate's public base URL, for the simulator's checkout.
    pub fn from_lookup(
        get: &dyn Fn(&str) -> Option<String>,
        sandbox: bool,
        public_url: &str,
    ) -> Result<Option<Self>, ConfigError> {
        let text = |var: &str| {
            get(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let id = text("PAYME_ID");
        let key = text("PAYME_KEY");
        let test_key = text("PAYME_TEST_KEY");
        let simulator = match (&id, &key) {
            (Some(_), Some(_)) => false,
            (None, None) if !sandbox => return Ok(None),
            (None, None) => true,
            (Some(_), None) => return Err(err("PAYME_KEY", "required when PAYME_ID is set")),
            (None, Some(_)) => return Err(err("PAYME_ID", "required when PAYME_KEY is set")),
        };
        if test_key.is_some() && simulator {
            return Err(err("PAYME_TEST_KEY", "set PAYME_ID and PAYME_KEY too"));
        }
        if let Some(id) = &id {
            if id.contains(';') || id.chars().any(char::is_whitespace) {
                return Err(err("PAYME_ID", "must not contain ';' or spaces"));
            }
        }
        let account_field = text("PAYME_ACCOUNT_FIELD")
            .unwrap_or_else(|| super::protocol::DEFAULT_ACCOUNT_FIELD.into());
        if account_field.len() > 64
            || !account_field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(err(
                "PAYME_ACCOUNT_FIELD",
                "letters, digits and '_' only (at most 64)",
            ));
        }
        let test_mode = match text("PAYME_TEST_MODE").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => true,
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => false,
            Some(v) => {
                return Err(err(
                    "PAYME_TEST_MODE",
                    format!("expected true or false, got {v:?}"),
                ))
            }
        };
        let checkout_url = match text("PAYME_CHECKOUT_URL") {
            Some(u) => {
                let parsed =
                    url::Url::parse(&u).map_err(|_| err("PAYME_CHECKOUT_URL", "not a URL"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(err(
                        "PAYME_CHECKOUT_URL",
                        "must be an http:// or https:// URL",
                    ));
                }
                u.trim_end_matches('/').to_owned()
            }
            None if simulator => format!("{}{SIMULATOR_PATH}", public_url.trim_end_matches('/')),
            None if test_mode => TEST_CHECKOUT_URL.to_owned(),
            None => PRODUCTION_CHECKOUT_URL.to_owned(),
        };
        Ok(Some(Self {
            merchant_id: id.unwrap_or_else(|| SIMULATOR_MERCHANT_ID.to_owned()),
            key: key.unwrap_or_else(|| SIMULATOR_KEY.to_owned()),
            test_key,
            account_field,
            test_mode,
            checkout_url,
            simulator,
        }))
    }

    /// The keys Payme may authenticate with (for [`super::auth::authorize`]).
    pub fn keys(&self) -> Vec<&str> {
        std::iter::once(self.key.as_str())
            .chain(self.test_key.as_deref())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const PUBLIC: &str = "http://127.0.0.1:8080/";

    fn load(vars: &[(&str, &str)], sandbox: bool) -> Result<Option<PaymeSettings>, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PaymeSettings::from_lookup(&move |k| map.get(k).cloned(), sandbox, PUBLIC)
    }

    #[test]
    fn nothing_set_means_the_simulator() {
        let s = load(&[], true).unwrap().unwrap();
        assert_eq!(s.merchant_id, SIMULATOR_MERCHANT_ID);
        assert_eq!(s.key, SIMULATOR_KEY);
        assert_eq!(s.account_field, "order_id");
        assert_eq!(s.checkout_url, "http://127.0.0.1:8080/sandbox/payme");
        assert!(s.simulator && !s.test_mode);
        assert_eq!(s.keys(), [SIMULATOR_KEY]);
    }

    #[test]
    fn nothing_set_without_sandbox_means_not_configured() {
        assert_eq!(load(&[], false).unwrap(), None);
        assert_eq!(
            load(&[("PAYME_ID", " ")], false).unwrap(),
            None,
            "blank is unset"
        );
    }

    #[test]
    fn real_credentials_pick_the_checkout_by_test_mode() {
        let base = [
            ("PAYME_ID", "5e730e8e0b852a417aa49ceb"),
            ("PAYME_KEY", "live"),
        ];
        let s = load(&base, true).unwrap().unwrap();
        assert_eq!(s.checkout_url, PRODUCTION_CHECKOUT_URL);
        assert!(!s.simulator);
        let mut vars = base.to_vec();
        vars.extend([("PAYME_TEST_MODE", "yes"), ("PAYME_TEST_KEY", "test")]);
        let s = load(&vars, false).unwrap().unwrap();
        assert_eq!(s.checkout_url, TEST_CHECKOUT_URL);
        assert_eq!(s.keys(), ["live", "test"]);
        vars.push(("PAYME_CHECKOUT_URL", "https://checkout.test.paycom.uz/"));
        vars.push(("PAYME_ACCOUNT_FIELD", "invoice_id"));
        let s = load(&vars, false).unwrap().unwrap();
        assert_eq!(s.checkout_url, "https://checkout.test.paycom.uz");
        assert_eq!(s.account_field, "invoice_id");
    }

    #[test]
    fn errors_name_the_variable() {
        let cases: [(&[(&str, &str)], &str); 7] = [
            (&[("PAYME_ID", "x")], "PAYME_KEY"),
            (&[("PAYME_KEY", "x")], "PAYME_ID"),
            (&[("PAYME_TEST_KEY", "x")], "PAYME_TEST_KEY"),
            (&[("PAYME_ID", "a;b"), ("PAYME_KEY", "k")], "PAYME_ID"),
            (
                &[("PAYME_ACCOUNT_FIELD", "order.id")],
                "PAYME_ACCOUNT_FIELD",
            ),
            (&[("PAYME_TEST_MODE", "maybe")], "PAYME_TEST_MODE"),
            (&[("PAYME_CHECKOUT_URL", "ftp://x")], "PAYME_CHECKOUT_URL"),
        ];
        for (vars, var) in cases {
            let e = load(vars, true).unwrap_err();
            assert_eq!(e.var, var, "{vars:?}");
            assert!(e.to_string().contains(var));
        }
    }

    #[test]
    fn debug_never_shows_the_keys() {
        let s = load(
            &[
                ("PAYME_ID", "m"),
                ("PAYME_KEY", "very-secret"),
                ("PAYME_TEST_KEY", "also-secret"),
            ],
            false,
        )
        .unwrap()
        .unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
