//! The `click` scenario: Click SHOP-API calls paying shop orders as Click
//! makes them (docs/gateways/click.md, "Flow", "Prepare request", "Complete request"): for each
//! order a form-encoded, md5-signed Prepare (`action=0`) to
//! `POST /click/prepare/`, then Complete (`action=1`, with the
//! `merchant_prepare_id` Prepare answered) to `POST /click/complete/`, one
//! after the other, many orders at once; then, optionally, Complete again for
//! paid orders (Click re-sends a call it got no answer to; a repeat after
//! success must answer -4 "already paid" and change nothing).
//!
//! One request of the report is one order paid; each call's latency is also
//! reported per action.

use crate::load::{Outcome, Recorder};
use crate::orders::{make_orders, pay_then_repeat, report, OrderSet, PayFn, PayRun, RepeatFn};
use crate::scenarios::{apis, client};
use crate::{Common, LoadArgs};
use clap::{Args, ValueEnum};
use paygate_common::gateways::click::protocol::SignInput;
use paygate_common::gateways::click::settings::{SANDBOX_SECRET_KEY, SANDBOX_SERVICE_ID};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const PREPARE: &str = "prepare";
const COMPLETE: &str = "complete";
/// Click's "already paid" answer to a Complete repeated after success.
const ALREADY_PAID: i64 = -4;

/// How `amount` is printed: Click's own format is not settled
/// (docs/gateways/click.md, "Amounts and ids", "Open questions"), paygate accepts all three.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AmountText {
    /// `50`
    Integer,
    /// `50.0`
    OneDecimal,
    /// `50.00`
    TwoDecimals,
}

