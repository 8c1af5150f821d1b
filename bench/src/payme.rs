//! The `payme` scenario: Payme's JSON-RPC calls to `POST /payme/` as Payme
//! makes them when a customer pays (docs/gateways/payme.md, "Methods"):
//! CheckPerformTransaction → CreateTransaction → PerformTransaction for each
//! order, one after the other; then, optionally, PerformTransaction again for
//! paid orders (Payme repeats a call it got no answer to, and a repeat must get
//! the same answer).
//!
//! One request of the report is one order paid; each call's latency is also
//! reported per method.

use crate::load::{Outcome, Recorder};
use crate::orders::{make_orders, pay_then_repeat, report, OrderSet, PayFn, PayRun, RepeatFn};
use crate::scenarios::{apis, client};
use crate::{Common, LoadArgs};
use clap::Args;
use paygate_common::gateways::payme::auth::authorization_header;
use paygate_common::gateways::payme::settings::SIMULATOR_KEY;
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const CHECK: &str = "CheckPerformTransaction";
const CREATE: &str = "CreateTransaction";
const PERFORM: &str = "PerformTransaction";

#[derive(Args, Clone, Debug)]
pub struct PaymeArgs {
    /// Orders to create first (`payment_type` payme); each is paid once. The
    /// pay phase ends when every order is paid or after --duration, whichever
    /// comes first.
    #[arg(long, default_value_t = 500)]
    pub orders: usize,
    /// Concurrency of the order set-up phase.
    #[arg(long, default_value_t = 16)]
    pub setup_concurrency: usize,
    /// The cashbox key Payme authenticates with (PAYME_KEY of the server; by
    /// default the built-in simulator's, which `paygate serve` uses when no
    /// PAYME_* is set).
    #[arg(long, default_value = SIMULATOR_KEY, hide_default_value = true)]
    pub payme_key: String,
    /// The account field the order id is sent in (PAYME_ACCOUNT_FIELD of the server).
    #[arg(long, default_value = "order_id")]
    pub account_field: String,
    /// Order amount in tiyin (the order is created for amount/100 so'm).
    #[arg(long, default_value_t = 5000)]
    pub amount_tiyin: u64,
    /// After paying, re-send PerformTransaction this many times per paid
    /// order (each answer must be state 2 with the first perform_time).
    #[arg(long, default_value_t = 0)]
    pub repeats: u64,
}

/// What every call needs.
#[derive(Clone)]
struct Rpc {
    http: reqwest::Client,
    apis: Arc<Vec<String>>,
    auth: Arc<str>,
    /// Each call's latency and answer, grouped by method.
    calls: Arc<Mutex<Recorder>>,
}

impl Rpc {
    /// One JSON-RPC call: its `result`, or a label for what went wrong
    /// (`http:503`, `error:-31008`, `timeout`, …).
    async fn call(
        &self,
        i: u64,
        rpc_id: u64,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let base = &self.apis[(i as usize) % self.apis.len()];
        let body = json!({"id": rpc_id, "method": method, "params": params});
        let r = self
            .http
            .post(format!("{base}/payme/"))
            .header("Authorization", &*self.auth)
            .json(&body)
            .send()
            .await
            .map_err(|e| Outcome::transport(&e, "").label)?;
        let status = r.status().as_u16();
        // Read the whole body: the answer is not complete before.
        let v: Result<Value, _> = r.json().await;
        if status != 200 {
            return Err(format!("http:{status}"));
        }
        let v = v.map_err(|_| "not-json".to_string())?;
        if let Some(code) = v["error"]["code"].as_i64() {
            return Err(format!("error:{code}"));
        }
        match &v["result"] {
            Value::Object(_) => Ok(v["result"].clone()),
            _ => Err("no-result".into()),
        }
    }

    /// A call whose `result[field]` must be `want`; its latency is recorded
    /// under the method's name.
    async fn step(
        &self,
        i: u64,
        rpc_id: u64,
        method: &'static str,
        params: Value,
        (field, want): (&str, Value),
    ) -> Result<Value, String> {
        let t0 = Instant::now();
        let answer = self
            .call(i, rpc_id, method, params)
            .await
            .and_then(|r| match &r[field] {
                v if *v == want => Ok(r),
                v => Err(format!("{field}={v}")),
            });
        let outcome = Outcome {
            ok: answer.is_ok(),
            label: answer
                .as_ref()
                .err()
                .cloned()
                .unwrap_or_else(|| "ok".into()),
            group: method,
        };
        self.calls.lock().unwrap().record(&outcome, t0.elapsed());
        answer.map_err(|label| format!("{method} {label}"))
    }
}

