//! Shop orders made before a gateway scenario pays them (`payme`, `click`):
//! `POST /api/orders/create`, concurrently, as a shop's checkout would.

use anyhow::bail;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
