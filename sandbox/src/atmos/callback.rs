//! Paying a transaction: the signed merchant callback (docs/gateways/atmos.md, 'The callback'),
//! whose answer decides whether the money is taken.

use super::config::AtmosConfig;
use super::sign::sign;
use super::store::{NotPayable, Txn};
use super::{now_ms, Atmos};
use serde_json::{Map, Value};
use std::time::Duration;

/// How a payment attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PayOutcome {
    Confirmed,
    /// The merchant refused, or its callback endpoint failed; the reason is
    /// for the payer's page and the logs.
    Refused(String),
    NotPayable(NotPayable),
}

/// The merchant's answer to one callback.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Delivery {
    Accepted,
    Refused(String),
    Failed(String),
}

/// The callback body, signed over exactly the texts it carries.
fn build_body(cfg: &AtmosConfig, txn: &Txn, now_ms: i64) -> Value {
    let store_id = cfg.store_id.clone();
    let transaction_id = txn.trans_id.to_string();
    let amount = if cfg.wrong_amount {
        txn.amount.saturating_add(100)
    } else {
        txn.amount
    }
    .to_string();
    let key = if cfg.bad_signature {
        format!("{}-not-the-key", cfg.api_key)
    } else {
        cfg.api_key.clone()
    };
    let sign = sign(
        cfg.hash,
        &store_id,
        &transaction_id,
        &txn.account,
        &amount,
        &key,
    );
    // A number only when it prints back as the same text, so the sign
    // (computed over the text) stays valid: "08157" stays a string.
    let typed = |text: String| -> Value {
        match text.parse::<u64>() {
            Ok(n) if cfg.callback_numbers && n.to_string() == text => Value::from(n),
            _ => Value::String(text),
        }
    };
    let mut body = Map::new();
    body.insert("store_id".into(), typed(store_id));
    body.insert("transaction_id".into(), typed(transaction_id));
    body.insert("transaction_time".into(), Value::String(now_ms.to_string()));
    body.insert("amount".into(), typed(amount));
    body.insert(
        cfg.callback_field.name().into(),
        Value::String(txn.account.clone()),
    );
    body.insert("sign".into(), Value::String(sign));
    Value::Object(body)
}

fn is_one(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        Some(Value::String(s)) => s.trim() == "1",
        _ => false,
    }
}

async fn deliver(http: &reqwest::Client, url: &str, body: &Value) -> Delivery {
    let response = match http.post(url).json(body).send().await {
        Ok(r) => r,
        Err(e) => return Delivery::Failed(format!("callback request failed: {e}")),
    };
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Delivery::Failed(format!("callback answered HTTP {}", status.as_u16()));
    }
    match response.json::<Value>().await {
        Ok(reply) if is_one(reply.get("status")) => Delivery::Accepted,
        Ok(reply) => Delivery::Refused(
            reply
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    format!("status {}", reply.get("status").unwrap_or(&Value::Null))
                }),
        ),
        Err(e) => Delivery::Failed(format!("callback reply is not JSON: {e}")),
    }
}

async fn deliver_counted(a: &Atmos, url: &str, body: &Value) -> Delivery {
    let delivery = deliver(a.http(), url, body).await;
    let mut store = a.store();
    store.stats.callbacks_sent += 1;
    match &delivery {
        Delivery::Accepted => store.stats.callbacks_accepted += 1,
        Delivery::Refused(_) => store.stats.callbacks_refused += 1,
        Delivery::Failed(_) => store.stats.callback_errors += 1,
    }
    delivery
}

/// Runs the payment of a pending transaction to its end.
pub(super) async fn pay(a: &Atmos, trans_id: u64) -> PayOutcome {
    let cfg = a.config();
    let begun = a.store().begin_payment(trans_id);
    let txn = match begun {
        Ok(txn) => txn,
        Err(why) => return PayOutcome::NotPayable(why),
    };
    let Some(url) = cfg.callback_url.as_deref() else {
        // No merchant to ask: the payment simply goes through.
        a.store().finish_payment(trans_id, true, now_ms());
        return PayOutcome::Confirmed;
    };
    if cfg.callback_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(cfg.callback_delay_ms)).await;
    }
    let body = build_body(&cfg, &txn, now_ms());
    let first = deliver_counted(a, url, &body).await;
    let confirmed = first == Delivery::Accepted;
    a.store().finish_payment(trans_id, confirmed, now_ms());
    // Duplicates model Atmos retrying a delivered callback; the merchant must
    // stay idempotent, and nothing it answers changes the outcome any more.
    for _ in 0..cfg.duplicate_callbacks {
        deliver_counted(a, url, &body).await;
    }
    match first {
        Delivery::Accepted => {
            tracing::info!(trans_id, "atmos: merchant accepted the callback");
            PayOutcome::Confirmed
        }
        Delivery::Refused(reason) | Delivery::Failed(reason) => {
            tracing::warn!(trans_id, %reason, "atmos: payment declined after callback");
            PayOutcome::Refused(reason)
        }
    }
}

/// Pays a freshly created transaction without a browser.
pub(super) fn spawn_autopay(a: Atmos, trans_id: u64, delay_ms: u64) {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let outcome = pay(&a, trans_id).await;
        tracing::info!(trans_id, ?outcome, "atmos autopay finished");
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atmos::store::TxnStatus;

    fn txn() -> Txn {
        Txn {
            trans_id: 123_456_789,
            account: "197".into(),
            amount: 5_000_000,
            terminal_id: None,
            details: None,
            status: TxnStatus::Pending,
            success_trans_id: None,
            card_id: None,
            create_time_ms: 0,
            confirm_time_ms: None,
            paying: false,
        }
    }

    fn cfg() -> AtmosConfig {
        AtmosConfig {
            api_key: "TEST_API_KEY".into(),
            ..AtmosConfig::default()
        }
    }

    #[test]
    fn strings_by_default() {
        let body = build_body(&cfg(), &txn(), 1_714_550_400_000);
        assert_eq!(body["store_id"], "8157");
        assert_eq!(body["transaction_id"], "123456789");
        assert_eq!(body["amount"], "5000000");
        assert_eq!(body["invoice"], "197");
        assert_eq!(body["transaction_time"], "1714550400000");
        assert_eq!(body["sign"], "f2561258ec213cc7ff8bc4ca50868cf7");
    }

    #[test]
    fn numbers_keep_the_same_sign() {
        let mut c = cfg();
        c.callback_numbers = true;
        c.callback_field = super::super::config::CallbackField::Account;
        let body = build_body(&c, &txn(), 0);
        assert_eq!(body["store_id"], 8157);
        assert_eq!(body["transaction_id"], 123_456_789);
        assert_eq!(body["amount"], 5_000_000);
        assert_eq!(body["account"], "197");
        assert!(body.get("invoice").is_none());
        assert_eq!(body["sign"], "f2561258ec213cc7ff8bc4ca50868cf7");
    }

    #[test]
    fn leading_zero_store_stays_text() {
        let mut c = cfg();
        c.callback_numbers = true;
        c.store_id = "08157".into();
        assert_eq!(build_body(&c, &txn(), 0)["store_id"], "08157");
    }

    #[test]
    fn faults_change_amount_and_sign() {
        let mut c = cfg();
        c.wrong_amount = true;
        let body = build_body(&c, &txn(), 0);
        assert_eq!(body["amount"], "5000100");
        let mut c = cfg();
        c.bad_signature = true;
        assert_ne!(
            build_body(&c, &txn(), 0)["sign"],
            "f2561258ec213cc7ff8bc4ca50868cf7"
        );
    }
}
