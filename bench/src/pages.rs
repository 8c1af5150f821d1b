//! Open result pages: what it costs the server to keep payers' pages up to
//! date while nothing happens. Each page follows one payment on the seed's
//! status route, either as the result page's script did before issue 16
//! (`poll`: a plain GET every `--interval`) or as it does now (`long`: the
//! `ETag` it has with `Prefer: wait`, answered `304` after the wait). The
//! figure that matters is CPU per open page (API and database), from
//! `--watch`.

use crate::load::{percentiles, round3};
use crate::scenarios::{apis, client, header, wait_idle};
use crate::sys;
use crate::{Common, LoadArgs};
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageMode {
    /// A plain GET every `--interval` (the script before issue 16).
    Poll,
    /// `If-None-Match` + `Prefer: wait=--wait` (the script now).
    Long,
}

#[derive(Args, Clone, Debug)]
pub struct PagesArgs {
    /// Open pages, each following its own payment.
    #[arg(long, default_value_t = 1000)]
    pub pages: usize,
    #[arg(long, value_enum, default_value_t = PageMode::Long)]
    pub mode: PageMode,
    /// `poll`: seconds between a page's requests.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// `long`: the `Prefer: wait` each request sends, seconds.
    #[arg(long, default_value_t = 10)]
    pub wait: u64,
}

/// What one page saw during the measured window.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    unchanged: AtomicU64,
    changed: AtomicU64,
    errors: AtomicU64,
    latency_us: Mutex<Vec<u64>>,
}

pub async fn pages(common: &Common, load: &LoadArgs, args: &PagesArgs) -> anyhow::Result<Value> {
    if args.pages == 0 {
        bail!("--pages must be at least 1");
    }
    let http = client(common)?;
    let apis = apis(common);
    let setup_started = Instant::now();
    // Only these payments are waited for below (others may never settle).
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let ids = create_payments(&http, &apis, args.pages).await?;
    // Let the payments settle (autopay completes them; without it they stay
    // `processing`): a page is measured while nothing happens to its payment.
    if common.admin_key.is_some() {
        wait_idle(common, Duration::from_secs(60), &since).await?;
    }
    let tags = Arc::new(first_tags(&http, &apis, &ids).await?);
    let setup_s = setup_started.elapsed().as_secs_f64();

    let duration = Duration::from_secs_f64(load.duration.max(0.1));
    let tally = Arc::new(Tally::default());
    let before = sys::snapshot(&common.watch);
    let started = Instant::now();
    let end = started + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (id, tag)) in ids.iter().zip(tags.iter()).enumerate() {
        let (http, tally, args) = (http.clone(), tally.clone(), args.clone());
        let url = format!("{}/crazyminer/payment/status/{id}/", apis[i % apis.len()]);
        let mut tag = tag.clone();
        // Pages opened at different moments, not in lockstep.
        let offset = match args.mode {
            PageMode::Poll => args.interval * (i as f64 / args.pages as f64),
            PageMode::Long => 0.0,
        };
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_secs_f64(offset)).await;
            while Instant::now() < end {
                let t0 = Instant::now();
                let mut req = http.get(&url);
                if args.mode == PageMode::Long {
                    req = req
                        .header("if-none-match", &tag)
                        .header("prefer", format!("wait={}", args.wait));
                }
                let answer = req.send().await;
                let elapsed = t0.elapsed();
                tally.requests.fetch_add(1, Ordering::Relaxed);
                match answer {
                    Ok(r) if r.status().as_u16() == 304 => {
                        tally.unchanged.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) if r.status().is_success() => {
                        // A read without an ETag breaks the route's contract.
                        let counter = match r.headers().get("etag").and_then(|v| v.to_str().ok()) {
                            Some(t) if t != tag => {
                                tag = t.to_string();
                                &tally.changed
                            }
                            Some(_) => &tally.unchanged,
                            None => &tally.errors,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                        let _ = r.bytes().await;
                    }
                    _ => {
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tally
                    .latency_us
                    .lock()
                    .unwrap()
                    .push(elapsed.as_micros() as u64);
                if args.mode == PageMode::Poll {
                    let next = t0 + Duration::from_secs_f64(args.interval);
                    tokio::time::sleep_until(next.into()).await;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let window = started.elapsed();
    let after = sys::snapshot(&common.watch);

    let mut out = header(common, "pages", load);
    out.insert(
        "route".into(),
        json!("GET /crazyminer/payment/status/{id}/"),
    );
    out.insert(
        "mode".into(),
        json!(match args.mode {
            PageMode::Poll => format!("poll every {} s", args.interval),
            PageMode::Long => format!("long poll, Prefer: wait={}", args.wait),
        }),
    );
    out.insert("pages".into(), json!(args.pages));
    // Each page is its own loop; the load generator's concurrency is unused.
    out.insert("concurrency".into(), json!(args.pages));
    out.insert("setup_s".into(), json!(round3(setup_s)));
    let secs = window.as_secs_f64();
    let requests = tally.requests.load(Ordering::Relaxed);
    out.insert("window_s".into(), json!(round3(secs)));
    out.insert("requests".into(), json!(requests));
    out.insert(
        "requests_per_s".into(),
        json!(round3(requests as f64 / secs)),
    );
    out.insert(
        "answers".into(),
        json!({
            "unchanged": tally.unchanged.load(Ordering::Relaxed),
            "changed": tally.changed.load(Ordering::Relaxed),
            "errors": tally.errors.load(Ordering::Relaxed),
        }),
    );
    let mut lat = std::mem::take(&mut *tally.latency_us.lock().unwrap());
    out.insert("latency_ms".into(), percentiles(&mut lat));
    out.insert("cpu_pct".into(), sys::cpu_between(&before, &after));
    Ok(Value::Object(out))
}

/// Creates `n` payments on `/v1` (waiting for each one's invoice, so it has
/// settled past `pending`), 32 at a time.
async fn create_payments(
    http: &reqwest::Client,
    apis: &Arc<Vec<String>>,
    n: usize,
) -> anyhow::Result<Vec<String>> {
    let made: Vec<anyhow::Result<String>> = stream::iter(0..n)
        .map(|i| {
            let base = apis[i % apis.len()].clone();
            async move {
                let r = http
                    .post(format!("{base}/v1/payments"))
                    .header("prefer", "wait=10")
                    .json(&json!({
                        "amount": 150_000,
                        "user_identifier": format!("0912{:07}", i % 10_000_000),
                        "description": "result page",
                    }))
                    .send()
                    .await
                    .context("creating a payment")?;
                let status = r.status();
                let v: Value = r.json().await.context("reading a create answer")?;
                match v["id"].as_str() {
                    Some(id) if status.is_success() => Ok(id.to_string()),
                    _ => bail!("create answered {status}: {v}"),
                }
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    made.into_iter().collect()
}

/// Each page's first load: the `ETag` it starts from.
async fn first_tags(
    http: &reqwest::Client,
    apis: &Arc<Vec<String>>,
    ids: &[String],
) -> anyhow::Result<Vec<String>> {
    let tags: Vec<anyhow::Result<String>> = stream::iter(ids.iter().enumerate())
        .map(|(i, id)| {
            let url = format!("{}/crazyminer/payment/status/{id}/", apis[i % apis.len()]);
            async move {
                let r = http.get(&url).send().await.context("loading a page")?;
                match r.headers().get("etag").and_then(|v| v.to_str().ok()) {
                    Some(t) => Ok(t.to_string()),
                    None => bail!("the status route answered {} without an ETag", r.status()),
                }
            }
        })
        .buffered(32)
        .collect()
        .await;
    tags.into_iter().collect()
}
