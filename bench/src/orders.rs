//! Shop orders made before a gateway scenario pays them (`payme`, `click`):
//! `POST /api/orders/create`, concurrently, as a shop's checkout would.

use crate::load::{group_report, round3, LoadResult, Recorder};
use crate::scenarios::{header, merge};
use crate::{Common, LoadArgs};
use anyhow::bail;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which orders to make.
pub struct OrderSet {
    /// The seed's `payment_type` (`payme`, `click`).
    pub payment_type: &'static str,
    pub count: usize,
    pub concurrency: usize,
    /// Each order's amount in tiyin (sent as so'm with two decimals, exact).
    pub amount_tiyin: u64,
}

/// Creates the orders, concurrently; their ids.
pub async fn make_orders(
    http: &reqwest::Client,
    apis: &Arc<Vec<String>>,
    set_spec: &OrderSet,
) -> anyhow::Result<Vec<i64>> {
    let amount = format!(
        "{}.{:02}",
        set_spec.amount_tiyin / 100,
        set_spec.amount_tiyin % 100
    );
    let payment_type = set_spec.payment_type;
    let next = Arc::new(AtomicUsize::new(0));
    let out = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..set_spec.concurrency.max(1) {
        let (http, apis, next, out, failures, amount) = (
            http.clone(),
            apis.clone(),
            next.clone(),
            out.clone(),
            failures.clone(),
            amount.clone(),
        );
        let n = set_spec.count;
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let base = &apis[i % apis.len()];
                let body = json!({"product_name": "paygate-bench", "amount": amount, "payment_type": payment_type});
                let r = http
                    .post(format!("{base}/api/orders/create"))
                    .json(&body)
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        match v["order_id"].as_i64() {
                            Some(id) => out.lock().unwrap().push(id),
                            None => failures.lock().unwrap().push(format!("no order_id: {v}")),
                        }
                    }
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        let text: String = text.chars().take(200).collect();
                        failures.lock().unwrap().push(format!("{status}: {text}"));
                    }
                    Err(e) => failures.lock().unwrap().push(e.to_string()),
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    let orders = std::mem::take(&mut *out.lock().unwrap());
    if orders.is_empty() {
        let f = failures.lock().unwrap();
        bail!(
            "no {payment_type} order was created (is {payment_type} configured on the server, or `paygate serve`'s simulator?): {:?}",
            f.iter().take(3).collect::<Vec<_>>()
        );
    }
    Ok(orders)
}

/// What a gateway-pays-orders scenario measured, for [`report`].
pub struct PayRun {
    pub scenario: &'static str,
    pub route: &'static str,
    pub orders_requested: usize,
    pub orders_ready: u64,
    pub setup_s: f64,
    /// The pay phase: one request = one order paid (group `pay`).
    pub paying: LoadResult,
    /// The optional repeats of the settling call (group `repeat`).
    pub repeating: Option<LoadResult>,
    pub orders_paid: usize,
    /// Each call's latency, by the names in `call_groups`.
    pub calls: Recorder,
    pub call_groups: &'static [&'static str],
    pub note: &'static str,
    pub cpu: Value,
}

/// The report every gateway-pays-orders scenario prints: payments/s and
/// latency of the pay phase, each call's figures, the repeats'.
pub fn report(common: &Common, load_args: &LoadArgs, mut run: PayRun) -> Map<String, Value> {
    let mut out = header(common, run.scenario, load_args);
    out.insert("warmup_s".into(), json!(0));
    out.insert("route".into(), json!(run.route));
    out.insert(
        "setup".into(),
        json!({"orders_requested": run.orders_requested, "orders_ready": run.orders_ready, "seconds": round3(run.setup_s)}),
    );
    let window = run.paying.window;
    let mut pay_group = run.paying.recorder.groups.remove("pay").unwrap_or_default();
    let pay = group_report(&mut pay_group, window);
    out.insert("payments_per_s".into(), pay["throughput_rps"].clone());
    merge(&mut out, pay);
    out.insert("orders_paid".into(), json!(run.orders_paid));
    out.insert("pay_s".into(), json!(round3(window.as_secs_f64())));
    let mut calls = Map::new();
    for name in run.call_groups {
        let mut g = run.calls.groups.remove(*name).unwrap_or_default();
        calls.insert((*name).into(), group_report(&mut g, window));
    }
    out.insert("calls".into(), Value::Object(calls));
    let repeat = match run.repeating.as_mut() {
        Some(r) => {
            let mut g = r.recorder.groups.remove("repeat").unwrap_or_default();
            group_report(&mut g, r.window)
        }
        None => Value::Null,
    };
    out.insert("repeat".into(), repeat);
    out.insert("note".into(), json!(run.note));
    let lag = run.paying.max_send_lag.max(
        run.repeating
            .as_ref()
            .map_or(Duration::ZERO, |r| r.max_send_lag),
    );
    out.insert(
        "max_send_lag_ms".into(),
        json!(round3(lag.as_secs_f64() * 1000.0)),
    );
    out.insert(
        "requests_sent_incl_warmup".into(),
        json!(run.paying.sent + run.repeating.as_ref().map_or(0, |r| r.sent)),
    );
    out.insert("cpu_pct".into(), run.cpu);
    out
}
