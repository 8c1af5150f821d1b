//! The scenarios: what each request is, and what is reported.

use crate::load::{self, group_report, percentiles, round3, LoadResult, Outcome, RequestFn};
use crate::sys;
use crate::{Common, LoadArgs, Route};
use anyhow::{bail, Context};
use clap::Args;
use paygate_common::gateways::atmos::{sign, SignAlgorithm};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) fn client(common: &Common) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs_f64(common.timeout.max(0.1)))
        .build()
        .context("building the HTTP client")
}

pub(crate) fn apis(common: &Common) -> Arc<Vec<String>> {
    Arc::new(
        common
            .api
            .iter()
            .map(|a| a.trim_end_matches('/').to_string())
            .collect(),
    )
}

pub(crate) fn header(common: &Common, scenario: &str, load: &LoadArgs) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("tool".into(), json!("paygate-bench"));
    m.insert("scenario".into(), json!(scenario));
    m.insert("label".into(), json!(common.label));
    m.insert("api".into(), json!(common.api));
    let spec = load.spec();
    m.insert(
        "loop".into(),
        json!(if spec.rate.is_some() {
            "open"
        } else {
            "closed"
        }),
    );
    m.insert(
        "concurrency".into(),
        if spec.rate.is_some() {
            Value::Null
        } else {
            json!(spec.concurrency)
        },
    );
    m.insert("rate".into(), json!(spec.rate));
    m.insert("duration_s".into(), json!(load.duration));
    m.insert("warmup_s".into(), json!(load.warmup));
    m
}

/// The figures of every group together.
pub(crate) fn total(result: &LoadResult) -> load::Group {
    let mut all = load::Group::default();
    for g in result.recorder.groups.values() {
        all.ok_us.extend(&g.ok_us);
        all.err_us.extend(&g.err_us);
        for (l, n) in &g.labels {
            *all.labels.entry(l.clone()).or_default() += n;
        }
        for (l, n) in &g.errors {
            *all.errors.entry(l.clone()).or_default() += n;
        }
    }
    all
}

pub(crate) fn merge(into: &mut Map<String, Value>, v: Value) {
    if let Value::Object(m) = v {
        into.extend(m);
    }
}

pub(crate) fn user_identifier(i: u64) -> String {
    format!("0912{:07}", i % 10_000_000)
}

/// One creation request; `ids` collects the ids of acknowledged payments.
fn create_request(
    http: reqwest::Client,
    apis: Arc<Vec<String>>,
    route: Route,
    ids: Option<Arc<Mutex<Vec<String>>>>,
) -> RequestFn {
    Arc::new(move |i| {
        let http = http.clone();
        let base = apis[(i as usize) % apis.len()].clone();
        let ids = ids.clone();
        Box::pin(async move {
            let body = json!({
                "amount": 100_000 + (i % 7) * 1000,
                "description": "paygate-bench",
                "user_identifier": user_identifier(i),
            });
            let url = match route {
                Route::V1 => format!("{base}/v1/payments"),
                Route::Seed => format!("{base}/crazyminer/payment/create/"),
            };
            match http.post(url).json(&body).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let ok = r.status().is_success();
                    // Read the whole body: the answer is not complete before.
                    let bytes = r.bytes().await;
                    if ok {
                        if let Some(ids) = &ids {
                            let v: Value = bytes
                                .ok()
                                .and_then(|b| serde_json::from_slice(&b).ok())
                                .unwrap_or(Value::Null);
                            let id = v["id"].as_str().or(v["transaction_id"].as_str());
                            if let Some(id) = id {
                                ids.lock().unwrap().push(id.to_string());
                            }
                        }
                    }
                    Outcome::status(ok, status, "create")
                }
                Err(e) => Outcome::transport(&e, "create"),
            }
        })
    })
}

