//! The benchmark tool, at tiny scale, against a real `paygate serve` (embedded
//! mode, built-in simulators with autopay): every scenario runs, prints the
//! JSON fields the scripts read, succeeds and makes no errors. No timing is
//! asserted: this proves the tool works, not how fast anything is.

mod support;

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use support::Server;

fn bench_binary() -> PathBuf {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_paygate")).with_file_name("paygate-bench");
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`, or `cargo build -p paygate-bench`)",
        path.display()
    );
    path
}

fn bench(args: &[&str]) -> Value {
    let out = Command::new(bench_binary())
        .args(args)
        .arg("--json")
        .output()
        .expect("run paygate-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "paygate-bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("paygate-bench {args:?} printed no JSON ({e}): {stdout}"))
}

fn assert_figures(v: &Value, what: &str) {
    for field in [
        "requests",
        "ok",
        "errors",
        "throughput_rps",
        "latency_ms",
        "errors_by_status",
    ] {
        assert!(v.get(field).is_some(), "{what}: no {field}: {v}");
    }
    for p in ["p50", "p95", "p99", "max"] {
        assert!(
            v["latency_ms"][p].is_number(),
            "{what}: latency_ms.{p}: {v}"
        );
    }
    assert!(v["ok"].as_u64().unwrap() > 0, "{what}: no success: {v}");
    assert_eq!(v["errors"], 0, "{what}: errors: {v}");
}

#[test]
fn every_scenario_runs_against_an_embedded_server() {
    let s = Server::serve(&[
        ("PAYGATE_SEED_WAIT_MS", "0"),
        ("PAYGATE_SANDBOX_MEDOGRAM_AUTOPAY", "true"),
        ("PAYGATE_SAMPLE_INTERVAL_MS", "200"),
        // The load generator creates as fast as it can from one address.
        ("PAYGATE_RATE_LIMIT_PER_SEC", "0"),
    ]);
    let api = s.base.as_str();
    let tiny = ["--duration", "1", "--warmup", "0"];

    for route in ["v1", "seed"] {
        let mut args = vec![
            "create",
            "--api",
            api,
            "--route",
            route,
            "--concurrency",
            "2",
        ];
        args.extend(tiny);
        let v = bench(&args);
        assert_eq!(v["scenario"], "create");
        assert_eq!(v["loop"], "closed");
        assert_figures(&v, &format!("create {route}"));
        assert!(v["cpu_pct"].is_object(), "{v}");
        if route == "seed" {
            // The report splits the seed route's answers; with no wait here
            // every one comes before the payment URL.
            let a = &v["seed_answers"];
            assert!(a["still_pending_202"].as_u64().unwrap_or(0) > 0, "{v}");
            assert_eq!(a["with_payment_url_201"], 0, "{v}");
        }
    }

    let mut args = vec!["create", "--api", api, "--rate", "20"];
    args.extend(tiny);
    let v = bench(&args);
    assert_eq!(v["loop"], "open");
    assert_figures(&v, "create open loop");

    // The seed route's floor: a create, then the worker's two gateway calls
    // from the load generator (here against the built-in sandbox).
    let gateway = format!("{api}/sandbox/medogram");
    let mut args = vec![
        "floor",
        "--api",
        api,
        "--gateway",
        gateway.as_str(),
        "--concurrency",
        "2",
    ];
    args.extend(tiny);
    let v = bench(&args);
    assert_eq!(v["scenario"], "floor");
    assert_figures(&v, "floor");
    assert!(v["answers"]["invoice"].as_u64().unwrap_or(0) > 0, "{v}");

    let mut args = vec![
        "webhook",
        "--api",
        api,
        "--orders",
        "4",
        "--concurrency",
        "2",
    ];
    args.extend(tiny);
    let v = bench(&args);
    assert_eq!(v["scenario"], "webhook");
    assert_eq!(v["setup"]["orders_ready"], 4, "{v}");
    assert_figures(&v, "webhook");
    assert_figures(&v["groups"]["first"], "webhook first deliveries");

    let mut args = vec![
        "payme",
        "--api",
        api,
        "--orders",
        "4",
        "--concurrency",
        "2",
        "--repeats",
        "2",
    ];
    args.extend(tiny);
    let v = bench(&args);
    assert_eq!(v["scenario"], "payme");
    assert_eq!(v["setup"]["orders_ready"], 4, "{v}");
    assert_eq!(v["orders_paid"], 4, "{v}\n{}", s.logs());
    assert_figures(&v, "payme payments");
    assert!(v["payments_per_s"].as_f64().unwrap() > 0.0, "{v}");
    for method in [
        "CheckPerformTransaction",
        "CreateTransaction",
        "PerformTransaction",
    ] {
        assert_figures(&v["calls"][method], method);
        assert_eq!(v["calls"][method]["ok"], 4, "{method}: {v}");
    }
    assert_figures(&v["repeat"], "payme repeated PerformTransaction");
    assert_eq!(v["repeat"]["ok"], 8, "{v}");

    let mut args = vec![
        "click",
        "--api",
        api,
        "--orders",
        "4",
        "--concurrency",
        "2",
        "--repeats",
        "2",
        "--amount-format",
        "integer",
    ];
    args.extend(tiny);
    let v = bench(&args);
    assert_eq!(v["scenario"], "click");
    assert_eq!(v["amount_text"], "50", "{v}");
    assert_eq!(v["setup"]["orders_ready"], 4, "{v}");
    assert_eq!(v["orders_paid"], 4, "{v}\n{}", s.logs());
    assert_figures(&v, "click payments");
    assert!(v["payments_per_s"].as_f64().unwrap() > 0.0, "{v}");
    for action in ["prepare", "complete"] {
        assert_figures(&v["calls"][action], action);
        assert_eq!(v["calls"][action]["ok"], 4, "{action}: {v}");
    }
    assert_figures(&v["repeat"], "click repeated Complete");
    assert_eq!(v["repeat"]["ok"], 8, "{v}");

    let mut args = vec![
        "pipeline",
        "--api",
        api,
        "--admin-key",
        s.admin_key.as_str(),
        "--rate",
        "10",
        "--drain",
        "60",
        "--sample",
        "5",
    ];
    let metrics = format!("{api}/metrics");
    args.extend(["--metrics", metrics.as_str()]);
    args.extend(tiny);
    let v = bench(&args);
    assert_eq!(v["scenario"], "pipeline");
    assert_figures(&v["create"], "pipeline creates");
    let created = v["created"].as_i64().unwrap();
    assert!(created > 0, "{v}");
    assert_eq!(
        v["completed"].as_i64().unwrap(),
        created,
        "{v}\n{}",
        s.logs()
    );
    assert_eq!(v["failed"], 0, "{v}");
    assert!(v["completed_per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["create_to_completed_ms"]["p50"].is_number(), "{v}");
    assert!(
        v["queue_depth"]["series"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{v}"
    );

    // Open result pages, the old poll and the long poll: every answer says
    // "unchanged" (the payments have settled), and the long poll asks less.
    let mut per_s = Vec::new();
    for mode in ["poll", "long"] {
        let v = bench(&[
            "pages",
            "--api",
            api,
            "--admin-key",
            s.admin_key.as_str(),
            "--pages",
            "3",
            "--mode",
            mode,
            "--interval",
            "0.2",
            "--wait",
            "1",
            "--duration",
            "2",
        ]);
        assert_eq!(v["scenario"], "pages", "{v}");
        assert_eq!(v["answers"]["errors"], 0, "{mode}: {v}");
        assert_eq!(v["answers"]["changed"], 0, "{mode}: {v}");
        assert!(
            v["answers"]["unchanged"].as_u64().unwrap() > 0,
            "{mode}: {v}"
        );
        assert!(v["latency_ms"]["p50"].is_number(), "{mode}: {v}");
        per_s.push(v["requests_per_s"].as_f64().unwrap());
    }
    assert!(
        per_s[1] < per_s[0],
        "the long poll asks less often: {per_s:?}"
    );
}
