//! The merchant test run (paygate-sandbox) against a reference merchant
//! built on paygate's Payme protocol and rules: it passes, and a merchant
//! that breaks a rule fails.

mod payme_reference;

use paygate_sandbox::payme_test::{self, MerchantTest, ScenarioResult, TestOrder, Verdict};
use payme_reference::{Fault, Reference};
use std::time::Duration;

const KEY: &str = "reference-merchant-key";
const AMOUNT: i64 = 500_000;

fn test_of(reference: &Reference, fresh_orders: bool) -> MerchantTest {
    MerchantTest {
        account_field: "order_id".into(),
        new_order: fresh_orders
            .then(|| payme_test::orders_from_url(&reference.create_order_url, AMOUNT)),
        expiry_margin: Duration::from_millis(500),
        ..MerchantTest::new(&reference.url, KEY)
    }
}

fn verdict_of<'a>(results: &'a [ScenarioResult], scenario: &str) -> &'a ScenarioResult {
    results
        .iter()
        .find(|r| r.scenario == scenario)
        .unwrap_or_else(|| panic!("no scenario {scenario:?} in {results:#?}"))
}

fn show(results: &[ScenarioResult]) -> String {
    results
        .iter()
        .map(|r| format!("{:?} {}: {}", r.verdict, r.scenario, r.detail))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_reference_merchant_passes_every_scenario() {
    let reference = Reference::start(KEY, "order_id", Fault::None).await;
    let results = payme_test::run(&test_of(&reference, true)).await;
    eprintln!("{}", show(&results));
    assert!(results.len() >= 20, "{}", show(&results));
    assert!(
        results.iter().all(ScenarioResult::passed),
        "{}",
        show(&results)
    );
    for scenario in [
        "bad credentials",
        "unknown account",
        "wrong amount",
        "repeat create",
        "second transaction for the same order",
        "repeat perform",
        "cancel after perform",
        "perform a cancelled transaction",
        "statement window",
        "concurrent repeats",
        "12-hour timeout",
        "create with an expired time",
    ] {
        assert!(verdict_of(&results, scenario).passed());
    }
}

#[tokio::test]
async fn a_merchant_that_performs_cancelled_transactions_fails() {
    let reference = Reference::start(KEY, "order_id", Fault::PerformsCancelled).await;
    let results = payme_test::run(&test_of(&reference, true)).await;
    let broken = verdict_of(&results, "perform a cancelled transaction");
    assert_eq!(broken.verdict, Verdict::Fail, "{}", show(&results));
    assert!(broken.detail.contains("-31008"), "{}", broken.detail);
    assert!(verdict_of(&results, "create").passed());
}

#[tokio::test]
async fn a_merchant_that_filters_statements_on_its_own_clock_fails() {
    let reference = Reference::start(KEY, "order_id", Fault::StatementOnCreateTime).await;
    let results = payme_test::run(&test_of(&reference, true)).await;
    assert_eq!(
        verdict_of(&results, "statement window").verdict,
        Verdict::Fail,
        "{}",
        show(&results)
    );
}

#[tokio::test]
async fn the_wrong_key_fails_the_run() {
    let reference = Reference::start(KEY, "order_id", Fault::None).await;
    let mut test = test_of(&reference, true);
    test.key = "not-the-key".into();
    let results = payme_test::run(&test).await;
    let create = verdict_of(&results, "create");
    assert_eq!(create.verdict, Verdict::Fail);
    assert!(create.detail.contains("-32504"), "{}", create.detail);
}

#[tokio::test]
async fn a_different_account_field_is_named_in_errors() {
    let reference = Reference::start(KEY, "invoice", Fault::None).await;
    let mut test = test_of(&reference, false);
    test.account_field = "invoice".into();
    test.order = Some(TestOrder {
        order_id: reference.add_order(AMOUNT),
        amount_tiyin: AMOUNT,
    });
    let results = payme_test::run(&test).await;
    assert!(verdict_of(&results, "unknown account").passed());
    // Told the wrong field, the run fails the account scenario.
    test.account_field = "order_id".into();
    test.order = Some(TestOrder {
        order_id: reference.add_order(AMOUNT),
        amount_tiyin: AMOUNT,
    });
    let results = payme_test::run(&test).await;
    assert_eq!(verdict_of(&results, "check perform").verdict, Verdict::Fail);
}

#[tokio::test]
async fn one_order_without_fresh_ones_skips_only_what_needs_them() {
    let reference = Reference::start(KEY, "order_id", Fault::None).await;
    let order_id = reference.add_order(AMOUNT);
    let mut test = test_of(&reference, false);
    test.order = Some(TestOrder {
        order_id: order_id.clone(),
        amount_tiyin: AMOUNT,
    });
    let results = payme_test::run(&test).await;
    assert!(
        !results.iter().any(ScenarioResult::failed),
        "{}",
        show(&results)
    );
    let skipped: Vec<&str> = results
        .iter()
        .filter(|r| r.verdict == Verdict::Skip)
        .map(|r| r.scenario.as_str())
        .collect();
    assert_eq!(
        skipped,
        [
            "cancel before perform",
            "concurrent repeats",
            "12-hour timeout",
            "create with an expired time"
        ]
    );
    // The one order was paid and then refunded.
    assert_eq!(
        reference.order(&order_id).unwrap().status,
        paygate_common::domain::OrderStatus::Cancelled
    );
}

#[tokio::test]
async fn no_order_at_all_is_one_clear_failure() {
    let reference = Reference::start(KEY, "order_id", Fault::None).await;
    let results = payme_test::run(&test_of(&reference, false)).await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].verdict, Verdict::Fail);
    assert!(results[0].detail.contains("no order"));
}
