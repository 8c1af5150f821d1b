//! Encryption at rest for personal data (users' JSON profiles), using Fernet
//! (AES-128-CBC + HMAC-SHA256, <https://github.com/fernet/spec>).
//!
//! # Key derivation: Django compatibility
//!
//! The data was first written by a Django app that built its cipher as
//!
//! ```python
//! key = base64.urlsafe_b64encode(hashlib.sha256(settings.SECRET_KEY.encode()).digest())
//! Fernet(key)
//! ```
//!
//! [`derive_fernet_key`] does exactly the same (SHA-256 of the UTF-8 secret,
//! URL-safe base64 with padding), so a token written by Django decrypts here
//! and a token written here decrypts in Django, given the same `SECRET_KEY`.
//! SHA-256 is not a password KDF; that is acceptable only because
//! `SECRET_KEY` is a long random string (see [`generate_secret`]), not a
//! human-chosen password.
//!
//! # Fallback secrets: key rotation
//!
//! Rotating `SECRET_KEY` must not make existing rows unreadable. As with
//! Django's `SECRET_KEY_FALLBACKS`, a [`Cipher`] holds the primary secret plus
//! old ones: new data is always encrypted with the primary key, decryption
//! tries the primary key and then each fallback in order, and
//! [`Cipher::needs_rotation`] flags tokens that only a fallback can read so
//! they can be re-encrypted before the old secret is retired.
//!
//! # The key stays here
//!
//! The derived Fernet keys live only inside [`Cipher`]: there is no accessor,
//! `Debug` prints only how many keys there are, errors carry no key material
//! or plaintext, and the `fernet` crate zeroes its key copies on drop.
//! [`derive_fernet_key`] is public only so the derivation can be checked
//! against Django; callers should hand secrets to [`Cipher::from_secrets`]
//! and never store or log derived keys.
//!
//! # Decryption has no TTL
//!
//! This is data at rest, so tokens never expire. Like Python's
//! `Fernet.decrypt(token)` without a `ttl` (what Django called), decryption
//! also performs no clock-skew check, so a token stamped by a host whose clock
//! runs ahead still decrypts here.

use std::fmt;

use base64::Engine as _;
use fernet::Fernet;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

/// Django's `get_random_secret_key()` alphabet.
const SECRET_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)";
/// Django's `get_random_secret_key()` length.
const SECRET_LEN: usize = 50;

/// "Current time" handed to `fernet` when decrypting. With no TTL the crate
/// uses the time only to reject timestamps more than its clock-skew allowance
/// (60 s) past it; Python's Fernet does no such check without a TTL, so we
/// pass a time far beyond any real timestamp, and small enough that adding
/// the allowance cannot overflow.
const NO_CLOCK_CHECK: u64 = u64::MAX / 2;

/// Errors from this module. Messages never contain key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The token is malformed, was tampered with, or no configured key
    /// decrypts it.
    #[error("invalid token: malformed, tampered with, or encrypted with an unknown key")]
    InvalidToken,
    /// The primary secret is the empty string.
    #[error("the primary secret key is empty")]
    EmptySecret,
}

/// The Fernet key Django derives from a secret: URL-safe base64 (with
/// padding) of `sha256(secret)`.
pub fn derive_fernet_key(secret: &str) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(Sha256::digest(secret.as_bytes()))
}

fn fernet_for_secret(secret: &str) -> Fernet {
    Fernet::new(&derive_fernet_key(secret))
        .expect("a SHA-256 digest is always a valid 32-byte Fernet key")
}

/// Fernet encryption with a primary key and, for rotation, fallback keys.
#[derive(Clone)]
pub struct Cipher {
    /// `keys[0]` is the primary key; the rest are fallbacks, in order.
    keys: Vec<Fernet>,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cipher")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Cipher {
    /// Builds a cipher from `SECRET_KEY` and `SECRET_KEY_FALLBACKS`.
    ///
    /// Fails with [`CryptoError::EmptySecret`] if `primary` is empty. Empty
    /// fallbacks are skipped (the key derived from "" is public knowledge, so
    /// accepting it would let anyone forge data), as are fallbacks repeating
    /// an earlier secret.
    pub fn from_secrets(primary: &str, fallbacks: &[String]) -> Result<Self, CryptoError> {
        if primary.is_empty() {
            return Err(CryptoError::EmptySecret);
        }
        let mut seen: Vec<&str> = vec![primary];
        let mut keys = vec![fernet_for_secret(primary)];
        for secret in fallbacks {
            if secret.is_empty() || seen.contains(&secret.as_str()) {
                continue;
            }
            seen.push(secret);
            keys.push(fernet_for_secret(secret));
        }
        Ok(Self { keys })
    }

