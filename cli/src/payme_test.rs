//! `paygate sandbox payme-test`: the Payme merchant test run against any
//! merchant endpoint, one line per scenario; the exit status is non-zero
//! when any scenario fails.

use paygate_sandbox::payme_test::{self, MerchantTest, TestOrder, Verdict};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct PaymeTestArgs {
    /// The merchant's Payme endpoint, e.g. http://127.0.0.1:8080/payme/
    #[arg(long)]
    url: String,
    /// The cashbox key Payme authenticates with (Paycom:<key>).
    #[arg(long, env = "PAYME_KEY", hide_env_values = true)]
    key: String,
    /// The cashbox's account field.
    #[arg(long, default_value = "order_id")]
    account_field: String,
    /// An existing test order the run may pay and refund.
    #[arg(long)]
    order_id: Option<String>,
    /// The order's amount in tiyin (also the amount of created orders).
    #[arg(long, default_value_t = 500_000)]
    amount: i64,
    /// Where to create fresh orders: POST {"product_name","amount","payment_type":"payme"}
    /// answering {"order_id"}, e.g. http://127.0.0.1:8080/api/orders/create
    #[arg(long)]
    create_order_url: Option<String>,
    /// How far short of 12 hours the timeout scenario's transaction starts
    /// (the run waits this long plus one second).
    #[arg(long, default_value_t = 2000)]
    expiry_margin_ms: u64,
}

pub async fn run(args: PaymeTestArgs) -> ExitCode {
    if args.amount <= 0 {
        eprintln!("paygate: --amount must be a positive number of tiyin");
        return ExitCode::from(2);
    }
    if args.order_id.is_none() && args.create_order_url.is_none() {
        eprintln!("paygate: give --order-id or --create-order-url (or both)");
        return ExitCode::from(2);
    }
    let test = MerchantTest {
        account_field: args.account_field,
        order: args.order_id.map(|order_id| TestOrder {
            order_id,
            amount_tiyin: args.amount,
        }),
        new_order: args
            .create_order_url
            .map(|url| payme_test::orders_from_url(&url, args.amount)),
        expiry_margin: Duration::from_millis(args.expiry_margin_ms),
        ..MerchantTest::new(&args.url, &args.key)
    };
    let results = payme_test::run(&test).await;
    let mut failed = 0;
    for r in &results {
        let mark = match r.verdict {
            Verdict::Pass => "PASS",
            Verdict::Fail => {
                failed += 1;
                "FAIL"
            }
            Verdict::Skip => "SKIP",
        };
        println!("{mark}  {}: {}", r.scenario, r.detail);
    }
    let passed = results.iter().filter(|r| r.passed()).count();
    println!(
        "{passed} passed, {failed} failed, {} skipped",
        results.len() - passed - failed
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
