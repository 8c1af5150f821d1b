//! The seed route's floor on this machine: what any design that stores the
//! request before calling the gateway must spend on one waited-for payment,
//! with nothing else.
//!
//! One "request" here is a `POST /v1/payments` (the durable create and its
//! acknowledgement) followed by the two calls the worker makes for a medogram
//! payment — the payer's fetch from the main server and `gateway-send` — made
//! by the load generator itself, one after another. Run it with the workers
//! paused and the sandbox's autopay off, and it is a strict subset of the
//! seed route's own work: the seed route also records the invoice, wakes the
//! waiter, re-reads the payment and (with autopay) takes the callback and the
//! verification. So its rate is an upper bound on the seed route's, and its
//! ratio to `/v1` create is an upper bound on issue 16's target 1
//! (PERFORMANCE.md, "The seed route's floor").

use crate::load::{self, group_report, round3, Outcome, RequestFn};
use crate::scenarios::{apis, client, header, merge, total, user_identifier};
use crate::{sys, Common, LoadArgs};
use clap::Args;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Args, Clone, Debug)]
pub struct FloorArgs {
    /// The medogram gateway the workers use (`PAYMENT_GATEWAY_URL`, e.g. the
    /// sandbox's `…/sandbox/medogram`); the payer is fetched from the same
    /// host (`PAYGATE_USER_URL`'s default).
    #[arg(long)]
    pub gateway: String,
    /// `PAYMENT_API_KEY`: gateway-send's `api` field and the user fetch's key.
    #[arg(long, default_value = "sandbox-medogram-api-key")]
    pub gateway_key: String,
}

pub async fn floor(
    common: &Common,
    load_args: &LoadArgs,
    args: &FloorArgs,
) -> anyhow::Result<Value> {
    let http = client(common)?;
    let apis = apis(common);
    let gateway = Arc::new(args.gateway.trim_end_matches('/').to_string());
    let key = Arc::new(args.gateway_key.clone());
    let f: RequestFn = Arc::new(move |i| {
        let (http, gateway, key) = (http.clone(), gateway.clone(), key.clone());
        let api = apis[(i as usize) % apis.len()].clone();
        Box::pin(async move { one(&http, &api, &gateway, &key, i).await })
    });
    let before = sys::snapshot(&common.watch);
    let result = load::run(load_args.spec(), f).await;
    let after = sys::snapshot(&common.watch);
    let mut out = header(common, "floor", load_args);
    out.insert(
        "route".into(),
        json!("POST /v1/payments, then GET user, then POST gateway-send"),
    );
    let mut all = total(&result);
    merge(&mut out, group_report(&mut all, result.window));
    out.insert(
        "max_send_lag_ms".into(),
        json!(round3(result.max_send_lag.as_secs_f64() * 1000.0)),
    );
    out.insert("cpu_pct".into(), sys::cpu_between(&before, &after));
    Ok(Value::Object(out))
}

/// A failed step: the label names the step and what it answered.
fn failed(step: &str, answer: impl std::fmt::Display) -> Outcome {
    Outcome {
        ok: false,
        label: format!("{step}:{answer}"),
        group: "floor",
    }
}

/// A transport failure of a step (`create:timeout`, `user:connect`, …).
fn unreachable_step(step: &str, e: &reqwest::Error) -> Outcome {
    failed(step, Outcome::transport(e, "floor").label)
}

/// The three calls of one payment; the first that fails names the outcome.
async fn one(http: &reqwest::Client, api: &str, gateway: &str, key: &str, i: u64) -> Outcome {
    let user = user_identifier(i);
    let amount = 100_000 + (i % 7) * 1000;
    let created = http
        .post(format!("{api}/v1/payments"))
        .json(&json!({"amount": amount, "description": "paygate-bench", "user_identifier": user}))
        .send()
        .await;
    let id = match created {
        Ok(r) if r.status().is_success() => {
            let v: Value = r.json().await.unwrap_or(Value::Null);
            match v["id"].as_str() {
                Some(id) => id.to_string(),
                None => return failed("create", "no id"),
            }
        }
        Ok(r) => return failed("create", r.status().as_u16()),
        Err(e) => return unreachable_step("create", &e),
    };
    let fetched = http
        .get(format!("{gateway}/api/users/{user}/"))
        .header("Authorization", format!("Api-Key {key}"))
        .send()
        .await;
    match fetched {
        Ok(r) if r.status().is_success() => drop(r.bytes().await),
        Ok(r) => return failed("user", r.status().as_u16()),
        Err(e) => return unreachable_step("user", &e),
    }
    let amount = amount.to_string();
    let redirect = format!("{api}/crazyminer/payment/callback/");
    let sent = http
        .post(format!("{gateway}/payment/gateway-send"))
        .form(&[
            ("api", key),
            ("amount", amount.as_str()),
            ("redirect", redirect.as_str()),
            ("factorId", id.as_str()),
            ("name", ""),
            ("email", ""),
            ("description", "paygate-bench"),
        ])
        .send()
        .await;
    match sent {
        // gateway-send answers a positive invoice id, or a negative error code.
        Ok(r) if r.status().is_success() => match r.text().await {
            Ok(body) if body.trim().parse::<i64>().is_ok_and(|c| c > 0) => Outcome {
                ok: true,
                label: "invoice".into(),
                group: "floor",
            },
            _ => failed("gateway-send", "no invoice id"),
        },
        Ok(r) => failed("gateway-send", r.status().as_u16()),
        Err(e) => unreachable_step("gateway-send", &e),
    }
}
