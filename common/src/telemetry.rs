//! Logging and metrics set-up shared by every process.

use crate::config::LogFormat;
pub use metrics_exporter_prometheus::PrometheusHandle;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use std::sync::OnceLock;
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the tracing subscriber once. `RUST_LOG` overrides the default level.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("info,sqlx=warn,hyper=warn,reqwest=warn,apalis=warn,apalis_core=warn")
    });
    let builder = fmt().with_env_filter(filter).with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process and returns the handle
/// `/metrics` renders from.
pub fn metrics() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let seconds = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (tests): render an empty one.
                Err(_) => return PrometheusBuilder::new().build_recorder().handle(),
            };
            register();
            handle
        })
        .clone()
}

/// Describes every metric and creates the series dashboards and alerts use,
/// at zero, so a scrape shows them before the first event (an alert on a
/// series that does not exist yet can never fire).
fn register() {
    use crate::domain::{JobKind, PaymentStatus, Provider};
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

    describe_counter!(
        "paygate_http_requests_total",
        "HTTP requests by route template, method and status"
    );
    describe_histogram!(
        "paygate_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by route template"
    );
    describe_counter!(
        "paygate_jobs_total",
        "Job attempts by kind and outcome (started, succeeded, retried, failed, dead)"
    );
    describe_histogram!(
        "paygate_job_duration_seconds",
        Unit::Seconds,
        "Time a job attempt ran, by kind"
    );
    describe_histogram!(
        "paygate_job_queue_wait_seconds",
        Unit::Seconds,
        "Time from a job's creation to its first start, by kind"
    );
    describe_gauge!("paygate_jobs_in_flight", "Jobs running in this process");
    describe_gauge!(
        "paygate_queue_depth",
        "Ledger jobs queued and due, by kind (sampled by one process)"
    );
    describe_gauge!(
        "paygate_queue_oldest_ready_age_seconds",
        Unit::Seconds,
        "Age of the oldest due queued job (sampled by one process)"
    );
    describe_gauge!(
        "paygate_dead_letters",
        "Jobs that ran out of attempts (sampled by one process)"
    );
    describe_gauge!(
        "paygate_jobs_dispatch_overdue",
        "Due jobs dispatched longer ago than the redispatch window and not yet claimed"
    );
    describe_gauge!(
        "paygate_redis_queue_depth",
        "Messages waiting in the Redis queue (scaled mode)"
    );
    describe_counter!(
        "paygate_job_dispatch_failures_total",
        "Job messages that could not be pushed to the queue (the sweeper resends them)"
    );
    describe_counter!(
        "paygate_job_messages_skipped_total",
        "Duplicate or premature job messages skipped at claim time"
    );
    describe_counter!(
        "paygate_jobs_chained_total",
        "Jobs a client waits on, claimed in the finish of the job before them and run next in the same worker slot, without a queue message"
    );
    describe_counter!(
        "paygate_job_messages_unreadable_total",
        "Queue messages this release could not decode"
    );
    describe_counter!(
        "paygate_queue_worker_failures_total",
        "Times the queue consumer lost its backend and reconnected"
    );
    describe_counter!(
        "paygate_sweeper_dispatched_total",
        "Jobs re-dispatched by the sweeper"
    );
    describe_counter!(
        "paygate_reconciler_checks_total",
        "Verifications queued by the reconciler for payments whose callback may be lost"
    );
    describe_counter!(
        "paygate_gateway_calls_total",
        "Outbound gateway calls by provider, operation and outcome"
    );
    describe_histogram!(
        "paygate_gateway_call_duration_seconds",
        Unit::Seconds,
        "Outbound gateway call latency by provider and operation"
    );
    describe_counter!(
        "paygate_gateway_token_refreshes_total",
        "OAuth tokens fetched from a gateway"
    );
    describe_counter!(
        "paygate_payments_created_total",
        "Payments created, by provider"
    );
    describe_counter!(
        "paygate_payments_total",
        "Payment status changes, by provider and new status"
    );
    describe_counter!(
        "paygate_callbacks_total",
        "Browser/server callbacks of gateways that return the payer to us (medogram), by outcome"
    );
    describe_counter!(
        "paygate_expiry_checks_total",
        "Expiry jobs queued for payments past their time to live, by provider"
    );
    describe_counter!(
        "paygate_late_settlements_total",
        "Payments completed after they had failed, been cancelled or expired, because the gateway confirmed the money; by provider"
    );
    describe_counter!("paygate_webhooks_total", "Gateways' signed server calls (Atmos), by outcome (accepted, duplicate, bad_signature, refused, unknown, invalid, error)");

    for kind in JobKind::ALL {
        let k = kind.as_str();
        for outcome in ["started", "succeeded", "retried", "failed", "dead"] {
            metrics::counter!("paygate_jobs_total", "kind" => k, "outcome" => outcome).increment(0);
        }
        metrics::counter!("paygate_job_dispatch_failures_total", "kind" => k).increment(0);
        metrics::counter!("paygate_job_messages_skipped_total", "kind" => k).increment(0);
        metrics::counter!("paygate_jobs_chained_total", "kind" => k).increment(0);
    }
    // Per gateway, from its descriptor (domain/provider.rs).
    for provider in Provider::all() {
        let d = provider.descriptor();
        let p = d.name;
        metrics::counter!("paygate_payments_created_total", "provider" => p).increment(0);
        for status in PaymentStatus::ALL {
            if status != PaymentStatus::Pending {
                metrics::counter!("paygate_payments_total", "provider" => p, "status" => status.as_str()).increment(0);
            }
        }
        for op in d.operations {
            for outcome in ["ok", "retryable_error", "permanent_error"] {
                metrics::counter!("paygate_gateway_calls_total", "provider" => p, "operation" => *op, "outcome" => outcome).increment(0);
            }
        }
        if d.operations.contains(&"token") {
            metrics::counter!("paygate_gateway_token_refreshes_total", "provider" => p)
                .increment(0);
        }
        for outcome in d.inbound_outcomes {
            count_inbound(d, outcome, 0);
        }
        if d.capabilities.reconcile {
            metrics::counter!("paygate_reconciler_checks_total", "provider" => p).increment(0);
        }
        metrics::counter!("paygate_expiry_checks_total", "provider" => p).increment(0);
        metrics::counter!("paygate_late_settlements_total", "provider" => p).increment(0);
    }
    for outcome in ["ok", "retryable_error", "permanent_error"] {
        metrics::counter!("paygate_gateway_calls_total", "provider" => "main_server", "operation" => "fetch_user", "outcome" => outcome).increment(0);
    }
    metrics::counter!("paygate_sweeper_dispatched_total").increment(0);
    metrics::counter!("paygate_job_messages_unreadable_total").increment(0);
    metrics::counter!("paygate_queue_worker_failures_total").increment(0);
    metrics::gauge!("paygate_jobs_in_flight").set(0.0);
    metrics::gauge!("paygate_redis_queue_depth").set(0.0);
    register_webhooks();
}

