//! The callback signature (docs/gateways/atmos.md, 'Signature rule').

use super::config::HashAlg;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Lowercase hex HASH(store_id ‖ transaction_id ‖ invoice ‖ amount ‖ api_key),
/// over exactly the texts that travel in the callback.
pub(crate) fn sign(
    alg: HashAlg,
    store_id: &str,
    transaction_id: &str,
    invoice: &str,
    amount: &str,
    api_key: &str,
) -> String {
    let input = format!("{store_id}{transaction_id}{invoice}{amount}{api_key}");
    match alg {
        HashAlg::Md5 => hex::encode(Md5::digest(input.as_bytes())),
        HashAlg::Sha256 => hex::encode(Sha256::digest(input.as_bytes())),
        HashAlg::Sha1 => hex::encode(Sha1::digest(input.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(alg: HashAlg) -> String {
        sign(alg, "8157", "123456789", "197", "5000000", "TEST_API_KEY")
    }

    #[test]
    fn md5_vector() {
        assert_eq!(vector(HashAlg::Md5), "f2561258ec213cc7ff8bc4ca50868cf7");
    }

    #[test]
    fn sha256_vector() {
        assert_eq!(
            vector(HashAlg::Sha256),
            "b0965a223e4070c756ce7d8e39554f127dbf4dc5009a73241de01458dc12a0c8"
        );
    }

    #[test]
    fn sha1_is_lowercase_hex_of_40() {
        let s = vector(HashAlg::Sha1);
        assert_eq!(s.len(), 40);
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
}
