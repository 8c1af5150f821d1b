//! `paygate sandbox click-test`: plays Click's merchant acceptance test (the
//! 15-scenario matrix and the retry case) against a running merchant and
//! prints one line per scenario.

use paygate_sandbox::click::merchant_test::{orders_from_url, run_merchant_test, MerchantTest};
use paygate_sandbox::AmountFormat;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct ClickTestArgs {
    /// The merchant's Prepare URL (also Complete's unless --complete-url is given),
    /// e.g. http://127.0.0.1:8080/click/
    #[arg(long)]
    url: String,
    /// The merchant's Complete URL, when it differs from --url.
    #[arg(long)]
    complete_url: Option<String>,
    /// The SECRET_KEY Click signs with.
    #[arg(long, env = "CLICK_SECRET_KEY", hide_env_values = true)]
    secret: String,
    #[arg(long, env = "CLICK_SERVICE_ID")]
    service_id: String,
    /// Where fresh orders come from: paygate's `POST /api/orders/create`
    /// (default: that route on --url's host).
    #[arg(long)]
    create_order_url: Option<String>,
    /// How amounts are printed: 5000, 5000.0 or 5000.00.
    #[arg(long, default_value = "5000")]
    amount_format: AmountFormat,
    /// A merchant_trans_id that names no order (scenario 2).
    #[arg(long, default_value = "987654321987")]
    unknown_order: String,
    /// Seconds the merchant may take per call.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
}

/// `{scheme}://{host}[:port]/api/orders/create` of `url`.
fn default_create_order_url(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin
        .is_tuple()
        .then(|| format!("{}/api/orders/create", origin.ascii_serialization()))
}

pub async fn run(args: ClickTestArgs) -> ExitCode {
    let Some(create_url) = args
        .create_order_url
        .clone()
        .or_else(|| default_create_order_url(&args.url))
    else {
        eprintln!("paygate: --url is not an http(s) URL; give --create-order-url");
        return ExitCode::from(2);
    };
    let test = MerchantTest {
        prepare_url: args.url,
        complete_url: args.complete_url,
        secret_key: args.secret,
        service_id: args.service_id,
        amount_format: args.amount_format,
        unknown_order: args.unknown_order,
        timeout: Duration::from_secs(args.timeout_secs.max(1)),
    };
    let results = run_merchant_test(&test, &orders_from_url(create_url)).await;
    let failed = results.iter().filter(|r| !r.passed).count();
    for r in &results {
        let mark = if r.passed { "pass" } else { "FAIL" };
        println!("{mark}  {:<58} {}", r.scenario, r.detail);
    }
    println!(
        "{} of {} scenarios passed (amount format {})",
        results.len() - failed,
        results.len(),
        test.amount_format
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_come_from_the_merchants_host() {
        assert_eq!(
            default_create_order_url("http://127.0.0.1:8080/click/").as_deref(),
            Some("http://127.0.0.1:8080/api/orders/create")
        );
        assert_eq!(
            default_create_order_url("https://shop.example/click/prepare/").as_deref(),
            Some("https://shop.example/api/orders/create")
        );
        assert_eq!(default_create_order_url("not a url"), None);
    }
}
