//! Property tests of the Atmos webhook body parser (outside input): it never
//! panics, refuses cleanly, and keeps the exact texts that were signed.

use super::inbound::{amount_minor, raw_texts};
use proptest::prelude::*;

proptest! {
    #[test]
    fn any_bytes_are_parsed_or_refused(body in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(t) = raw_texts(&body) {
            for v in [&t.store_id, &t.transaction_id, &t.invoice, &t.amount, &t.sign] {
                prop_assert!(!v.is_empty() && v.len() <= 128);
            }
        }
    }

    #[test]
    fn signed_texts_round_trip_as_strings_or_numbers(
        store in "[0-9]{1,10}",
        txn in 1u64..u64::MAX,
        invoice in "[0-9]{1,12}",
        amount in "[1-9][0-9]{0,12}(\\.00)?",
        sign in "[0-9a-f]{32,64}",
        as_number in any::<bool>(),
    ) {
        let amount_json = if as_number { amount.clone() } else { format!("\"{amount}\"") };
        let body = format!(
            r#"{{"store_id":"{store}","transaction_id":{txn},"invoice":"{invoice}","amount":{amount_json},"sign":"{sign}"}}"#
        );
        let t = raw_texts(body.as_bytes()).unwrap();
        prop_assert_eq!(t.store_id, store);
        prop_assert_eq!(t.transaction_id, txn.to_string());
        prop_assert_eq!(t.invoice, invoice);
        prop_assert_eq!(&t.amount, &amount);
        prop_assert_eq!(t.sign, sign);
        let whole = amount.trim_end_matches(".00");
        prop_assert_eq!(amount_minor(&amount), whole.parse::<i64>().ok());
    }

    #[test]
    fn amount_texts_never_panic_and_accept_only_whole_numbers(text in ".{0,30}") {
        if let Some(n) = amount_minor(&text) {
            prop_assert!(n >= 0);
            let whole = text.split('.').next().unwrap_or_default();
            prop_assert_eq!(whole.parse::<i64>().ok(), Some(n));
        }
    }
}
