//! Property tests of the parsers of outside input in the domain: money
//! texts, ids and user identifiers. They never panic, refuse cleanly, and
//! round-trip what they accept.

use paygate_common::domain::{Amount, Currency, PaymentId, UserIdentifier};
use paygate_common::userdir::path_segment;
use proptest::prelude::*;

proptest! {
    #[test]
    fn money_texts_round_trip_exactly(minor in 1i64..=Amount::MAX_MINOR) {
        for currency in [Currency::Uzs, Currency::Irr] {
            let a = Amount::from_minor(minor).unwrap();
            let text = a.to_decimal_string(currency);
            prop_assert_eq!(Amount::parse_decimal(&text, currency), Ok(a));
        }
    }

    #[test]
    fn any_money_text_is_parsed_or_refused(text in ".{0,40}") {
        if let Ok(a) = Amount::parse_decimal(&text, Currency::Uzs) {
            prop_assert!(a.minor() > 0 && a.minor() <= Amount::MAX_MINOR);
            // What was accepted means the same amount when written back.
            let back = Amount::parse_decimal(&a.to_decimal_string(Currency::Uzs), Currency::Uzs);
            prop_assert_eq!(back, Ok(a));
        }
    }

    #[test]
    fn payment_ids_round_trip_and_garbage_is_refused(text in ".{0,50}") {
        let id = PaymentId::new();
        prop_assert_eq!(PaymentId::parse(&id.to_string()), Some(id));
        if let Some(p) = PaymentId::parse(&text) {
            prop_assert_eq!(PaymentId::parse(&p.to_string()), Some(p));
        }
    }

    #[test]
    fn user_identifiers_are_safe_path_segments(text in ".{0,80}") {
        if let Ok(u) = UserIdentifier::parse(&text) {
            let seg = path_segment(u.as_str()).expect("an accepted identifier is a segment");
            prop_assert!(!seg.contains('/') && !seg.contains('?') && !seg.contains('#'));
            prop_assert!(seg != "." && seg != "..");
        }
        if let Some(seg) = path_segment(&text) {
            prop_assert!(seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
            prop_assert!(!seg.bytes().all(|b| b == b'.'));
        }
    }
}
