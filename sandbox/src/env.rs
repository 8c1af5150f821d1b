//! Reading knobs from `PAYGATE_SANDBOX_*` environment variables.
//!
//! The lookup is injected so tests never touch the process environment
//! (which other tests running in parallel would see).

use serde::de::DeserializeOwned;
use std::str::FromStr;

pub(crate) struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    prefix: &'static str,
}

impl<'a> Env<'a> {
    pub(crate) fn new(lookup: &'a dyn Fn(&str) -> Option<String>, prefix: &'static str) -> Self {
        Self { lookup, prefix }
    }

    fn name(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// An empty variable counts as unset: `FOO=` in a `.env` file usually
    /// means "no opinion", not "the empty string".
    fn raw(&self, key: &str) -> Option<String> {
        (self.lookup)(&self.name(key))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn string(&self, key: &str, target: &mut String) {
        if let Some(v) = self.raw(key) {
            *target = v;
        }
    }

    pub(crate) fn opt_string(&self, key: &str, target: &mut Option<String>) {
        if let Some(v) = self.raw(key) {
            *target = Some(v);
        }
    }

    pub(crate) fn parse<T: FromStr>(&self, key: &str, target: &mut T) -> Result<(), String> {
        if let Some(v) = self.raw(key) {
            *target = v
                .parse()
                .map_err(|_| format!("{}: invalid value {v:?}", self.name(key)))?;
        }
        Ok(())
    }

    pub(crate) fn bool(&self, key: &str, target: &mut bool) -> Result<(), String> {
        if let Some(v) = self.raw(key) {
            *target = match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                _ => {
                    return Err(format!(
                        "{}: expected true or false, got {v:?}",
                        self.name(key)
                    ))
                }
            };
        }
        Ok(())
    }

    /// Parses a lowercase serde enum such as `md5` or `post`.
    pub(crate) fn choice<T: DeserializeOwned>(
        &self,
        key: &str,
        target: &mut T,
        expected: &str,
    ) -> Result<(), String> {
        if let Some(v) = self.raw(key) {
            *target = serde_json::from_value(serde_json::Value::String(v.to_ascii_lowercase()))
                .map_err(|_| format!("{}: expected {expected}, got {v:?}", self.name(key)))?;
        }
        Ok(())
    }

    /// Wraps a whole-config validation error with the prefix so the operator
    /// knows which simulator's variables to look at.
    pub(crate) fn context(&self, err: String) -> String {
        format!("{}*: {err}", self.prefix)
    }
}
