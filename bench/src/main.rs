//! `paygate-bench`: a load generator for any running paygate deployment, over
//! real HTTP on keep-alive connections.
//!
//! ```text
//! paygate-bench create   --api URL [--route v1|seed] (--concurrency N | --rate R) --duration S [--json]
//! paygate-bench floor    --api URL --gateway URL [--gateway-key K] (--concurrency N | --rate R) --duration S
//! paygate-bench webhook  --api URL --orders N (--concurrency N | --rate R) --duration S
//! paygate-bench payme    --api URL --orders N [--repeats R] (--concurrency N | --rate R) [--duration S]
//! paygate-bench click    --api URL --orders N [--repeats R] [--amount-format F] (--concurrency N | --rate R) [--duration S]
//! paygate-bench pipeline --api URL --admin-key KEY --metrics URL (--concurrency N | --rate R) --duration S
//! paygate-bench wait-idle --api URL --admin-key KEY --timeout S
//! ```
//!
//! Every scenario prints a table, or one JSON object with `--json`.

mod click;
mod floor;
mod load;
mod orders;
mod pages;
mod payme;
mod scenarios;
mod sys;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "paygate-bench",
    version,
    about = "Load generator for paygate (create, webhook, payme, click, pipeline, pages)"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Args, Clone, Debug)]
pub struct Common {
    /// Base URL of a paygate API (repeat for several; requests go round-robin).
    #[arg(long = "api", default_value = "http://127.0.0.1:8080")]
    pub api: Vec<String>,
    /// An API key (admin or not) for the authenticated list routes.
    #[arg(long, env = "PAYGATE_BENCH_ADMIN_KEY")]
    pub admin_key: Option<String>,
    /// A Prometheus endpoint of a worker or serve process (repeatable), for queue gauges.
    #[arg(long = "metrics")]
    pub metrics: Vec<String>,
    /// Account CPU of processes during the measured window: NAME=PID[,PID…] or NAME=comm:COMM.
    #[arg(long = "watch")]
    pub watch: Vec<sys::Watch>,
    /// A free-form label copied into the output (e.g. "scaled").
    #[arg(long, default_value = "")]
    pub label: String,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone, Debug)]
pub struct LoadArgs {
    /// Closed loop: this many requests in flight, each sent when the previous one answered.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Open loop instead: this many requests per second on a fixed schedule
    /// (latency counted from the scheduled send time).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured time, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Unmeasured time at the same load before it, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Open loop: at most this many requests outstanding.
    #[arg(long, default_value_t = 4096)]
    pub max_inflight: usize,
}

