//! The load engine: a closed loop (N workers, each sends its next request when
//! the previous answer arrived) or an open loop (requests scheduled at a fixed
//! rate; latency measured from the *scheduled* send time, so a stalled server
//! is charged for the requests it held back: no coordinated omission).

use futures::future::BoxFuture;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// What one request came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Counted as a success (2xx and, where the scenario says, the right body).
    pub ok: bool,
    /// `"202"`, `"503"`, `"transport"`, `"timeout"`, `"refused:<msg>"`, …
    pub label: String,
    /// Which figure the request belongs to (e.g. webhook `first` / `repeat`).
    pub group: &'static str,
}

impl Outcome {
    pub fn status(ok: bool, status: u16, group: &'static str) -> Outcome {
        Outcome {
            ok,
            label: status.to_string(),
            group,
        }
    }
    pub fn transport(e: &reqwest::Error, group: &'static str) -> Outcome {
        let label = if e.is_timeout() {
            "timeout"
        } else if e.is_connect() {
            "connect"
        } else {
            "transport"
        };
        Outcome {
            ok: false,
            label: label.into(),
            group,
        }
    }
}

/// Latencies and answers of one group.
#[derive(Default, Debug, Clone)]
pub struct Group {
    /// Latency of each successful request, microseconds.
    pub ok_us: Vec<u64>,
    /// Latency of each failed request, microseconds.
    pub err_us: Vec<u64>,
    /// Answers by label, successes and failures.
    pub labels: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
}

#[derive(Default, Debug)]
pub struct Recorder {
    pub groups: BTreeMap<&'static str, Group>,
}

impl Recorder {
    pub fn record(&mut self, o: &Outcome, latency: Duration) {
        let g = self.groups.entry(o.group).or_default();
        let us = latency.as_micros() as u64;
        *g.labels.entry(o.label.clone()).or_default() += 1;
        if o.ok {
            g.ok_us.push(us);
        } else {
            g.err_us.push(us);
            *g.errors.entry(o.label.clone()).or_default() += 1;
        }
    }
}

/// p50/p95/p99/max of a set of microsecond samples, in milliseconds.
pub fn percentiles(samples: &mut [u64]) -> Value {
    if samples.is_empty() {
        return json!({"p50": null, "p95": null, "p99": null, "max": null, "mean": null});
    }
    samples.sort_unstable();
    let at = |q: f64| -> f64 {
        // Nearest rank.
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1] as f64 / 1000.0
    };
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1000.0;
    json!({
        "p50": round3(at(0.50)),
        "p95": round3(at(0.95)),
        "p99": round3(at(0.99)),
        "max": round3(*samples.last().unwrap() as f64 / 1000.0),
        "mean": round3(mean),
    })
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The figures of one group over a measured window.
pub fn group_report(g: &mut Group, window: Duration) -> Value {
    let ok = g.ok_us.len() as u64;
    let errors: u64 = g.errors.values().sum();
    let secs = window.as_secs_f64().max(1e-9);
    json!({
        "requests": ok + errors,
        "ok": ok,
        "errors": errors,
        "errors_by_status": g.errors,
        "answers": g.labels,
        "throughput_rps": round3(ok as f64 / secs),
        "latency_ms": percentiles(&mut g.ok_us),
    })
}

pub type RequestFn = Arc<dyn Fn(u64) -> BoxFuture<'static, Outcome> + Send + Sync>;

#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    pub concurrency: usize,
    /// Open loop at this many requests per second when set.
    pub rate: Option<f64>,
    pub duration: Duration,
    /// Sent at the same load before the measured window, not recorded.
    pub warmup: Duration,
    /// Open loop: at most this many requests outstanding (later ones wait,
    /// and the wait counts in their latency).
    pub max_inflight: usize,
    /// Stop after this many requests in total (warm-up included), if set.
    pub max_requests: Option<u64>,
}

pub struct LoadResult {
    pub recorder: Recorder,
    /// The measured window (excludes warm-up).
    pub window: Duration,
    /// Requests sent in total, warm-up included.
    pub sent: u64,
    /// Open loop: how far behind schedule the sender fell at worst (the load
    /// generator could not keep up if this is large).
    pub max_send_lag: Duration,
}

/// Runs `f(i)` for i = 0, 1, 2, … under the given load.
pub async fn run(spec: LoadSpec, f: RequestFn) -> LoadResult {
    match spec.rate {
        Some(rate) => open_loop(spec, rate, f).await,
        None => closed_loop(spec, f).await,
    }
}

