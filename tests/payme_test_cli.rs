//! `paygate sandbox payme-test` (the real binary) against the reference
//! Payme merchant: every scenario passes, a broken merchant fails the run.

#[path = "../common/tests/payme_reference/mod.rs"]
mod payme_reference;

use payme_reference::{Fault, Reference};
use std::process::Output;

const KEY: &str = "cli-reference-key";

async fn payme_test(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args(["sandbox", "payme-test"])
        .args(args)
        .env_remove("PAYME_KEY")
        .output()
        .await
        .expect("run paygate")
}

async fn against(fault: Fault) -> (Output, String) {
    let merchant = Reference::start(KEY, "order_id", fault).await;
    let out = payme_test(&[
        "--url",
        &merchant.url,
        "--key",
        KEY,
        "--create-order-url",
        &merchant.create_order_url,
        "--expiry-margin-ms",
        "300",
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

#[tokio::test]
async fn the_reference_merchant_passes() {
    let (out, stdout) = against(Fault::None).await;
    assert!(out.status.success(), "{stdout}");
    for line in [
        "PASS  bad credentials",
        "PASS  statement window",
        "PASS  12-hour timeout",
        " 0 failed, 0 skipped",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
}

#[tokio::test]
async fn a_merchant_that_performs_cancelled_transactions_fails_the_run() {
    let (out, stdout) = against(Fault::PerformsCancelled).await;
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  perform a cancelled transaction"),
        "{stdout}"
    );
}

#[tokio::test]
async fn without_orders_it_says_what_is_missing() {
    let out = payme_test(&["--url", "http://127.0.0.1:9/payme/", "--key", "k"]).await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--create-order-url"), "{stderr}");
}