    /// Encrypts `plaintext` with the primary key into a Fernet token.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        self.keys[0].encrypt(plaintext)
    }

    /// Decrypts a token with the primary key, then each fallback. Tokens
    /// never expire.
    pub fn decrypt(&self, token: &str) -> Result<Vec<u8>, CryptoError> {
        self.decrypt_with_index(token)
            .map(|(_, plaintext)| plaintext)
            .ok_or(CryptoError::InvalidToken)
    }

    /// True if only a fallback key decrypts `token`: it should be
    /// re-encrypted with [`Cipher::encrypt`]. False if the primary key
    /// decrypts it or if no key does.
    pub fn needs_rotation(&self, token: &str) -> bool {
        matches!(self.decrypt_with_index(token), Some((index, _)) if index > 0)
    }

    /// The index of the first key that decrypts `token`, and the plaintext.
    fn decrypt_with_index(&self, token: &str) -> Option<(usize, Vec<u8>)> {
        self.keys.iter().enumerate().find_map(|(index, key)| {
            key.decrypt_at_time(token, None, NO_CLOCK_CHECK)
                .ok()
                .map(|plaintext| (index, plaintext))
        })
    }

    /// A cipher over raw Fernet keys, for the specification's test vectors.
    #[cfg(test)]
    fn from_raw_keys(keys: &[&str]) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|key| Fernet::new(key).expect("valid Fernet key"))
                .collect(),
        }
    }
}

