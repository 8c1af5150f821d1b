//! The Atmos client against the real Atmos simulator (paygate-sandbox),
//! served over HTTP on 127.0.0.1.

use paygate_common::domain::{Amount, PaymentId};
use paygate_common::gateways::atmos::{AtmosConfig, AtmosGateway};
use paygate_common::gateways::{
    Gateway, GatewayError, InvoiceRequest, Payer, Verification, VerifyRequest,
};
use paygate_sandbox::{AtmosConfig as SimConfig, Sandbox, SandboxConfig};
use std::time::{Duration, Instant};

const RETURN_URL: &str = "https://shop.example/return?o=1&p=2";
const AMOUNT: i64 = 5_000_000;

struct Sim {
    sandbox: Sandbox,
    /// `http://127.0.0.1:PORT/sandbox/atmos`
    base: String,
    http: reqwest::Client,
}

impl Sim {
    async fn start(cfg: SimConfig) -> Self {
        let sandbox = Sandbox::new(SandboxConfig {
            atmos: cfg,
            ..SandboxConfig::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = sandbox.router();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Sim {
            sandbox,
            base: format!("http://{addr}/sandbox/atmos"),
            http,
        }
    }

    fn client_config(&self) -> AtmosConfig {
        let sim = SimConfig::default();
        AtmosConfig {
            api_base: self.base.clone(),
            // The simulator serves the hosted checkout too.
            checkout_base: self.base.clone(),
            consumer_key: sim.consumer_key,
            consumer_secret: sim.consumer_secret,
            store_id: sim.store_id,
            terminal_id: None,
            lang: "ru".into(),
            timeout: Duration::from_secs(10),
        }
    }

    fn gateway(&self) -> AtmosGateway {
        AtmosGateway::new(self.client_config()).expect("HTTP client")
    }

    async fn set_config(&self, cfg: &SimConfig) {
        let resp = self
            .http
            .put(format!("{}/_config", self.base))
            .json(cfg)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    }

    /// Presses a button of the hosted checkout ("pay" or "decline").
    async fn press(&self, button: &str, transaction_id: &str) {
        let resp = self
            .http
            .post(format!("{}/invoice/{button}", self.base))
            .form(&[("storeId", "8157"), ("transactionId", transaction_id)])
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{button}: {}", resp.status());
    }
}

fn invoice_request(account: &str) -> InvoiceRequest {
    InvoiceRequest {
        payment_id: PaymentId::new(),
        amount: Amount::from_minor(AMOUNT).unwrap(),
        description: "Order 197".into(),
        payer: Payer::default(),
        callback_url: RETURN_URL.into(),
        account: account.into(),
    }
}

/// Atmos always names its transaction.
fn gref(invoice: &paygate_common::gateways::Invoice) -> String {
    invoice
        .gateway_ref
        .clone()
        .expect("Atmos names its transaction")
}

fn verify_request(gateway_ref: &str) -> VerifyRequest {
    VerifyRequest {
        payment_id: PaymentId::new(),
        gateway_ref: gateway_ref.into(),
        trans_id: None,
    }
}

fn permanent_reason(e: GatewayError) -> String {
    match e {
        GatewayError::Permanent { reason, .. } => reason,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

#[tokio::test]
async fn create_returns_the_checkout_url() {
    let sim = Sim::start(SimConfig::default()).await;
    let gw = sim.gateway();
    let invoice = gw.create_invoice(&invoice_request("197")).await.unwrap();
    assert!(
        gref(&invoice).bytes().all(|b| b.is_ascii_digit()),
        "{}",
        gref(&invoice)
    );
    assert_eq!(
        invoice.payment_url,
        format!(
            "{}/invoice/get?storeId=8157&transactionId={}&redirectLink=https%3A%2F%2Fshop.example%2Freturn%3Fo%3D1%26p%3D2",
            sim.base, gref(&invoice)
        )
    );
    // The simulator's checkout understands the link.
    let page = sim.http.get(&invoice.payment_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&gref(&invoice)), "{html}");
    assert!(html.contains("shop.example/return?o=1&amp;p=2"), "{html}");

    let stats = sim.sandbox.atmos_stats();
    assert_eq!(stats.creates_total, 1);
    assert_eq!(stats.creates_by_account.get("197"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_share_one_token() {
    let sim = Sim::start(SimConfig::default()).await;
    let gw = sim.gateway();
    let requests: Vec<_> = (0..8).map(|i| invoice_request(&format!("{i}00"))).collect();
    let results = futures::future::join_all(requests.iter().map(|r| gw.create_invoice(r))).await;
    for r in results {
        r.unwrap();
    }
    gw.create_invoice(&invoice_request("999")).await.unwrap();
    let stats = sim.sandbox.atmos_stats();
    assert_eq!(stats.tokens_issued, 1);
    assert_eq!(stats.creates_total, 9);
}

/// A token that expires while a call is in flight: the simulator answers
/// 401, the client refreshes once (for all concurrent callers) and retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_is_refreshed_once_and_the_call_retried() {
    let mut cfg = SimConfig {
        token_ttl_secs: 1,
        ..SimConfig::default()
    };
    let sim = Sim::start(cfg.clone()).await;
    let gw = sim.gateway();
    // Token valid for 1 s at the simulator; the client uses it for 0.5 s.
    let fetched = Instant::now();
    gw.create_invoice(&invoice_request("1")).await.unwrap();
    // Calls now wait 1.3 s before the Bearer check, so the cached (still
    // fresh-looking) token has expired by the time it is checked.
    cfg.token_ttl_secs = 3600;
    cfg.latency_ms = 1300;
    sim.set_config(&cfg).await;
    assert!(
        fetched.elapsed() < Duration::from_millis(450),
        "setup too slow: the client would refresh before the 401"
    );
    let phase = Instant::now();
    let requests: Vec<_> = (0..4).map(|i| invoice_request(&format!("2{i}"))).collect();
    let results = futures::future::join_all(requests.iter().map(|r| gw.create_invoice(r))).await;
    for r in results {
        r.unwrap();
    }
    let stats = sim.sandbox.atmos_stats();
    assert_eq!(stats.tokens_issued, 2, "one refresh for all four callers");
    // call → 401, token, retried call: three latencies in a row.
    assert!(phase.elapsed() >= Duration::from_millis(3 * 1300));
    assert_eq!(stats.creates_total, 5);
}

#[tokio::test]
async fn always_expired_tokens_end_in_a_permanent_error() {
    let sim = Sim::start(SimConfig {
        token_ttl_secs: 0,
        ..SimConfig::default()
    })
    .await;
    let err = sim
        .gateway()
        .create_invoice(&invoice_request("1"))
        .await
        .unwrap_err();
    assert_eq!(permanent_reason(err), "atmos_unauthorized");
    assert_eq!(sim.sandbox.atmos_stats().tokens_issued, 2, "refreshed once");
}

#[tokio::test]
async fn wrong_consumer_secret_is_permanent() {
    let sim = Sim::start(SimConfig::default()).await;
    let gw = AtmosGateway::new(AtmosConfig {
        consumer_secret: "not-the-secret".into(),
        ..sim.client_config()
    })
    .expect("HTTP client");
    let err = gw.create_invoice(&invoice_request("1")).await.unwrap_err();
    assert!(
        !err.to_string().contains("not-the-secret"),
        "secret leaked: {err}"
    );
    assert_eq!(permanent_reason(err), "atmos_auth_failed");
    assert_eq!(sim.sandbox.atmos_stats().creates_total, 0);
}

#[tokio::test]
async fn refusals_map_to_permanent_reasons() {
    let sim = Sim::start(SimConfig::default()).await;
    let err = sim
        .gateway()
        .create_invoice(&invoice_request("12a"))
        .await
        .unwrap_err();
    assert_eq!(permanent_reason(err), "invalid_account");
    assert_eq!(
        sim.sandbox.atmos_stats().tokens_issued,
        0,
        "rejected before any call"
    );

    let other_store = AtmosGateway::new(AtmosConfig {
        store_id: "9999".into(),
        ..sim.client_config()
    })
    .expect("HTTP client");
    let err = other_store
        .create_invoice(&invoice_request("1"))
        .await
        .unwrap_err();
    assert_eq!(permanent_reason(err), "atmos_unknown_store");

    let gw = sim.gateway();
    let err = gw.verify(&verify_request("1")).await.unwrap_err();
    assert_eq!(permanent_reason(err), "atmos_transaction_not_found");
    let err = gw.verify(&verify_request("abc")).await.unwrap_err();
    assert_eq!(permanent_reason(err), "invalid_gateway_ref");
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retryable() {
    let mut cfg = SimConfig {
        error_rate: 1.0,
        ..SimConfig::default()
    };
    let sim = Sim::start(cfg.clone()).await;
    let gw = sim.gateway();
    // The token call itself fails.
    let err = gw.create_invoice(&invoice_request("1")).await.unwrap_err();
    assert!(matches!(err, GatewayError::Retryable { .. }), "{err:?}");

    // With a cached token, the business calls fail.
    cfg.error_rate = 0.0;
    sim.set_config(&cfg).await;
    let invoice = gw.create_invoice(&invoice_request("1")).await.unwrap();
    cfg.error_rate = 1.0;
    sim.set_config(&cfg).await;
    let err = gw.create_invoice(&invoice_request("2")).await.unwrap_err();
    assert!(matches!(err, GatewayError::Retryable { .. }), "{err:?}");
    let err = gw
        .verify(&verify_request(&gref(&invoice)))
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::Retryable { .. }), "{err:?}");

    // A slow gateway becomes a retry.
    cfg.error_rate = 0.0;
    cfg.latency_ms = 1500;
    sim.set_config(&cfg).await;
    let impatient = AtmosGateway::new(AtmosConfig {
        timeout: Duration::from_millis(300),
        ..sim.client_config()
    })
    .expect("HTTP client");
    let err = impatient
        .create_invoice(&invoice_request("3"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GatewayError::Retryable { message, .. } if message.contains("timed out")),
        "{err:?}"
    );
}

#[tokio::test]
async fn pay_verify_reverse() {
    let sim = Sim::start(SimConfig::default()).await;
    let gw = sim.gateway();
    let invoice = gw.create_invoice(&invoice_request("197")).await.unwrap();
    let check = verify_request(&gref(&invoice));
    assert_eq!(gw.verify(&check).await.unwrap(), Verification::Pending);

    // Reversing an unpaid transaction is refused (variant (c): no processing id).
    let err = gw.reverse(&gref(&invoice), "", "test").await.unwrap_err();
    assert_eq!(permanent_reason(err), "atmos_not_confirmed");

    sim.press("pay", &gref(&invoice)).await;
    let Verification::Paid {
        amount,
        trans_id: Some(trans_id),
        repeated: false,
    } = gw.verify(&check).await.unwrap()
    else {
        panic!("not paid");
    };
    assert_eq!(amount, AMOUNT);
    assert!(trans_id.bytes().all(|b| b.is_ascii_digit()), "{trans_id}");
    assert_ne!(trans_id, gref(&invoice));

    gw.reverse(&gref(&invoice), &trans_id, "fulfilment failed")
        .await
        .unwrap();
    assert_eq!(
        gw.verify(&check).await.unwrap(),
        Verification::NotPaid {
            reason: "cancelled".into()
        }
    );
    // A repeated reverse (say, after a lost reply) succeeds.
    gw.reverse(&gref(&invoice), &trans_id, "fulfilment failed")
        .await
        .unwrap();
    let stats = sim.sandbox.atmos_stats();
    assert_eq!(stats.confirmed_total, 1);
    assert_eq!(stats.reversed_total, 1);
    assert_eq!(stats.tokens_issued, 1);
}

#[tokio::test]
async fn declined_payment_is_not_paid() {
    let sim = Sim::start(SimConfig::default()).await;
    let gw = sim.gateway();
    let invoice = gw.create_invoice(&invoice_request("197")).await.unwrap();
    sim.press("decline", &gref(&invoice)).await;
    assert_eq!(
        gw.verify(&verify_request(&gref(&invoice))).await.unwrap(),
        Verification::NotPaid {
            reason: "declined".into()
        }
    );
}

#[tokio::test]
async fn autopay_is_seen_as_paid() {
    let sim = Sim::start(SimConfig {
        autopay: true,
        autopay_delay_ms: 20,
        ..SimConfig::default()
    })
    .await;
    let gw = sim.gateway();
    let invoice = gw.create_invoice(&invoice_request("42")).await.unwrap();
    let check = verify_request(&gref(&invoice));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match gw.verify(&check).await.unwrap() {
            Verification::Paid { amount, .. } => {
                assert_eq!(amount, AMOUNT);
                break;
            }
            Verification::Pending if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("{other:?}"),
        }
    }
}