pub async fn create(common: &Common, load_args: &LoadArgs, route: Route) -> anyhow::Result<Value> {
    let http = client(common)?;
    let apis = apis(common);
    let f = create_request(http, apis, route, None);
    let before = sys::snapshot(&common.watch);
    let result = load::run(load_args.spec(), f).await;
    let after = sys::snapshot(&common.watch);
    let mut out = header(common, "create", load_args);
    out.insert(
        "route".into(),
        json!(match route {
            Route::V1 => "POST /v1/payments",
            Route::Seed => "POST /crazyminer/payment/create/",
        }),
    );
    let mut all = total(&result);
    if route == Route::Seed {
        // The seed route answers 201 once the payment URL is there and 202
        // when its bounded wait ran out first: how often each happened.
        let answered = |code: &str| all.labels.get(code).copied().unwrap_or(0);
        let (with_url, pending) = (answered("201"), answered("202"));
        out.insert(
            "seed_answers".into(),
            json!({
                "with_payment_url_201": with_url,
                "still_pending_202": pending,
                "with_url_share": if with_url + pending == 0 {
                    Value::Null
                } else {
                    json!(round3(with_url as f64 / (with_url + pending) as f64))
                },
            }),
        );
    }
    merge(&mut out, group_report(&mut all, result.window));
    out.insert(
        "max_send_lag_ms".into(),
        json!(round3(result.max_send_lag.as_secs_f64() * 1000.0)),
    );
    out.insert("requests_sent_incl_warmup".into(), json!(result.sent));
    out.insert("cpu_pct".into(), sys::cpu_between(&before, &after));
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------
// webhook
// ---------------------------------------------------------------------------

#[derive(Args, Clone, Debug)]
pub struct WebhookArgs {
    /// Orders to create first (each gets one Atmos transaction). The first
    /// webhook of each is the `first` group; later ones are `repeat`.
    #[arg(long, default_value_t = 500)]
    pub orders: usize,
    /// Concurrency of the order set-up phase.
    #[arg(long, default_value_t = 16)]
    pub setup_concurrency: usize,
    /// Atmos store id the webhook names (ATMOS_STORE_ID of the server).
    #[arg(long, default_value = "8157")]
    pub store_id: String,
    /// The key webhooks are signed with (ATMOS_API_KEY of the server).
    #[arg(long, default_value = "sandbox-atmos-api-key")]
    pub atmos_api_key: String,
    /// Order amount in tiyin (the order is created for amount/100 so'm).
    #[arg(long, default_value_t = 5000)]
    pub amount_tiyin: u64,
    /// Send only first deliveries: stop when every transaction had one.
    #[arg(long)]
    pub first_only: bool,
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

/// Creates `n` Atmos orders and returns (order id, Atmos transaction id) of
/// each one whose payment link appeared.
async fn make_orders(
    http: &reqwest::Client,
    apis: &Arc<Vec<String>>,
    args: &WebhookArgs,
) -> anyhow::Result<Vec<(String, String)>> {
    let amount = format!("{}.{:02}", args.amount_tiyin / 100, args.amount_tiyin % 100);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let out = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..args.setup_concurrency.max(1) {
        let (http, apis, next, out, failures, amount) = (
            http.clone(),
            apis.clone(),
            next.clone(),
            out.clone(),
            failures.clone(),
            amount.clone(),
        );
        let n = args.orders;
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let base = &apis[i % apis.len()];
                let body = json!({"product_name": "paygate-bench", "amount": amount, "payment_type": "atmos"});
                let r = http
                    .post(format!("{base}/v1/orders"))
                    .header("Prefer", "wait=10")
                    .json(&body)
                    .send()
                    .await;
                let v: Value = match r {
                    Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
                    Ok(r) => {
                        failures.lock().unwrap().push(format!("{}", r.status()));
                        continue;
                    }
                    Err(e) => {
                        failures.lock().unwrap().push(e.to_string());
                        continue;
                    }
                };
                let Some(order_id) = v["order_id"].as_i64() else {
                    continue;
                };
                // Poll until the invoice job gave the order its checkout link.
                let mut url = v["payment_url"].as_str().map(str::to_string);
                let deadline = Instant::now() + Duration::from_secs(30);
                while url.is_none() && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    // Reading an order needs its token (or an API key).
                    let token = v["order_token"].as_str().unwrap_or_default();
                    let read = format!("{base}/v1/orders/{order_id}?token={token}");
                    if let Ok(r) = http.get(&read).send().await {
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        url = v["payment_url"].as_str().map(str::to_string);
                    }
                }
                match url.as_deref().and_then(|u| query_param(u, "transactionId")) {
                    Some(txn) => out.lock().unwrap().push((order_id.to_string(), txn)),
                    None => failures
                        .lock()
                        .unwrap()
                        .push(format!("order {order_id}: no transactionId")),
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    let orders = std::mem::take(&mut *out.lock().unwrap());
    if orders.is_empty() {
        let f = failures.lock().unwrap();
        bail!(
            "no order got an Atmos transaction id (is Atmos configured on the server?): {:?}",
            f.iter().take(3).collect::<Vec<_>>()
        );
    }
    Ok(orders)
}

pub async fn webhook(
    common: &Common,
    load_args: &LoadArgs,
    args: &WebhookArgs,
) -> anyhow::Result<Value> {
    let http = client(common)?;
    let apis = apis(common);
    let setup_started = Instant::now();
    let orders = Arc::new(make_orders(&http, &apis, args).await?);
    let setup_s = setup_started.elapsed().as_secs_f64();
    let amount = args.amount_tiyin.to_string();
    // The bodies are signed once, before the clock runs.
    let bodies: Arc<Vec<String>> = Arc::new(
        orders
            .iter()
            .map(|(order_id, txn)| {
                let sign = sign(
                    &args.store_id,
                    txn,
                    order_id,
                    &amount,
                    &args.atmos_api_key,
                    SignAlgorithm::Md5,
                );
                json!({
                    "store_id": args.store_id,
                    "transaction_id": txn,
                    "invoice": order_id,
                    "amount": amount,
                    "sign": sign,
                })
                .to_string()
            })
            .collect(),
    );
    let n = bodies.len() as u64;
    let f: RequestFn = {
        let (http, apis, bodies) = (http.clone(), apis.clone(), bodies.clone());
        Arc::new(move |i| {
            let http = http.clone();
            let base = apis[(i as usize) % apis.len()].clone();
            let body = bodies[(i % n) as usize].clone();
            let group = if i < n { "first" } else { "repeat" };
            Box::pin(async move {
                match http
                    .post(format!("{base}/atmos/webhook/"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        if status == 200 && v["status"] == 1 {
                            Outcome::status(true, status, group)
                        } else if status == 200 {
                            Outcome {
                                ok: false,
                                label: format!("refused:{}", v["message"].as_str().unwrap_or("?")),
                                group,
                            }
                        } else {
                            Outcome::status(false, status, group)
                        }
                    }
                    Err(e) => Outcome::transport(&e, group),
                }
            })
        })
    };
    // Phase 1: every transaction's first delivery, once each (no warm-up: it
    // would use some up). Phase 2: redeliveries for the measured duration.
    let spec = load_args.spec();
    let first_spec = load::LoadSpec {
        warmup: Duration::ZERO,
        duration: Duration::from_secs(3600),
        max_requests: Some(n),
        ..spec
    };
    let before = sys::snapshot(&common.watch);
    let started = Instant::now();
    let mut first = load::run(first_spec, f.clone()).await;
    let first_window = started.elapsed();
    let mut repeat = if args.first_only {
        None
    } else {
        let shifted: RequestFn = {
            let f = f.clone();
            Arc::new(move |i| f(i + n))
        };
        Some(load::run(spec, shifted).await)
    };
    let after = sys::snapshot(&common.watch);
    let mut out = header(common, "webhook", load_args);
    out.insert("route".into(), json!("POST /atmos/webhook/"));
    out.insert(
        "setup".into(),
        json!({"orders_requested": args.orders, "orders_ready": n, "seconds": round3(setup_s)}),
    );
    // Both phases together.
    let mut all = total(&first);
    let mut window = first_window;
    if let Some(r) = &repeat {
        let g = total(r);
        all.ok_us.extend(g.ok_us);
        all.err_us.extend(g.err_us);
        for (l, c) in g.labels {
            *all.labels.entry(l).or_default() += c;
        }
        for (l, c) in g.errors {
            *all.errors.entry(l).or_default() += c;
        }
        window += r.window;
    }
    merge(&mut out, group_report(&mut all, window));
    let mut groups = Map::new();
    if let Some(g) = first.recorder.groups.get_mut("first") {
        groups.insert("first".into(), group_report(g, first_window));
    }
    if let Some(g) = repeat
        .as_mut()
        .and_then(|r| r.recorder.groups.get_mut("repeat"))
    {
        groups.insert("repeat".into(), group_report(g, load_args.spec().duration));
    }
    out.insert(
        "groups_note".into(),
        json!("first = each transaction's first delivery, sent once each (stored with an event, verification job queued and pushed); repeat = redeliveries for the measured duration (answered status 1 as duplicates). The top-level figures are both phases together."),
    );
    out.insert("groups".into(), Value::Object(groups));
    out.insert(
        "max_send_lag_ms".into(),
        json!(round3(
            first
                .max_send_lag
                .max(repeat.as_ref().map_or(Duration::ZERO, |r| r.max_send_lag))
                .as_secs_f64()
                * 1000.0
        )),
    );
    out.insert(
        "requests_sent_incl_warmup".into(),
        json!(first.sent + repeat.as_ref().map_or(0, |r| r.sent)),
    );
    out.insert("cpu_pct".into(), sys::cpu_between(&before, &after));
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------
// pipeline
// ---------------------------------------------------------------------------

#[derive(Args, Clone, Debug)]
pub struct PipelineArgs {
    /// Creation route.
    #[arg(long, value_enum, default_value_t = Route::V1)]
    pub route: Route,
    /// Payments whose create→completed latency is read (`GET /v1/payments/{id}`), spread over the run.
    #[arg(long, default_value_t = 300)]
    pub sample: usize,
    /// After sending stops, wait at most this long for the rest to complete, seconds.
    #[arg(long, default_value_t = 120.0)]
    pub drain: f64,
    /// How often the completed count and the queue gauges are read, milliseconds.
    #[arg(long, default_value_t = 250)]
    pub poll_ms: u64,
}

async fn count(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    status: &str,
    since: &str,
) -> anyhow::Result<i64> {
    let r = http
        .get(format!(
            "{base}/crazyminer/payment/list/?status={status}&page_size=1&created_from={since}"
        ))
        .bearer_auth(key)
        .send()
        .await?;
    let code = r.status();
    let v: Value = r.json().await?;
    if !code.is_success() {
        bail!("list answered {code}: {v}");
    }
    v["count"].as_i64().context("list without count")
}

/// Queue gauges of one Prometheus text: (ledger depth summed over kinds,
/// Redis depth, jobs in flight).
fn gauges(text: &str) -> (f64, f64, f64) {
    let (mut ledger, mut redis, mut inflight) = (0.0, 0.0, 0.0);
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        let metric = name.split('{').next().unwrap_or("");
        match metric {
            "paygate_queue_depth" => ledger += v,
            "paygate_redis_queue_depth" => redis += v,
            "paygate_jobs_in_flight" => inflight += v,
            _ => {}
        }
    }
    (ledger, redis, inflight)
}

async fn scrape(http: &reqwest::Client, urls: &[String]) -> Option<(f64, f64, f64)> {
    if urls.is_empty() {
        return None;
    }
    let mut acc: Option<(f64, f64, f64)> = None;
    for u in urls {
        let Ok(r) = http.get(u).send().await else {
            continue;
        };
        let Ok(text) = r.text().await else { continue };
        let (l, r, f) = gauges(&text);
        // The sampler's holder reports the depths, the others zeros: max.
        // In-flight jobs are per process: sum.
        acc = Some(match acc {
            None => (l, r, f),
            Some((al, ar, af)) => (al.max(l), ar.max(r), af + f),
        });
    }
    acc
}

fn parse_ms(v: &Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.timestamp_millis())
}

pub async fn pipeline(
    common: &Common,
    load_args: &LoadArgs,
    args: &PipelineArgs,
) -> anyhow::Result<Value> {
    let key = common.admin_key.clone().context(
        "pipeline needs --admin-key (it counts completed payments through the list route)",
    )?;
    let http = client(common)?;
    let apis = apis(common);
    let base = apis[0].clone();
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // Fails early and clearly on a bad key or URL.
    count(&http, &base, &key, "completed", &since).await?;

    let ids = Arc::new(Mutex::new(Vec::<String>::new()));
    let f = create_request(http.clone(), apis.clone(), args.route, Some(ids.clone()));
    let mut spec = load_args.spec();
    // Everything created counts toward the pipeline: no unmeasured warm-up.
    spec.warmup = Duration::ZERO;

    let before = sys::snapshot(&common.watch);
    let t0 = Instant::now();
    let sending = Arc::new(std::sync::atomic::AtomicBool::new(true));
    // The poller: completed/failed counts and queue gauges over time.
    let poller = {
        let (http, base, key, since, sending) = (
            http.clone(),
            base.clone(),
            key.clone(),
            since.clone(),
            sending.clone(),
        );
        let metrics = common.metrics.clone();
        let ids = ids.clone();
        let poll = Duration::from_millis(args.poll_ms.max(50));
        let drain = Duration::from_secs_f64(args.drain.max(0.0));
        tokio::spawn(async move {
            let mut series: Vec<Value> = Vec::new();
            let mut last_completed = 0i64;
            let mut last_change = Duration::ZERO;
            let mut first_seen: Option<(Duration, i64)> = None;
            let mut failed = 0i64;
            let mut send_end: Option<Instant> = None;
            let mut max_depth = (0.0f64, 0.0f64);
            let mut peak_rate = 0.0f64;
            let mut window: std::collections::VecDeque<(Duration, i64)> = Default::default();
            let mut last_sample = Duration::ZERO;
            loop {
                tokio::time::sleep(poll).await;
                let t = t0.elapsed();
                let completed = count(&http, &base, &key, "completed", &since)
                    .await
                    .unwrap_or(last_completed);
                failed = count(&http, &base, &key, "failed", &since)
                    .await
                    .unwrap_or(failed);
                if completed != last_completed {
                    last_completed = completed;
                    last_change = t;
                    first_seen.get_or_insert((t, completed));
                }
                window.push_back((t, completed));
                // Keep the newest sample that is at least 1 s old at the front,
                // so the rate is taken over >= 1 s however slow polls are.
                while window.len() > 2
                    && window
                        .get(1)
                        .is_some_and(|(wt, _)| t.saturating_sub(*wt) >= Duration::from_secs(1))
                {
                    window.pop_front();
                }
                if let (Some((ft, fc)), true) = (window.front(), window.len() > 1) {
                    let dt = t.saturating_sub(*ft).as_secs_f64();
                    if dt >= 1.0 {
                        peak_rate = peak_rate.max((completed - fc) as f64 / dt);
                    }
                }
                let depth = scrape(&http, &metrics).await;
                if let Some((l, r, _)) = depth {
                    max_depth = (max_depth.0.max(l), max_depth.1.max(r));
                }
                let point = json!([
                    round3(t.as_secs_f64()),
                    completed,
                    depth.map(|d| d.0),
                    depth.map(|d| d.1),
                    depth.map(|d| d.2),
                ]);
                if t.saturating_sub(last_sample) >= Duration::from_millis(1000) || series.is_empty()
                {
                    last_sample = t;
                    series.push(point.clone());
                }
                let still_sending = sending.load(std::sync::atomic::Ordering::Acquire);
                if !still_sending {
                    let end = *send_end.get_or_insert_with(Instant::now);
                    let created = ids.lock().unwrap().len() as i64;
                    if completed + failed >= created || end.elapsed() >= drain {
                        series.push(point);
                        return (
                            last_completed,
                            failed,
                            last_change,
                            first_seen,
                            series,
                            max_depth,
                            peak_rate,
                        );
                    }
                }
            }
        })
    };
    let mut result = load::run(spec, f).await;
    let send_time = t0.elapsed();
    sending.store(false, std::sync::atomic::Ordering::Release);
    let (completed, failed, last_change, first_seen, series, max_depth, peak_rate) =
        poller.await.context("poller")?;
    let after = sys::snapshot(&common.watch);
    let ids = std::mem::take(&mut *ids.lock().unwrap());

    // Create→completed from the server's own timestamps, for a spread sample.
    let step = (ids.len() / args.sample.max(1)).max(1);
    let sample: Vec<String> = ids
        .iter()
        .step_by(step)
        .take(args.sample)
        .cloned()
        .collect();
    let mut lat_us = Vec::new();
    let mut unfinished = 0usize;
    let mut sample_statuses = std::collections::BTreeMap::<String, u64>::new();
    for chunk in sample.chunks(16) {
        let futs = chunk.iter().map(|id| {
            let http = http.clone();
            let url = format!("{base}/v1/payments/{id}");
            async move {
                let r = http.get(url).send().await.ok()?;
                r.json::<Value>().await.ok()
            }
        });
        for v in futures::future::join_all(futs).await {
            let Some(v) = v else {
                unfinished += 1;
                continue;
            };
            let status = v["status"].as_str().unwrap_or("?").to_string();
            *sample_statuses.entry(status.clone()).or_default() += 1;
            match (
                status.as_str(),
                parse_ms(&v["created_at"]),
                parse_ms(&v["completed_at"]),
            ) {
                ("completed", Some(c), Some(d)) => lat_us.push(((d - c).max(0) as u64) * 1000),
                _ => unfinished += 1,
            }
        }
    }

    let created = ids.len() as i64;
    let mut out = header(common, "pipeline", load_args);
    out.insert(
        "route".into(),
        json!(match args.route {
            Route::V1 => "POST /v1/payments",
            Route::Seed => "POST /crazyminer/payment/create/",
        }),
    );
    out.insert("created".into(), json!(created));
    out.insert("completed".into(), json!(completed));
    out.insert("failed".into(), json!(failed));
    out.insert(
        "not_finished".into(),
        json!((created - completed - failed).max(0)),
    );
    out.insert("send_s".into(), json!(round3(send_time.as_secs_f64())));
    let done_s = last_change.as_secs_f64().max(1e-3);
    out.insert("all_completed_after_s".into(), json!(round3(done_s)));
    out.insert(
        "completed_per_s".into(),
        json!(round3(completed as f64 / done_s)),
    );
    out.insert("completed_per_s_peak_1s".into(), json!(round3(peak_rate)));
    out.insert(
        "completed_per_s_steady".into(),
        json!(steady_rate(first_seen, last_change, completed).map(round3)),
    );
    out.insert(
        "completed_per_s_steady_note".into(),
        json!("completions after the first poll that saw one / time from that poll to the last completion seen: the rate once the pipeline is full, without the first payment's own create->completed time (the fill), which completed_per_s counts"),
    );
    out.insert(
        "completed_per_s_note".into(),
        json!("completed / time from the first create to the last completion seen (sending plus draining)"),
    );
    out.insert("create_to_completed_ms".into(), percentiles(&mut lat_us));
    out.insert(
        "sample".into(),
        json!({"size": sample.len(), "unfinished": unfinished, "statuses": sample_statuses}),
    );
    let mut create = group_report(&mut total(&result), result.window);
    if let Value::Object(m) = &mut create {
        m.insert(
            "max_send_lag_ms".into(),
            json!(round3(result.max_send_lag.as_secs_f64() * 1000.0)),
        );
    }
    out.insert("create".into(), create);
    result.recorder.groups.clear();
    out.insert(
        "queue_depth".into(),
        json!({
            "max_ledger": if common.metrics.is_empty() { Value::Null } else { json!(max_depth.0) },
            "max_redis": if common.metrics.is_empty() { Value::Null } else { json!(max_depth.1) },
            "series_columns": ["t_s", "completed", "ledger_depth", "redis_depth", "jobs_in_flight"],
            "series": series,
        }),
    );
    out.insert("cpu_pct".into(), sys::cpu_between(&before, &after));
    Ok(Value::Object(out))
}

/// The pipeline's throughput once it is full: the completions seen after
/// the first poll that saw any, over the time from that poll to the last
/// change. `completed_per_s` divides by the time from the first create, so it
/// also counts the first payment's own create->completed time (the fill):
/// 0.6 s of three 200 ms gateway calls in an 8 s run is 7 % of the figure
/// even when every payment is completed as fast as it is created
/// (PERFORMANCE.md, "The pipeline's rate once it is full"). None when every
/// completion was seen by one poll.
fn steady_rate(
    first_seen: Option<(Duration, i64)>,
    last_change: Duration,
    completed: i64,
) -> Option<f64> {
    let (t, at_first) = first_seen?;
    let span = last_change.checked_sub(t)?.as_secs_f64();
    (span > 0.0).then(|| (completed - at_first) as f64 / span)
}

// ---------------------------------------------------------------------------
// wait-idle
// ---------------------------------------------------------------------------

/// Waits until no medogram payment created since `since` (a date or an
/// RFC 3339 time) is pending or processing.
pub async fn wait_idle(common: &Common, max_wait: Duration, since: &str) -> anyhow::Result<Value> {
    let key = common
        .admin_key
        .clone()
        .context("wait-idle needs --admin-key")?;
    let http = client(common)?;
    let base = apis(common)[0].clone();
    let started = Instant::now();
    loop {
        let pending = count(&http, &base, &key, "pending", since).await?;
        let processing = count(&http, &base, &key, "processing", since).await?;
        let idle = pending + processing == 0;
        if idle || started.elapsed() >= max_wait {
            return Ok(json!({
                "scenario": "wait-idle",
                "idle": idle,
                "pending": pending,
                "processing": processing,
                "waited_s": round3(started.elapsed().as_secs_f64()),
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_steady_rate_leaves_out_the_fill() {
        let s = Duration::from_secs_f64;
        // First seen at 0.6 s with 10 done, the last of 4810 at 8.6 s: 600/s,
        // where completed / 8.6 s would say 559.
        assert_eq!(steady_rate(Some((s(0.6), 10)), s(8.6), 4810), Some(600.0));
        assert_eq!(steady_rate(Some((s(2.0), 50)), s(2.0), 50), None);
        assert_eq!(steady_rate(None, s(3.0), 0), None);
    }

    #[test]
    fn gauges_are_summed_over_kinds() {
        let text = "# TYPE paygate_queue_depth gauge\npaygate_queue_depth{kind=\"fetch_user\"} 3\npaygate_queue_depth{kind=\"verify_payment\"} 4\npaygate_redis_queue_depth 7\npaygate_jobs_in_flight 2\n";
        assert_eq!(gauges(text), (7.0, 7.0, 2.0));
    }

    #[test]
    fn transaction_ids_come_from_the_checkout_url() {
        assert_eq!(
            query_param(
                "http://x/invoice/get?storeId=8157&transactionId=42&redirectLink=y",
                "transactionId"
            )
            .as_deref(),
            Some("42")
        );
    }
}