/// Merchant notifications (webhooks/): deliveries by outcome, their latency,
/// endpoints disabled (the alert's series).
fn register_webhooks() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        "paygate_webhook_deliveries_total",
        "Merchant notification delivery attempts, by outcome (delivered, failed: will retry, exhausted, gone: 410, deferred: delivery lane full)"
    );
    describe_histogram!(
        "paygate_webhook_delivery_seconds",
        Unit::Seconds,
        "Time for one merchant endpoint to answer a delivery"
    );
    describe_counter!(
        "paygate_webhook_endpoints_disabled_total",
        "Merchant endpoints disabled, by reason (gone: answered 410; failing: failed for the whole retry schedule)"
    );
    for outcome in ["delivered", "failed", "exhausted", "gone", "deferred"] {
        metrics::counter!("paygate_webhook_deliveries_total", "outcome" => outcome).increment(0);
    }
    for reason in ["gone", "failing"] {
        metrics::counter!("paygate_webhook_endpoints_disabled_total", "reason" => reason)
            .increment(0);
    }
}

/// Counts `n` inbound calls of a gateway with `outcome`, in the counter its
/// descriptor names.
pub fn count_inbound(d: &crate::domain::Descriptor, outcome: &'static str, n: u64) {
    use crate::domain::InboundMetric;
    match d.inbound_metric {
        InboundMetric::Callbacks => {
            metrics::counter!("paygate_callbacks_total", "provider" => d.name, "outcome" => outcome)
                .increment(n)
        }
        InboundMetric::Webhooks => {
            metrics::counter!("paygate_webhooks_total", "provider" => d.name, "outcome" => outcome)
                .increment(n)
        }
    }
}
