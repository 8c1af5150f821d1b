//! Paying a checkout link the way Payme does: CheckPerformTransaction →
//! CreateTransaction (a fresh 24-character id, `time` = now + the clock
//! offset) → the card debit → PerformTransaction. A failed debit is
//! reported with CancelTransaction reason 2.

use super::config::PaymeConfig;
use super::link::Link;
use super::rpc::{self, Reply};
use super::Payme;
use serde_json::{json, Map, Value};

/// Reason 2: debit operation error in the processing centre.
const REASON_DEBIT_ERROR: i64 = 2;

/// How a payment attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum PayOutcome {
    Paid,
    /// The merchant refused a step (or answered something unusable).
    Refused {
        method: &'static str,
        code: Option<i64>,
        message: String,
    },
    /// The simulated card debit failed; the merchant was told to cancel.
    DebitFailed,
    NoMerchant,
}

/// One call to the merchant, with the knobs applied and counted.
pub(super) async fn call(
    p: &Payme,
    cfg: &PaymeConfig,
    url: &str,
    method: &str,
    params: Value,
) -> Result<Reply, String> {
    crate::faults::latency(cfg.latency_ms).await;
    let id = p.next_request_id();
    let exchange = if cfg.duplicate_calls {
        let (a, b) = tokio::join!(
            rpc::call(p.http(), url, &cfg.key, id, method, params.clone()),
            rpc::call(p.http(), url, &cfg.key, id, method, params.clone()),
        );
        if a.reply != b.reply {
            let problem = format!(
                "{method}: two identical calls got different answers: {:?} vs {:?}",
                a.reply, b.reply
            );
            tracing::warn!(%problem, "payme simulator: merchant not idempotent");
            let mut store = p.store();
            store.stats.duplicate_mismatches += 1;
            store.stats.last_problem = Some(problem);
        }
        p.store().stats.calls_sent += 1;
        a
    } else {
        rpc::call(p.http(), url, &cfg.key, id, method, params).await
    };
    let mut store = p.store();
    store.stats.calls_sent += 1;
    if !exchange.problems.is_empty() {
        store.stats.envelope_problems += 1;
        store.stats.last_problem = Some(format!("{method}: {}", exchange.problems.join("; ")));
    }
    match &exchange.reply {
        Ok(Reply::Error { code, .. }) => {
            store.stats.errors_answered += 1;
            tracing::info!(method, code, "payme simulator: merchant answered an error");
        }
        Ok(Reply::Result(_)) => {}
        Err(why) => {
            store.stats.calls_failed += 1;
            store.stats.last_problem = Some(format!("{method}: {why}"));
        }
    }
    exchange.reply
}

fn refused(method: &'static str, reply: Result<Reply, String>, lang: &str) -> PayOutcome {
    match reply {
        Ok(Reply::Error {
            code,
            message,
            data,
        }) => {
            let mut text = rpc::message_in(&message, lang);
            if let Value::String(field) = data {
                text = format!("{text} ({field})");
            }
            PayOutcome::Refused {
                method,
                code: Some(code),
                message: text,
            }
        }
        Ok(Reply::Result(result)) => PayOutcome::Refused {
            method,
            code: None,
            message: format!("unexpected result {}", Value::Object(result)),
        },
        Err(why) => PayOutcome::Refused {
            method,
            code: None,
            message: why,
        },
    }
}

fn field<'a>(result: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    result.get(name)
}

/// Runs a whole payment of `link` against the configured merchant.
pub(super) async fn pay(p: &Payme, link: &Link) -> PayOutcome {
    let cfg = p.config();
    let Some(url) = cfg.merchant_url.clone() else {
        return PayOutcome::NoMerchant;
    };
    let lang = link.lang.as_str();
    let account = Value::Object(link.account_json());

    let check = call(
        p,
        &cfg,
        &url,
        "CheckPerformTransaction",
        json!({"amount": link.amount, "account": account}),
    )
    .await;
    match &check {
        Ok(Reply::Result(r)) if field(r, "allow") == Some(&Value::Bool(true)) => {}
        _ => return refused("CheckPerformTransaction", check, lang),
    }

    let payme_id = rpc::new_payme_id();
    let time = chrono::Utc::now().timestamp_millis() + cfg.clock_offset_ms;
    let create = call(
        p,
        &cfg,
        &url,
        "CreateTransaction",
        json!({"id": payme_id, "time": time, "amount": link.amount, "account": account}),
    )
    .await;
    match &create {
        Ok(Reply::Result(r))
            if field(r, "state") == Some(&json!(1))
                && field(r, "transaction").is_some_and(Value::is_string) => {}
        _ => return refused("CreateTransaction", create, lang),
    }
    p.store().stats.last_payme_id = Some(payme_id.clone());

    if cfg.error_rate > 0.0 && rand::random::<f64>() < cfg.error_rate {
        let cancel = call(
            p,
            &cfg,
            &url,
            "CancelTransaction",
            json!({"id": payme_id, "reason": REASON_DEBIT_ERROR}),
        )
        .await;
        tracing::info!(
            ok = cancel.is_ok(),
            "payme simulator: debit failed, transaction cancelled"
        );
        p.store().stats.debits_failed += 1;
        return PayOutcome::DebitFailed;
    }

    let perform = call(p, &cfg, &url, "PerformTransaction", json!({"id": payme_id})).await;
    match &perform {
        Ok(Reply::Result(r)) if field(r, "state") == Some(&json!(2)) => {
            p.store().stats.payments_performed += 1;
            PayOutcome::Paid
        }
        _ => refused("PerformTransaction", perform, lang),
    }
}

/// The merchant cabinet's "cancel transaction" (a refund after perform):
/// CancelTransaction with `reason`, answered with the merchant's reply.
pub(super) async fn cancel(p: &Payme, payme_id: &str, reason: i64) -> Result<Reply, String> {
    let cfg = p.config();
    let url = cfg
        .merchant_url
        .clone()
        .ok_or("no merchant_url is configured")?;
    call(
        p,
        &cfg,
        &url,
        "CancelTransaction",
        json!({"id": payme_id, "reason": reason}),
    )
    .await
}
