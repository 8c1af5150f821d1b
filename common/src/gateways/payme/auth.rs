//! Who may call the Payme endpoint (docs/gateways/payme.md, "Transport and
//! authentication"): `Authorization: Basic base64("Paycom:<key>")`, where the
//! key is the cashbox key (`PAYME_KEY`) or, when set, the test cabinet's key
//! (`PAYME_TEST_KEY`). Anything else is -32504, answered with HTTP 200 like
//! every Payme answer.
//!
//! The whole decoded `Paycom:<key>` is compared in constant time against
//! every accepted key (no early exit between them), so timing tells an
//! attacker neither which key nor how much of one matched.

use super::protocol::RpcError;
use base64::Engine;
use subtle::{Choice, ConstantTimeEq};

/// The login Payme sends (the official templates' `Paycom` user).
pub const LOGIN: &str = "Paycom";

/// The `Authorization` value Payme sends for `key`.
pub fn authorization_header(key: &str) -> String {
    let raw = format!("{LOGIN}:{key}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Accepts `header` (the raw `Authorization` value, if any) when it carries
/// `Paycom:<key>` for one of `keys`.
pub fn authorize(header: Option<&str>, keys: &[&str]) -> Result<(), RpcError> {
    let presented = header.and_then(decode_basic).unwrap_or_default();
    let mut matched = Choice::from(0);
    for key in keys.iter().filter(|k| !k.is_empty()) {
        let expected = format!("{LOGIN}:{key}");
        matched |= presented.as_slice().ct_eq(expected.as_bytes());
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(RpcError::insufficient_privileges())
    }
}

/// The decoded credentials of a `Basic` header (scheme case-insensitive).
fn decode_basic(header: &str) -> Option<Vec<u8>> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::super::protocol::code;
    use super::*;

    #[test]
    fn the_documented_header() {
        assert_eq!(
            authorization_header("TEST_KEY"),
            "Basic UGF5Y29tOlRFU1RfS0VZ"
        );
    }

    #[test]
    fn accepts_the_production_and_the_test_key() {
        let keys = ["prod-key", "test-key"];
        assert!(authorize(Some(&authorization_header("prod-key")), &keys).is_ok());
        assert!(authorize(Some(&authorization_header("test-key")), &keys).is_ok());
        assert!(authorize(Some("basic UGF5Y29tOnByb2Qta2V5"), &keys).is_ok());
    }

    #[test]
    fn refuses_everything_else_with_32504() {
        let keys = ["prod-key"];
        let wrong_login = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("Payme:prod-key")
        );
        let bearer = "Bearer prod-key".to_owned();
        let short = authorization_header("prod-ke");
        let long = authorization_header("prod-key2");
        let empty = authorization_header("");
        for header in [
            None,
            Some(""),
            Some("Basic"),
            Some("Basic !!!notbase64"),
            Some(bearer.as_str()),
            Some(wrong_login.as_str()),
            Some(short.as_str()),
            Some(long.as_str()),
            Some(empty.as_str()),
        ] {
            let err = authorize(header, &keys).unwrap_err();
            assert_eq!(err.code, code::INSUFFICIENT_PRIVILEGES, "{header:?}");
        }
    }

    #[test]
    fn an_unset_key_accepts_nothing() {
        assert!(authorize(Some(&authorization_header("")), &[""]).is_err());
        assert!(authorize(Some(&authorization_header("k")), &[]).is_err());
    }
}