impl AmountText {
    /// `tiyin` as so'm text; exact (a fraction of a so'm is always printed).
    fn text(self, tiyin: u64) -> String {
        let (som, t) = (tiyin / 100, tiyin % 100);
        match self {
            AmountText::TwoDecimals => format!("{som}.{t:02}"),
            _ if t % 10 != 0 => format!("{som}.{t:02}"),
            AmountText::OneDecimal => format!("{som}.{}", t / 10),
            AmountText::Integer if t == 0 => som.to_string(),
            AmountText::Integer => format!("{som}.{}", t / 10),
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct ClickArgs {
    /// Orders to create first (`payment_type` click); each is paid once. The
    /// pay phase ends when every order is paid or after --duration, whichever
    /// comes first.
    #[arg(long, default_value_t = 500)]
    pub orders: usize,
    /// Concurrency of the order set-up phase.
    #[arg(long, default_value_t = 16)]
    pub setup_concurrency: usize,
    /// The secret key requests are signed with (CLICK_SECRET_KEY of the
    /// server; by default the built-in simulator's).
    #[arg(long, default_value = SANDBOX_SECRET_KEY, hide_default_value = true)]
    pub click_secret_key: String,
    /// CLICK_SERVICE_ID of the server.
    #[arg(long, default_value_t = SANDBOX_SERVICE_ID)]
    pub click_service_id: i64,
    /// Order amount in tiyin (the order is created for amount/100 so'm).
    #[arg(long, default_value_t = 5000)]
    pub amount_tiyin: u64,
    /// How the `amount` field is printed.
    #[arg(long, value_enum, default_value_t = AmountText::TwoDecimals)]
    pub amount_format: AmountText,
    /// After paying, re-send Complete this many times per paid order (each
    /// answer must be -4, already paid).
    #[arg(long, default_value_t = 0)]
    pub repeats: u64,
}

/// One attempt's texts, as Click sends them.
#[derive(Clone)]
struct Attempt {
    click_trans_id: String,
    click_paydoc_id: String,
    merchant_trans_id: String,
    amount: String,
}

/// What every call needs.
#[derive(Clone)]
struct Shop {
    http: reqwest::Client,
    apis: Arc<Vec<String>>,
    secret: Arc<str>,
    service_id: Arc<str>,
    /// Each call's latency and answer, grouped by action.
    calls: Arc<Mutex<Recorder>>,
}

impl Shop {
    /// One signed call: the JSON answer, or a label for what went wrong at
    /// the HTTP level (`http:503`, `timeout`, `not-json`, …).
    async fn call(&self, i: u64, a: &Attempt, prepare_id: Option<&str>) -> Result<Value, String> {
        let (action, path) = match prepare_id {
            None => ("0", "/click/prepare/"),
            Some(_) => ("1", "/click/complete/"),
        };
        let sign_time = sign_time_now();
        let sign = SignInput {
            click_trans_id: &a.click_trans_id,
            service_id: &self.service_id,
            merchant_trans_id: &a.merchant_trans_id,
            merchant_prepare_id: prepare_id,
            amount: &a.amount,
            action,
            sign_time: &sign_time,
        }
        .sign(&self.secret);
        let mut form: Vec<(&str, &str)> = vec![
            ("click_trans_id", &a.click_trans_id),
            ("service_id", &self.service_id),
            ("click_paydoc_id", &a.click_paydoc_id),
            ("merchant_trans_id", &a.merchant_trans_id),
            ("amount", &a.amount),
            ("action", action),
            ("error", "0"),
            ("error_note", "Success"),
            ("sign_time", &sign_time),
            ("sign_string", &sign),
        ];
        if let Some(id) = prepare_id {
            form.push(("merchant_prepare_id", id));
        }
        let base = &self.apis[(i as usize) % self.apis.len()];
        let r = self
            .http
            .post(format!("{base}{path}"))
            .form(&form)
            .send()
            .await
            .map_err(|e| Outcome::transport(&e, "").label)?;
        let status = r.status().as_u16();
        // Read the whole body: the answer is not complete before.
        let v: Result<Value, _> = r.json().await;
        if status != 200 {
            return Err(format!("http:{status}"));
        }
        v.map_err(|_| "not-json".to_string())
    }

    /// A call whose `error` must be `want`; its latency is recorded under the
    /// action's name.
    async fn step(
        &self,
        i: u64,
        a: &Attempt,
        prepare_id: Option<&str>,
        want: i64,
    ) -> Result<Value, String> {
        let group = if prepare_id.is_none() {
            PREPARE
        } else {
            COMPLETE
        };
        let t0 = Instant::now();
        let answer = self
            .call(i, a, prepare_id)
            .await
            .and_then(|v| match v["error"].as_i64() {
                Some(e) if e == want => Ok(v),
                Some(e) => Err(format!("error:{e}")),
                None => Err("no-error-field".into()),
            });
        let outcome = Outcome {
            ok: answer.is_ok(),
            label: answer
                .as_ref()
                .err()
                .cloned()
                .unwrap_or_else(|| "ok".into()),
            group,
        };
        self.calls.lock().unwrap().record(&outcome, t0.elapsed());
        answer.map_err(|label| format!("{group} {label}"))
    }

    /// Prepare then Complete; the attempt and its `merchant_prepare_id` once paid.
    async fn pay(&self, i: u64, a: &Attempt) -> Result<String, String> {
        let prepared = self.step(i, a, None, 0).await?;
        let prepare_id = match &prepared["merchant_prepare_id"] {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            v => return Err(format!("prepare merchant_prepare_id={v}")),
        };
        let completed = self.step(i, a, Some(&prepare_id), 0).await?;
        if completed["merchant_confirm_id"].is_null() {
            return Err("complete without merchant_confirm_id".into());
        }
        Ok(prepare_id)
    }
}

/// Click's `sign_time`: Tashkent wall-clock time (UTC+5), `YYYY-MM-DD HH:mm:ss`.
fn sign_time_now() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(5))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub async fn click(
    common: &Common,
    load_args: &LoadArgs,
    args: &ClickArgs,
) -> anyhow::Result<Value> {
    let http = client(common)?;
    let apis = apis(common);
    let setup_started = Instant::now();
    let orders = Arc::new(
        make_orders(
            &http,
            &apis,
            &OrderSet {
                payment_type: "click",
                count: args.orders,
                concurrency: args.setup_concurrency,
                amount_tiyin: args.amount_tiyin,
            },
        )
        .await?,
    );
    let setup_s = setup_started.elapsed().as_secs_f64();
    let n = orders.len() as u64;
    let shop = Shop {
        http,
        apis,
        secret: args.click_secret_key.as_str().into(),
        service_id: args.click_service_id.to_string().into(),
        calls: Arc::new(Mutex::new(Recorder::default())),
    };
    // Click's ids are unique per attempt; this run's start keeps runs apart.
    let run = now_ms() * 1000;
    let amount = args.amount_format.text(args.amount_tiyin);
    // A paid order's proof for its repeats: (attempt, merchant_prepare_id).
    let pay: PayFn<(Attempt, String)> = {
        let (shop, orders, amount) = (shop.clone(), orders.clone(), amount.clone());
        Arc::new(move |i| {
            let shop = shop.clone();
            let attempt = Attempt {
                click_trans_id: (run + i).to_string(),
                click_paydoc_id: (run + n + i).to_string(),
                merchant_trans_id: orders[(i % n) as usize].to_string(),
                amount: amount.clone(),
            };
            Box::pin(async move {
                let prepare_id = shop.pay(i, &attempt).await?;
                Ok((attempt, prepare_id))
            })
        })
    };
    let repeat: RepeatFn<(Attempt, String)> = {
        let shop = shop.clone();
        Arc::new(move |i, (attempt, prepare_id)| {
            let shop = shop.clone();
            Box::pin(async move {
                match shop.call(i, &attempt, Some(&prepare_id)).await {
                    Ok(v) if v["error"].as_i64() == Some(ALREADY_PAID) => Ok(()),
                    Ok(v) => Err(format!("error:{}", v["error"])),
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
        "already-paid",
    )
    .await;
    let mut out = report(
        common,
        load_args,
        PayRun {
            scenario: "click",
            route: "POST /click/prepare/ then POST /click/complete/",
            orders_requested: args.orders,
            orders_ready: n,
            setup_s,
            phases,
            calls: std::mem::take(&mut *shop.calls.lock().unwrap()),
            call_groups: &[PREPARE, COMPLETE],
            note: "one request = one order paid (Prepare then Complete, ok only if both answered error 0 and Complete a merchant_confirm_id), so throughput_rps = payments/s; calls = each call's latency by action; repeat = Complete re-sent for paid orders (ok only if it answered -4, already paid)",
        },
    );
    out.insert("amount_text".into(), json!(amount));
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_print_exactly_in_each_format() {
        use AmountText::*;
        assert_eq!(Integer.text(5000), "50");
        assert_eq!(OneDecimal.text(5000), "50.0");
        assert_eq!(TwoDecimals.text(5000), "50.00");
        // A fraction of a so'm is never dropped.
        assert_eq!(Integer.text(5050), "50.5");
        assert_eq!(OneDecimal.text(5050), "50.5");
        assert_eq!(Integer.text(5005), "50.05");
        assert_eq!(TwoDecimals.text(5005), "50.05");
    }

    #[test]
    fn sign_time_is_click_shaped() {
        let t = sign_time_now();
        assert_eq!(t.len(), 19, "{t}");
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], " ");
    }
}
