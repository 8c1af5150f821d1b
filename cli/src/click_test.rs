//! `paygate sandbox click-test`: plays Click's merchant acceptance test (the
//! 15-scenario matrix and the retry case) against a running merchant and
//! prints one line per scenario.

use paygate_sandbox::click::merchant_test::{
    orders_from_url, run_merchant_test, MerchantTest, ScenarioResult,
};
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

/// Runs the test; `Err` when the arguments cannot work.
async fn results(args: ClickTestArgs) -> Result<(MerchantTest, Vec<ScenarioResult>), String> {
    let create_url = args
        .create_order_url
        .clone()
        .or_else(|| default_create_order_url(&args.url))
        .ok_or("--url is not an http(s) URL; give --create-order-url")?;
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
    Ok((test, results))
}

/// One line per scenario and a summary; true when all passed.
fn print(test: &MerchantTest, results: &[ScenarioResult], out: &mut impl std::io::Write) -> bool {
    let failed = results.iter().filter(|r| !r.passed).count();
    for r in results {
        let mark = if r.passed { "pass" } else { "FAIL" };
        let _ = writeln!(out, "{mark}  {:<58} {}", r.scenario, r.detail);
    }
    let _ = writeln!(
        out,
        "{} of {} scenarios passed (amount format {})",
        results.len() - failed,
        results.len(),
        test.amount_format
    );
    failed == 0
}

pub async fn run(args: ClickTestArgs) -> ExitCode {
    match results(args).await {
        Ok((test, results)) if print(&test, &results, &mut std::io::stdout()) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("paygate: {e}");
            ExitCode::from(2)
        }
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

    fn args(line: &[&str]) -> ClickTestArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: ClickTestArgs,
        }
        <Cli as clap::Parser>::try_parse_from(
            std::iter::once("click-test").chain(line.iter().copied()),
        )
        .map(|c| c.args)
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A merchant that answers 0 to everything, and hands out orders.
    async fn yes_merchant() -> String {
        use axum::routing::post;
        let app = axum::Router::new()
            .route(
                "/click/",
                post(|| async {
                    axum::Json(serde_json::json!({"error": 0, "error_note": "Success", "merchant_prepare_id": 1}))
                }),
            )
            .route(
                "/api/orders/create",
                post(|| async { axum::Json(serde_json::json!({"order_id": 7, "amount": "50.00"})) }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_merchant_saying_yes_to_everything_fails() {
        let base = yes_merchant().await;
        let url = format!("{base}/click/");
        let a = args(&[
            "--url",
            &url,
            "--secret",
            "s",
            "--service-id",
            "1",
            "--amount-format",
            "5000.00",
        ]);
        assert_eq!(a.amount_format, AmountFormat::TwoDecimals);
        let (test, results) = results(a).await.unwrap();
        let mut out = Vec::new();
        assert!(!print(&test, &results, &mut out));
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("FAIL  1. Prepare with a bad sign → -1"),
            "{out}"
        );
        assert!(out.contains("pass  3. Prepare → 0"), "{out}");
        assert!(out.contains("(amount format 5000.00)"), "{out}");
    }

    #[tokio::test]
    async fn a_url_without_host_needs_an_order_url() {
        let a = args(&["--url", "nowhere", "--secret", "s", "--service-id", "1"]);
        assert!(results(a).await.unwrap_err().contains("--create-order-url"));
    }
}