impl LoadArgs {
    pub fn spec(&self) -> load::LoadSpec {
        load::LoadSpec {
            concurrency: self.concurrency.max(1),
            rate: self.rate.filter(|r| *r > 0.0),
            duration: Duration::from_secs_f64(self.duration.max(0.01)),
            warmup: Duration::from_secs_f64(self.warmup.max(0.0)),
            max_inflight: self.max_inflight.max(1),
            max_requests: None,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/payments` (answers 202 at once).
    V1,
    /// `POST /crazyminer/payment/create/` (waits up to PAYGATE_SEED_WAIT_MS for the worker).
    Seed,
}

#[derive(Subcommand)]
enum Scenario {
    /// Payment creation: acknowledgement throughput and latency.
    Create {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: LoadArgs,
        #[arg(long, value_enum, default_value_t = Route::V1)]
        route: Route,
    },
    /// The seed route's floor: `/v1` create, then the worker's two gateway
    /// calls made by the load generator itself (run with workers paused).
    Floor {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        floor: floor::FloorArgs,
    },
    /// Signed Atmos webhooks for existing invoices (first delivery and repeats).
    Webhook {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        webhook: scenarios::WebhookArgs,
    },
    /// Payme's JSON-RPC calls paying existing orders (and optional repeats).
    Payme {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        payme: payme::PaymeArgs,
    },
    /// Click's signed Prepare and Complete calls paying existing orders (and optional repeats).
    Click {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        click: click::ClickArgs,
    },
    /// Payments created and driven to `completed` (sandbox autopay): end-to-end throughput.
    Pipeline {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        pipeline: scenarios::PipelineArgs,
    },
    /// Open result pages following their payments: polling every second or
    /// long-polling (`If-None-Match` + `Prefer: wait`), and what each costs.
    Pages {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        pages: pages::PagesArgs,
    },
    /// Waits until no medogram payment is pending or processing (between runs).
    WaitIdle {
        #[command(flatten)]
        common: Common,
        /// Give up after this many seconds (exit status 0 either way; the output says).
        #[arg(long, default_value_t = 60.0)]
        max_wait: f64,
        /// Only payments created since then (a date or an RFC 3339 time in
        /// UTC, e.g. 2026-12-03T22:00:00Z) count.
        #[arg(long, default_value = "2000-01-01")]
        since: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("paygate-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<(Value, bool)> = runtime.block_on(async move {
        match cli.scenario {
            Scenario::Create {
                common,
                load,
                route,
            } => Ok((scenarios::create(&common, &load, route).await?, common.json)),
            Scenario::Floor {
                common,
                load,
                floor,
            } => Ok((floor::floor(&common, &load, &floor).await?, common.json)),
            Scenario::Webhook {
                common,
                load,
                webhook,
            } => Ok((
                scenarios::webhook(&common, &load, &webhook).await?,
                common.json,
            )),
            Scenario::Payme {
                common,
                load,
                payme,
            } => Ok((payme::payme(&common, &load, &payme).await?, common.json)),
            Scenario::Click {
                common,
                load,
                click,
            } => Ok((click::click(&common, &load, &click).await?, common.json)),
            Scenario::Pipeline {
                common,
                load,
                pipeline,
            } => Ok((
                scenarios::pipeline(&common, &load, &pipeline).await?,
                common.json,
            )),
            Scenario::Pages {
                common,
                load,
                pages,
            } => Ok((pages::pages(&common, &load, &pages).await?, common.json)),
            Scenario::WaitIdle {
                common,
                max_wait,
                since,
            } => Ok((
                scenarios::wait_idle(&common, Duration::from_secs_f64(max_wait), &since).await?,
                common.json,
            )),
        }
    });
    match result {
        Ok((report, json)) => {
            if json {
                println!("{report}");
            } else {
                print!("{}", table(&report));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("paygate-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The human rendering: one `key  value` row per leaf, nested keys joined by dots.
fn table(v: &Value) -> String {
    fn walk(prefix: &str, v: &Value, rows: &mut Vec<(String, String)>) {
        match v {
            Value::Object(m) => {
                // Percentiles on one row.
                if m.contains_key("p50") && m.contains_key("p99") {
                    let f = |k: &str| match &m[k] {
                        Value::Null => "-".to_string(),
                        x => format!("{x}"),
                    };
                    rows.push((
                        prefix.to_string(),
                        format!(
                            "p50 {}  p95 {}  p99 {}  max {}  (ms)",
                            f("p50"),
                            f("p95"),
                            f("p99"),
                            f("max")
                        ),
                    ));
                    return;
                }
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, x, rows);
                }
            }
            Value::Array(a) if a.iter().all(|x| x.is_array()) && !a.is_empty() => {
                for (i, x) in a.iter().enumerate() {
                    rows.push((
                        if i == 0 {
                            prefix.to_string()
                        } else {
                            String::new()
                        },
                        x.to_string(),
                    ));
                }
            }
            Value::Null => rows.push((prefix.to_string(), "-".into())),
            Value::String(s) => rows.push((prefix.to_string(), s.clone())),
            x => rows.push((prefix.to_string(), x.to_string())),
        }
    }
    let mut rows = Vec::new();
    walk("", v, &mut rows);
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in rows {
        out.push_str(&format!("{k:<w$}  {v}\n"));
    }
    out
}