/// A Payme transaction id unique to this run and order: 24 hex characters,
/// the run's start in milliseconds then the order's index.
fn payme_id(run: u64, i: u64) -> String {
    format!(
        "{:012x}{:012x}",
        run & 0xffff_ffff_ffff,
        i & 0xffff_ffff_ffff
    )
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub async fn payme(
    common: &Common,
    load_args: &LoadArgs,
    args: &PaymeArgs,
) -> anyhow::Result<Value> {
    let http = client(common)?;
    let apis = apis(common);
    let setup_started = Instant::now();
    let orders = Arc::new(
        make_orders(
            &http,
            &apis,
            &OrderSet {
                payment_type: "payme",
                count: args.orders,
                concurrency: args.setup_concurrency,
                amount_tiyin: args.amount_tiyin,
            },
        )
        .await?,
    );
    let setup_s = setup_started.elapsed().as_secs_f64();
    let n = orders.len() as u64;
    let rpc = Rpc {
        http,
        apis,
        auth: authorization_header(&args.payme_key).into(),
        calls: Arc::new(Mutex::new(Recorder::default())),
    };
    let run = now_ms();
    // A paid order's proof for its repeats: (Payme id, perform_time).
    let pay: PayFn<(String, Value)> = {
        let (rpc, orders) = (rpc.clone(), orders.clone());
        let (field, amount) = (args.account_field.clone(), args.amount_tiyin);
        Arc::new(move |i| {
            let rpc = rpc.clone();
            let order = orders[(i % n) as usize];
            let mut account = Map::new();
            account.insert(field.clone(), json!(order.to_string()));
            let account = Value::Object(account);
            let id = payme_id(run, i);
            Box::pin(async move {
                rpc.step(
                    i,
                    3 * i,
                    CHECK,
                    json!({"amount": amount, "account": account}),
                    ("allow", json!(true)),
                )
                .await?;
                rpc.step(
                    i,
                    3 * i + 1,
                    CREATE,
                    json!({"id": id, "time": now_ms(), "amount": amount, "account": account}),
                    ("state", json!(1)),
                )
                .await?;
                let performed = rpc
                    .step(
                        i,
                        3 * i + 2,
                        PERFORM,
                        json!({"id": id}),
                        ("state", json!(2)),
                    )
                    .await?;
                Ok((id, performed["perform_time"].clone()))
            })
        })
    };
    let repeat: RepeatFn<(String, Value)> = {
        let rpc = rpc.clone();
        Arc::new(move |i, (id, perform_time)| {
            let rpc = rpc.clone();
            Box::pin(async move {
                match rpc.call(i, 3 * n + i, PERFORM, json!({"id": id})).await {
                    Ok(r) if r["state"] == 2 && r["perform_time"] == perform_time => Ok(()),
                    Ok(r) if r["state"] == 2 => Err("perform_time-changed".to_string()),
                    Ok(r) => Err(format!("state={}", r["state"])),
                    Err(label) => Err(label),
                }
            })
        })
    };
    let phases = pay_then_repeat(
        &common.watch,
        load_args.spec(),
        n,
        args.repeats,
        pay,
        repeat,
        "same-answer",
    )
    .await;
    let out = report(
        common,
        load_args,
        PayRun {
            scenario: "payme",
            route: "POST /payme/",
            orders_requested: args.orders,
            orders_ready: n,
            setup_s,
            phases,
            calls: std::mem::take(&mut *rpc.calls.lock().unwrap()),
            call_groups: &[CHECK, CREATE, PERFORM],
            note: "one request = one order paid (CheckPerformTransaction, CreateTransaction, PerformTransaction in turn; ok only if Perform answered state 2), so throughput_rps = payments/s; calls = each call's latency by method; repeat = PerformTransaction re-sent for paid orders (ok only if state 2 with the first perform_time)",
        },
    );
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payme_ids_are_24_hex_characters_and_distinct_per_order() {
        let a = payme_id(1_764_680_000_000, 0);
        let b = payme_id(1_764_680_000_000, 1);
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
        assert_ne!(a, payme_id(1_764_680_000_001, 0));
    }
}
