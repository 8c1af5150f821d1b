//! Property tests of the medogram callback's field parser (outside input):
//! it never panics, refuses cleanly, and keeps exactly what it accepts.

use super::inbound::callback_fields;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,80}".prop_map(Value::String),
        "[0-9]{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(Value::Array)
    })
}

fn callback_map() -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        Just("trans_id".to_string()),
        Just("id_get".to_string()),
        Just("tracking_code".to_string()),
        Just("factorId".to_string()),
        ".{0,12}",
    ];
    prop::collection::btree_map(key, any_json(), 0..6).prop_map(|m| m.into_iter().collect())
}

proptest! {
    #[test]
    fn any_callback_is_parsed_or_refused_with_a_field(map in callback_map()) {
        match callback_fields(&map) {
            Ok(f) => {
                prop_assert!(!f.trans_id.is_empty() && f.trans_id.bytes().all(|b| b.is_ascii_digit()));
                prop_assert!(!f.id_get.is_empty() && f.id_get.bytes().all(|b| b.is_ascii_digit()));
                for t in [&f.tracking_code, &f.factor_id].into_iter().flatten() {
                    prop_assert!(t.len() <= 64 && !t.chars().any(char::is_control));
                }
            }
            Err(e) => {
                prop_assert_eq!(e.code, "invalid_field");
                prop_assert!(e.field.is_some());
            }
        }
    }

    #[test]
    fn numeric_ids_round_trip(trans in "[0-9]{1,32}", id_get in 1u64..u64::MAX, code in "[A-Za-z0-9-]{0,64}") {
        let map: Map<String, Value> = [
            ("trans_id".to_string(), json!(trans)),
            ("id_get".to_string(), json!(id_get)),
            ("tracking_code".to_string(), json!(code)),
        ]
        .into_iter()
        .collect();
        let f = callback_fields(&map).unwrap();
        prop_assert_eq!(f.trans_id, trans);
        prop_assert_eq!(f.id_get, id_get.to_string());
        prop_assert_eq!(f.tracking_code, Some(code).filter(|c| !c.is_empty()));
    }
}