async fn closed_loop(spec: LoadSpec, f: RequestFn) -> LoadResult {
    let rec = Arc::new(Mutex::new(Recorder::default()));
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let mut set = JoinSet::new();
    for _ in 0..spec.concurrency.max(1) {
        let (rec, next, f) = (rec.clone(), next.clone(), f.clone());
        set.spawn(async move {
            let mut local = Recorder::default();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if spec.max_requests.is_some_and(|m| i >= m) {
                    break;
                }
                let o = f(i).await;
                if t0 >= measure_from {
                    local.record(&o, t0.elapsed());
                }
            }
            let mut r = rec.lock().unwrap();
            for (k, g) in local.groups {
                let dst = r.groups.entry(k).or_default();
                dst.ok_us.extend(g.ok_us);
                dst.err_us.extend(g.err_us);
                for (l, n) in g.labels {
                    *dst.labels.entry(l).or_default() += n;
                }
                for (l, n) in g.errors {
                    *dst.errors.entry(l).or_default() += n;
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    let finished = Instant::now();
    let window = finished.min(end).saturating_duration_since(measure_from);
    let sent = next.load(Ordering::Relaxed);
    let recorder = std::mem::take(&mut *rec.lock().unwrap());
    LoadResult {
        recorder,
        window: if window.is_zero() {
            finished.saturating_duration_since(start)
        } else {
            window
        },
        sent: spec.max_requests.map_or(sent, |m| sent.min(m)),
        max_send_lag: Duration::ZERO,
    }
}

async fn open_loop(spec: LoadSpec, rate: f64, f: RequestFn) -> LoadResult {
    let rec = Arc::new(Mutex::new(Recorder::default()));
    let sem = Arc::new(tokio::sync::Semaphore::new(spec.max_inflight.max(1)));
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let start = tokio::time::Instant::now() + Duration::from_millis(5);
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let mut set = JoinSet::new();
    let mut i: u64 = 0;
    let mut max_lag = Duration::ZERO;
    loop {
        let at = start + interval.mul_f64(i as f64);
        if at >= end || spec.max_requests.is_some_and(|m| i >= m) {
            break;
        }
        tokio::time::sleep_until(at).await;
        let lag = tokio::time::Instant::now().saturating_duration_since(at);
        max_lag = max_lag.max(lag);
        let measured = at >= measure_from;
        let (rec, sem, f) = (rec.clone(), sem.clone(), f.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let o = f(i).await;
            if measured {
                let latency = at.elapsed();
                rec.lock().unwrap().record(&o, latency);
            }
        });
        i += 1;
        // Reap finished tasks so the set does not grow with the run.
        while set.try_join_next().is_some() {}
    }
    while set.join_next().await.is_some() {}
    let recorder = std::mem::take(&mut *rec.lock().unwrap());
    LoadResult {
        recorder,
        window: end.saturating_duration_since(measure_from),
        sent: i,
        max_send_lag: max_lag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        let p = percentiles(&mut v);
        assert_eq!(p["p50"], 50.0);
        assert_eq!(p["p99"], 99.0);
        assert_eq!(p["max"], 100.0);
        assert!(percentiles(&mut []).get("p50").unwrap().is_null());
    }

    #[tokio::test]
    async fn closed_and_open_loops_count_requests() {
        let f: RequestFn = Arc::new(|i| {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                Outcome::status(i % 10 != 0, if i % 10 == 0 { 503 } else { 200 }, "all")
            })
        });
        let spec = LoadSpec {
            concurrency: 4,
            rate: None,
            // Ends at 50 requests, long before this.
            duration: Duration::from_secs(20),
            warmup: Duration::ZERO,
            max_inflight: 100,
            max_requests: Some(50),
        };
        let r = run(spec, f.clone()).await;
        let g = &r.recorder.groups["all"];
        assert_eq!(g.ok_us.len() + g.err_us.len(), 50);
        assert_eq!(g.errors["503"], 5);
        // Exactly the requests scheduled in 200 ms at 200/s, however slow the machine.
        let r = run(
            LoadSpec {
                rate: Some(200.0),
                duration: Duration::from_millis(200),
                max_requests: None,
                ..spec
            },
            f,
        )
        .await;
        let g = &r.recorder.groups["all"];
        let n = g.ok_us.len() + g.err_us.len();
        assert_eq!(n, 40);
    }
}