/// A new secret key like Django's `get_random_secret_key()`: 50 characters
/// drawn uniformly from `a-z0-9!@#$%^&*(-_=+)` with a cryptographically
/// secure generator.
pub fn generate_secret() -> String {
    let mut rng = rand::rng();
    (0..SECRET_LEN)
        .map(|_| char::from(SECRET_CHARS[rng.random_range(0..SECRET_CHARS.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test vectors from the Fernet specification (github.com/fernet/spec:
    // generate.json, verify.json, invalid.json), copied verbatim.
    const SPEC_SECRET: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const SPEC_TOKEN: &str = "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
    const SPEC_SRC: &[u8] = b"hello";
    /// generate.json "now": 1985-10-26T01:20:00-07:00.
    const SPEC_GENERATE_NOW: u64 = 499_162_800;
    /// verify.json / invalid.json "now": 1985-10-26T01:20:01-07:00.
    const SPEC_VERIFY_NOW: u64 = 499_162_801;
    /// invalid.json "expired TTL" "now": 1985-10-26T01:21:31-07:00.
    const SPEC_EXPIRED_NOW: u64 = 499_162_891;
    const SPEC_TTL: u64 = 60;

    const INVALID_MAC: &str = "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykQUFBQUFBQUFBQQ==";
    const INVALID_TOO_SHORT: &str = "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPA==";
    const INVALID_BASE64: &str = "%%%%%%%%%%%%%AECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfsH-p1YsUD2Q==";
    const INVALID_BLOCK_SIZE: &str = "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPOm73QeoCk9uGib28Xe5vz6oxq5nmxbx_v7mrfyudzUm";
    const INVALID_PADDING: &str = "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0ODz4LEpdELGQAad7aNEHbf-JkLPIpuiYRLQ3RtXatOYREu2FWke6CnJNYIbkuKNqOhw==";
    const INVALID_FAR_FUTURE: &str = "gAAAAAAdwStRAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAnja1xKYyhd-Y6mSkTOyTGJmw2Xc2a6kBd-iX9b_qXQcw==";
    /// Checked at `SPEC_EXPIRED_NOW`; the other invalid cases at `SPEC_VERIFY_NOW`.
    const INVALID_EXPIRED: &str = "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfsH-p1YsUD2Q==";
    const INVALID_IV: &str = "gAAAAAAdwJ6xBQECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAkLhFLHpGtDBRLRTZeUfWgHSv49TF2AUEZ1TIvcZjK1zQ==";

    // Computed with Python's `cryptography` 48.0.0 exactly as the Django app did:
    //   key = base64.urlsafe_b64encode(hashlib.sha256(SECRET_KEY.encode()).digest())
    //   Fernet(key).encrypt(DJANGO_PLAINTEXT)
    const DJANGO_SECRET: &str = "django-insecure-test-key";
    const DJANGO_KEY: &str = "kGXPB6yurlk0i6ogXbw8TJXkWqK6pawsUGt-WyLZfFY=";
    const DJANGO_TOKEN: &str = "gAAAAABrA-ytQB35xIDjd9BJ2BtSP8DnaZRdm9kJBHeOYPLiNkyEfwvBwk8AD6K8twry18kmqHI6FCByX7T9kRE7tR1Dpwl39zukQ6_qJWpYCujYans7KRNJvIeSCBB0XjwMZDs-ErxSboYeZWBKhYgcphZlq82xlw6saXNdtiKOXZRzbj3Xvgooru5BHTuoq6vYlq3oMBMM";
    const DJANGO_PLAINTEXT: &str =
        r#"{"name":"Zoë Ångström","email":"zoe@example.com","phone":"+33 6 12 34 56 78"}"#;

    fn b64_decode(token: &str) -> Vec<u8> {
        base64::engine::general_purpose::URL_SAFE
            .decode(token)
            .expect("valid base64")
    }

    fn b64_encode(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE.encode(bytes)
    }

    fn spec_fernet() -> Fernet {
        Fernet::new(SPEC_SECRET).expect("spec secret is a valid key")
    }

    #[test]
    fn spec_verify_vector_decrypts_within_ttl() {
        let plaintext = spec_fernet()
            .decrypt_at_time(SPEC_TOKEN, Some(SPEC_TTL), SPEC_VERIFY_NOW)
            .expect("verify.json token decrypts");
        assert_eq!(plaintext, SPEC_SRC);
        // And through Cipher (no TTL), as stored data would be read.
        let cipher = Cipher::from_raw_keys(&[SPEC_SECRET]);
        assert_eq!(cipher.decrypt(SPEC_TOKEN).unwrap(), SPEC_SRC);
    }

    #[test]
    fn spec_generate_vector() {
        // fernet 0.2 keeps its fixed-IV encryption (`_encrypt_from_parts`)
        // private and always draws a random IV, so the published token cannot
        // be reproduced byte for byte. Instead: the published token decrypts
        // at its own "now", and a token we generate at that time has the same
        // structure (version, timestamp, length) and round-trips.
        let fernet = spec_fernet();
        assert_eq!(
            fernet
                .decrypt_at_time(SPEC_TOKEN, Some(SPEC_TTL), SPEC_GENERATE_NOW)
                .unwrap(),
            SPEC_SRC
        );

        let published = b64_decode(SPEC_TOKEN);
        let iv: Vec<u8> = (0..=15).collect();
        assert_eq!(published[0], 0x80);
        assert_eq!(published[1..9], SPEC_GENERATE_NOW.to_be_bytes());
        assert_eq!(published[9..25], iv[..]);

        let ours = fernet.encrypt_at_time(SPEC_SRC, SPEC_GENERATE_NOW);
        let ours_bytes = b64_decode(&ours);
        assert_eq!(ours_bytes.len(), published.len());
        assert_eq!(ours_bytes[0], 0x80, "version byte");
        assert_eq!(ours_bytes[1..9], published[1..9], "timestamp bytes");
        assert_ne!(ours_bytes[9..25], iv[..], "IV is random, not fixed");
        assert_eq!(
            fernet
                .decrypt_at_time(&ours, Some(SPEC_TTL), SPEC_VERIFY_NOW)
                .unwrap(),
            SPEC_SRC
        );
    }

    #[test]
    fn spec_invalid_vectors_fail() {
        let fernet = spec_fernet();
        let cases = [
            ("incorrect mac", INVALID_MAC, SPEC_VERIFY_NOW),
            ("too short", INVALID_TOO_SHORT, SPEC_VERIFY_NOW),
            ("invalid base64", INVALID_BASE64, SPEC_VERIFY_NOW),
            (
                "payload not block multiple",
                INVALID_BLOCK_SIZE,
                SPEC_VERIFY_NOW,
            ),
            ("payload padding error", INVALID_PADDING, SPEC_VERIFY_NOW),
            ("far-future timestamp", INVALID_FAR_FUTURE, SPEC_VERIFY_NOW),
            ("expired ttl", INVALID_EXPIRED, SPEC_EXPIRED_NOW),
            ("incorrect iv", INVALID_IV, SPEC_VERIFY_NOW),
        ];
        for (desc, token, now) in cases {
            assert!(
                fernet.decrypt_at_time(token, Some(SPEC_TTL), now).is_err(),
                "{desc} must fail"
            );
        }
    }

    #[test]
    fn spec_invalid_vectors_through_cipher() {
        let cipher = Cipher::from_raw_keys(&[SPEC_SECRET]);
        for token in [
            INVALID_MAC,
            INVALID_TOO_SHORT,
            INVALID_BASE64,
            INVALID_BLOCK_SIZE,
            INVALID_PADDING,
            INVALID_IV,
        ] {
            assert!(matches!(
                cipher.decrypt(token),
                Err(CryptoError::InvalidToken)
            ));
            assert!(!cipher.needs_rotation(token));
        }
        // Without a TTL, time is not checked, exactly as Python's
        // `Fernet.decrypt(token)`: both time-invalid vectors carry a valid MAC
        // over an empty plaintext, and Python returns b"" for them too.
        assert_eq!(cipher.decrypt(INVALID_EXPIRED).unwrap(), b"");
        assert_eq!(cipher.decrypt(INVALID_FAR_FUTURE).unwrap(), b"");
    }

    #[test]
    fn mutated_spec_token_fails() {
        let fernet = spec_fernet();
        let valid = b64_decode(SPEC_TOKEN);
        let decrypt = |bytes: &[u8]| {
            fernet.decrypt_at_time(&b64_encode(bytes), Some(SPEC_TTL), SPEC_VERIFY_NOW)
        };
        assert!(decrypt(&valid).is_ok());

        let mut bad_version = valid.clone();
        bad_version[0] = 0x81;
        assert!(decrypt(&bad_version).is_err(), "bad version byte");

        let mut bad_mac = valid.clone();
        *bad_mac.last_mut().unwrap() ^= 1;
        assert!(decrypt(&bad_mac).is_err(), "incorrect MAC");

        let mut bad_ciphertext = valid.clone();
        bad_ciphertext[30] ^= 1;
        assert!(decrypt(&bad_ciphertext).is_err(), "tampered ciphertext");

        assert!(decrypt(&valid[..valid.len() - 1]).is_err(), "truncated");
        assert!(decrypt(&valid[..20]).is_err(), "too short");
        assert!(decrypt(&[]).is_err(), "empty");
        assert!(
            fernet
                .decrypt_at_time("not*base64!", Some(SPEC_TTL), SPEC_VERIFY_NOW)
                .is_err(),
            "invalid base64"
        );
    }

    #[test]
    fn derive_key_matches_django() {
        assert_eq!(derive_fernet_key(DJANGO_SECRET), DJANGO_KEY);
    }

    #[test]
    fn decrypts_django_token() {
        let cipher = Cipher::from_secrets(DJANGO_SECRET, &[]).unwrap();
        let plaintext = cipher.decrypt(DJANGO_TOKEN).unwrap();
        assert_eq!(plaintext, DJANGO_PLAINTEXT.as_bytes());
        let profile: serde_json::Value = serde_json::from_slice(&plaintext).unwrap();
        assert_eq!(profile["name"], "Zoë Ångström");
        assert!(!cipher.needs_rotation(DJANGO_TOKEN));
    }

    #[test]
    fn django_can_decrypt_our_tokens() {
        // The reverse direction: a token we write opens with a plain Fernet
        // built from Django's key string (what Django's `Fernet(key)` holds).
        let cipher = Cipher::from_secrets(DJANGO_SECRET, &[]).unwrap();
        let token = cipher.encrypt(DJANGO_PLAINTEXT.as_bytes());
        let django = Fernet::new(DJANGO_KEY).unwrap();
        assert_eq!(django.decrypt(&token).unwrap(), DJANGO_PLAINTEXT.as_bytes());
    }

    #[test]
    fn django_secret_as_fallback_needs_rotation() {
        let cipher = Cipher::from_secrets("new-secret-key", &[DJANGO_SECRET.to_string()]).unwrap();
        assert_eq!(
            cipher.decrypt(DJANGO_TOKEN).unwrap(),
            DJANGO_PLAINTEXT.as_bytes()
        );
        assert!(cipher.needs_rotation(DJANGO_TOKEN));
    }

    #[test]
    fn rotation() {
        let old = Cipher::from_secrets("secret-A", &[]).unwrap();
        let token = old.encrypt(b"{\"email\":\"a@example.com\"}");

        let rotated = Cipher::from_secrets("secret-B", &["secret-A".to_string()]).unwrap();
        assert_eq!(
            rotated.decrypt(&token).unwrap(),
            b"{\"email\":\"a@example.com\"}"
        );
        assert!(rotated.needs_rotation(&token));

        let only_new = Cipher::from_secrets("secret-B", &[]).unwrap();
        assert!(matches!(
            only_new.decrypt(&token),
            Err(CryptoError::InvalidToken)
        ));
        assert!(!only_new.needs_rotation(&token));

        // Re-encrypting uses the primary key: no rotation needed, and the
        // new-only cipher reads it, while the old-only cipher does not.
        let reencrypted = rotated.encrypt(&rotated.decrypt(&token).unwrap());
        assert!(!rotated.needs_rotation(&reencrypted));
        assert_eq!(
            only_new.decrypt(&reencrypted).unwrap(),
            b"{\"email\":\"a@example.com\"}"
        );
        assert!(old.decrypt(&reencrypted).is_err());
    }

    #[test]
    fn fallbacks_tried_in_order() {
        let c = Cipher::from_secrets("secret-C", &[]).unwrap();
        let cipher = Cipher::from_secrets(
            "secret-A",
            &["secret-B".to_string(), "secret-C".to_string()],
        )
        .unwrap();
        let token = c.encrypt(b"x");
        assert_eq!(cipher.decrypt(&token).unwrap(), b"x");
        assert!(cipher.needs_rotation(&token));
    }

    #[test]
    fn roundtrip() {
        let cipher = Cipher::from_secrets("k", &[]).unwrap();
        for plaintext in [&b""[..], b"a", &[0u8; 16], &[0xffu8; 1000]] {
            let token = cipher.encrypt(plaintext);
            assert_eq!(cipher.decrypt(&token).unwrap(), plaintext);
        }
        // Random IVs: the same plaintext gives different tokens.
        assert_ne!(cipher.encrypt(b"same"), cipher.encrypt(b"same"));
    }

    #[test]
    fn empty_primary_rejected_empty_fallbacks_skipped() {
        assert!(matches!(
            Cipher::from_secrets("", &["old".to_string()]),
            Err(CryptoError::EmptySecret)
        ));
        let cipher = Cipher::from_secrets(
            "new",
            &[
                String::new(),
                "old".to_string(),
                "new".to_string(),
                "old".to_string(),
            ],
        )
        .unwrap();
        assert_eq!(format!("{cipher:?}"), "Cipher { keys: 2 }");
        // A token under the well-known key of "" is not accepted.
        let empty_key = Fernet::new(&derive_fernet_key("")).unwrap();
        assert!(cipher.decrypt(&empty_key.encrypt(b"forged")).is_err());
    }

    #[test]
    fn garbage_is_invalid_token() {
        let cipher = Cipher::from_secrets("k", &["old".to_string()]).unwrap();
        for token in ["", "garbage", "gAAAAA==", SPEC_TOKEN] {
            assert!(matches!(
                cipher.decrypt(token),
                Err(CryptoError::InvalidToken)
            ));
            assert!(!cipher.needs_rotation(token));
        }
    }

    #[test]
    fn debug_and_errors_leak_nothing() {
        let cipher = Cipher::from_secrets(DJANGO_SECRET, &["old-secret".to_string()]).unwrap();
        let debug = format!("{cipher:?}");
        assert_eq!(debug, "Cipher { keys: 2 }");
        let pretty = format!("{cipher:#?}");
        for secret in [DJANGO_SECRET, "old-secret"] {
            let key = derive_fernet_key(secret);
            for shown in [&debug, &pretty] {
                assert!(!shown.contains(secret));
                assert!(!shown.contains(&key));
                assert!(!shown.contains(&key[..8]));
            }
        }
        let err = cipher.decrypt("bad").unwrap_err();
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains(DJANGO_SECRET));
            assert!(!shown.contains(DJANGO_KEY));
        }
        assert!(!CryptoError::EmptySecret.to_string().is_empty());
    }

    #[test]
    fn generated_secrets() {
        let a = generate_secret();
        let b = generate_secret();
        assert_eq!(a.len(), 50);
        assert_eq!(a.chars().count(), 50);
        assert!(a.bytes().all(|c| SECRET_CHARS.contains(&c)));
        assert_ne!(a, b);
        let cipher = Cipher::from_secrets(&a, &[b]).unwrap();
        assert_eq!(cipher.decrypt(&cipher.encrypt(b"p")).unwrap(), b"p");
    }
}
