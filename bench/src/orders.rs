//! Shop orders made before a gateway scenario pays them (`payme`, `click`):
//! `POST /api/orders/create`, concurrently, as a shop's checkout would.

use crate::load::{self, group_report, round3, LoadResult, LoadSpec, Outcome, Recorder, RequestFn};
use crate::scenarios::{header, merge};
use crate::sys::{self, Watch};
use crate::{Common, LoadArgs};
use anyhow::bail;
use futures::future::BoxFuture;
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
    pub phases: PayPhases,
    /// Each call's latency, by the names in `call_groups`.
    pub calls: Recorder,
    pub call_groups: &'static [&'static str],
    pub note: &'static str,
}

/// Pays order `i` (all of its calls in turn): what its repeats need (ids, the
/// first answer), or the label of the call that went wrong.
pub type PayFn<P> = Arc<dyn Fn(u64) -> BoxFuture<'static, Result<P, String>> + Send + Sync>;

/// Re-sends the settling call for a paid order: `Ok` when it answered as a
/// repeat must (the first answer again, "already paid"), else what it answered.
pub type RepeatFn<P> = Arc<dyn Fn(u64, P) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// What [`pay_then_repeat`] measured.
pub struct PayPhases {
    /// The pay phase: one request = one order paid (group `pay`).
    pub paying: LoadResult,
    /// The optional repeats of the settling call (group `repeat`).
    pub repeating: Option<LoadResult>,
    pub orders_paid: usize,
    /// The watched processes' CPU over both phases.
    pub cpu: Value,
}

/// The two phases every gateway-pays-orders scenario runs over its `n` ready
/// orders: each order paid once (group `pay`, no warm-up: it would use orders
/// up), then `repeats` re-sends of the settling call per paid order (group
/// `repeat`, counted ok under `repeat_label`).
pub async fn pay_then_repeat<P: Clone + Send + Sync + 'static>(
    watch: &[Watch],
    spec: LoadSpec,
    n: u64,
    repeats: u64,
    pay: PayFn<P>,
    repeat: RepeatFn<P>,
    repeat_label: &'static str,
) -> PayPhases {
    let before = sys::snapshot(watch);
    let paid = Arc::new(Mutex::new(Vec::<P>::new()));
    let pay_one: RequestFn = {
        let paid = paid.clone();
        Arc::new(move |i| {
            let (pay, paid) = (pay.clone(), paid.clone());
            Box::pin(async move {
                let (ok, label) = match pay(i).await {
                    Ok(proof) => {
                        paid.lock().unwrap().push(proof);
                        (true, "paid".to_string())
                    }
                    Err(label) => (false, label),
                };
                Outcome {
                    ok,
                    label,
                    group: "pay",
                }
            })
        })
    };
    let spec = LoadSpec {
        warmup: Duration::ZERO,
        max_requests: Some(n),
        ..spec
    };
    let paying = load::run(spec, pay_one).await;
    let paid = Arc::new(std::mem::take(&mut *paid.lock().unwrap()));
    let repeat_total = paid.len() as u64 * repeats;
    let repeating = if repeat_total == 0 {
        None
    } else {
        let m = paid.len() as u64;
        let repeat_one: RequestFn = {
            let paid = paid.clone();
            Arc::new(move |i| {
                let (repeat, proof) = (repeat.clone(), paid[(i % m) as usize].clone());
                Box::pin(async move {
                    let (ok, label) = match repeat(i, proof).await {
                        Ok(()) => (true, repeat_label.to_string()),
                        Err(label) => (false, label),
                    };
                    Outcome {
                        ok,
                        label,
                        group: "repeat",
                    }
                })
            })
        };
        let spec = LoadSpec {
            max_requests: Some(repeat_total),
            ..spec
        };
        Some(load::run(spec, repeat_one).await)
    };
    PayPhases {
        paying,
        repeating,
        orders_paid: paid.len(),
        cpu: sys::cpu_between(&before, &sys::snapshot(watch)),
    }
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
    let window = run.phases.paying.window;
    let mut pay_group = run
        .phases
        .paying
        .recorder
        .groups
        .remove("pay")
        .unwrap_or_default();
    let pay = group_report(&mut pay_group, window);
    out.insert("payments_per_s".into(), pay["throughput_rps"].clone());
    merge(&mut out, pay);
    out.insert("orders_paid".into(), json!(run.phases.orders_paid));
    out.insert("pay_s".into(), json!(round3(window.as_secs_f64())));
    let mut calls = Map::new();
    for name in run.call_groups {
        let mut g = run.calls.groups.remove(*name).unwrap_or_default();
        calls.insert((*name).into(), group_report(&mut g, window));
    }
    out.insert("calls".into(), Value::Object(calls));
    let repeat = match run.phases.repeating.as_mut() {
        Some(r) => {
            let mut g = r.recorder.groups.remove("repeat").unwrap_or_default();
            group_report(&mut g, r.window)
        }
        None => Value::Null,
    };
    out.insert("repeat".into(), repeat);
    out.insert("note".into(), json!(run.note));
    let lag = run.phases.paying.max_send_lag.max(
        run.phases
            .repeating
            .as_ref()
            .map_or(Duration::ZERO, |r| r.max_send_lag),
    );
    out.insert(
        "max_send_lag_ms".into(),
        json!(round3(lag.as_secs_f64() * 1000.0)),
    );
    out.insert(
        "requests_sent_incl_warmup".into(),
        json!(run.phases.paying.sent + run.phases.repeating.as_ref().map_or(0, |r| r.sent)),
    );
    out.insert("cpu_pct".into(), run.phases.cpu);
    out
}
