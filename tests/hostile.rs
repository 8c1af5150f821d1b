//! A hostile client against a real `paygate serve`: slow and stuck
//! connections, floods of creates, callbacks from strangers, malformed ids,
//! path-steering identifiers, framing of payment pages, the simulators
//! turned against a payer, and orders read by counting. Each test keeps one
//! finding of the hardening review from coming back.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::{client, metrics_text, Server};

fn connect(s: &Server) -> TcpStream {
    let addr = s.base.trim_start_matches("http://");
    let c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c
}

/// Reads until the server closes the connection; returns what arrived and when.
fn read_until_closed(c: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the connection was not closed: {e}"),
        }
    }
    (
        String::from_utf8_lossy(&all).into_owned(),
        started.elapsed(),
    )
}

fn slow_server(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("PAYGATE_HTTP_HEADER_TIMEOUT_MS", "600"),
        ("PAYGATE_HTTP_BODY_TIMEOUT_MS", "800"),
        ("PAYGATE_HTTP_IDLE_TIMEOUT_MS", "1500"),
    ];
    env.extend_from_slice(extra);
    Server::serve(&env)
}

#[test]
fn slow_clients_are_cut_off() {
    let s = slow_server(&[]);

    // 1. A partial request line is closed after the header timeout.
    let mut c = connect(&s);
    c.write_all(b"GET /heal").unwrap();
    let (got, took) = read_until_closed(&mut c);
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert!(!got.contains("200 OK"), "{got}");

    // A connection that never sends a byte is closed after the header timeout too.
    let mut c = connect(&s);
    let (got, took) = read_until_closed(&mut c);
    // (sooner than the 1.5 s idle timeout: it is the 0.6 s header timeout that cut it)
    assert!(
        got.is_empty() && took < Duration::from_millis(1400),
        "{got} {took:?}"
    );

    // 2. Headers trickled forever are cut too.
    let mut c = connect(&s);
    c.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let writer = {
        let mut w = c.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..40 {
                std::thread::sleep(Duration::from_millis(100));
                if w.write_all(b"X-A: b\r\n").is_err() {
                    break;
                }
            }
        })
    };
    let (got, took) = read_until_closed(&mut c);
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(!got.contains("200 OK"), "{got}");
    let _ = writer.join();

    // 3. A body trickled at a few bytes a second gets 408 and a close.
    let mut c = connect(&s);
    c.write_all(
        b"POST /v1/payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{",
    )
    .unwrap();
    let writer = {
        let mut w = c.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..30 {
                std::thread::sleep(Duration::from_millis(100));
                if w.write_all(b" ").is_err() {
                    break;
                }
            }
        })
    };
    let (got, took) = read_until_closed(&mut c);
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("\"request_timeout\""), "{got}");
    let _ = writer.join();

    // 4. An idle keep-alive connection is closed after the idle timeout.
    let mut c = connect(&s);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (got, took) = read_until_closed(&mut c);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        took >= Duration::from_millis(500),
        "closed too early: {took:?}"
    );
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[test]
fn the_connection_limit_holds() {
    let s = Server::serve(&[
        ("PAYGATE_HTTP_MAX_CONNECTIONS", "4"),
        ("PAYGATE_HTTP_HEADER_TIMEOUT_MS", "20000"),
        ("PAYGATE_HTTP_IDLE_TIMEOUT_MS", "20000"),
    ]);
    // The start-up probe's connection may still be open for a moment.
    std::thread::sleep(Duration::from_millis(300));
    let mut held: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut c = connect(&s);
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // The fifth is closed at once, without an answer.
    let mut extra = connect(&s);
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    let (got, took) = read_until_closed(&mut extra);
    assert!(got.is_empty(), "{got}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // Finishing one held request and closing it frees a slot.
    let mut first = held.remove(0);
    first.write_all(b"Connection: close\r\n\r\n").unwrap();
    let (got, _) = read_until_closed(&mut first);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = connect(&s);
        let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (got, _) = read_until_closed(&mut c);
        if got.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "no slot came free");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn create_payment(s: &Server, xff: Option<&str>) -> reqwest::Response {
    let mut req = client()
        .post(s.url("/v1/payments"))
        .json(&json!({"amount": 100000, "user_identifier": "09123456789"}));
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn creates_are_rate_limited_per_client() {
    let s = Server::serve(&[
        ("PAYGATE_RATE_LIMIT_PER_SEC", "1"),
        ("PAYGATE_RATE_LIMIT_BURST", "2"),
        ("PAYGATE_TRUSTED_PROXIES", "1"),
    ]);
    // Behind one proxy: the entry it appended decides, whatever the client forged.
    for forged in ["1.1.1.1", "2.2.2.2"] {
        let r = create_payment(&s, Some(&format!("{forged}, 203.0.113.7"))).await;
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    let r = create_payment(&s, Some("3.3.3.3, 203.0.113.7")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another client has its own budget; reads are never limited.
    let r = create_payment(&s, Some("198.51.100.9")).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    for route in [
        "/crazyminer/payment/create/",
        "/api/orders/create",
        "/v1/orders",
    ] {
        let r = client()
            .post(s.url(route))
            .header("x-forwarded-for", "203.0.113.7")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{route}");
    }
    assert_eq!(
        client()
            .get(s.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let m = metrics_text(&s).await;
    assert!(
        m.contains("paygate_rate_limited_total{route=\"/v1/payments\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn callbacks_from_outside_the_allowlist_are_refused() {
    let s = Server::serve(&[
        ("PAYGATE_ALLOW_ATMOS", "10.9.9.0/24"),
        ("PAYGATE_ALLOW_MEDOGRAM", "10.9.9.9"),
        ("PAYGATE_TRUSTED_PROXIES", "1"),
    ]);
    let webhook = json!({"store_id": "8157", "transaction_id": 1, "amount": 5000, "invoice": "1", "sign": "x"});
    let r = client()
        .post(s.url("/atmos/webhook/"))
        .json(&webhook)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "source_not_allowed");
    let r = client()
        .get(s.url("/crazyminer/payment/callback/?trans_id=1&id_get=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // From an allowed address (as our one trusted proxy reports it) it is judged on its merits.
    let r = client()
        .post(s.url("/atmos/webhook/"))
        .header("x-forwarded-for", "10.9.9.20")
        .json(&webhook)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 0, "{body}");
    // Other routes are not filtered.
    let r = create_payment(&s, None).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn every_framework_rejection_is_json() {
    let s = Server::serve(&[]);
    let bad = "%ff%fe";
    let gets = [
        format!("/crazyminer/payment/status/{bad}/"),
        format!("/crazyminer/payment/result/{bad}/"),
        format!("/v1/payments/{bad}"),
        format!("/v1/payments/{bad}/events"),
        format!("/api/orders/{bad}"),
        format!("/api/orders/{bad}/result/"),
        format!("/v1/orders/{bad}"),
    ];
    let auth = format!("Bearer {}", s.admin_key);
    let mut requests: Vec<reqwest::RequestBuilder> = gets
        .iter()
        .map(|p| client().get(s.url(p)).header("authorization", &auth))
        .collect();
    requests.push(
        client()
            .post(s.url(&format!("/v1/admin/jobs/{bad}/redrive")))
            .header("authorization", &auth),
    );
    requests.push(client().delete(s.url("/v1/payments")));
    requests.push(
        client()
            .get(s.url("/crazyminer/payment/list/?page=%ff"))
            .header("authorization", &auth),
    );
    requests.push(
        client()
            .post(s.url("/v1/payments"))
            .header("content-type", "application/json")
            .body(vec![b'{'; 200_000]),
    );
    requests.push(
        client()
            .post(s.url("/v1/payments"))
            .header("content-type", "application/json")
            .body(vec![0xff, 0xfe, b'{']),
    );
    for req in requests {
        let r = req.send().await.unwrap();
        let status = r.status();
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        let text = r.text().await.unwrap();
        assert!(status.is_client_error(), "{status} {text}");
        assert!(ct.starts_with("application/json"), "{status} {ct} {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v["error"]["code"].is_string(), "{text}");
    }
}

#[tokio::test]
async fn user_identifiers_cannot_steer_the_user_server_call() {
    let s = Server::serve(&[]);
    for id in [
        "..",
        ".",
        "../api",
        "0912345678/..",
        "%2e%2e",
        "09123456789?x=1",
    ] {
        for route in ["/crazyminer/payment/create/", "/v1/payments"] {
            let r = client()
                .post(s.url(route))
                .json(&json!({"amount": 100000, "user_identifier": id}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{id} {route}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["field"], "user_identifier", "{id}");
        }
    }
}

fn assert_protected(headers: &reqwest::header::HeaderMap, what: &str) {
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("script-src 'unsafe-inline'"), "{what}: {csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert!(headers.contains_key("referrer-policy"), "{what}");
}

#[tokio::test]
async fn html_pages_carry_browser_protections_and_simulators_redirect_only_home() {
    let s = Server::serve(&[]);
    let r = create_payment(&s, None).await;
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = client()
        .get(s.url(&format!("/crazyminer/payment/result/{id}/")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_protected(r.headers(), "result page");
    let page = r.text().await.unwrap();
    assert!(!page.contains("<script>"), "no inline script: {page}");

    // An Atmos checkout page, with a hostile return link.
    let order: Value = client()
        .post(s.url("/api/orders/create"))
        .json(&json!({"product_name": "T", "amount": "50.00", "payment_type": "atmos"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = order["payment_url"].as_str().unwrap();
    let txn = url
        .split("transactionId=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    for evil in [
        "javascript:alert(document.domain)",
        "https://evil.example/landing",
    ] {
        let page = client()
            .get(s.url(&format!(
                "/sandbox/atmos/invoice/get?storeId=8157&transactionId={txn}&redirectLink={}",
                evil.replace(':', "%3A").replace('/', "%2F")
            )))
            .send()
            .await
            .unwrap();
        assert_protected(page.headers(), "checkout page");
        let html = page.text().await.unwrap();
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("evil.example"), "{html}");
        let r = client()
            .post(s.url("/sandbox/atmos/invoice/decline"))
            .form(&[
                ("storeId", "8157"),
                ("transactionId", txn),
                ("redirectLink", evil),
            ])
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), StatusCode::FOUND, "{evil}");
        let html = r.text().await.unwrap();
        assert!(
            !html.contains("evil.example") && !html.contains("javascript:"),
            "{html}"
        );
    }
}

#[tokio::test]
async fn simulator_controls_need_the_admin_key_and_production_has_no_simulators() {
    let s = Server::serve(&[("PAYGATE_SANDBOX_OPEN_CONTROL", "false")]);
    for path in [
        "/sandbox/atmos/_config",
        "/sandbox/medogram/_config",
        "/sandbox/medogram/_stats",
    ] {
        let r = client().get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unauthorized");
        let r = client()
            .get(s.url(path))
            .bearer_auth(&s.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let r = client()
        .put(s.url("/sandbox/medogram/api/users/09123456789/"))
        .json(&json!({"_missing": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client()
        .put(s.url("/sandbox/atmos/_config"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let p = Server::serve(&[
        ("PAYGATE_ENV", "production"),
        ("SECRET_KEY", "hostile-test-secret"),
        ("PAYMENT_GATEWAY_URL", "http://127.0.0.1:9/gw"),
        ("PAYMENT_API_KEY", "k"),
    ]);
    for path in [
        "/sandbox/medogram/_config",
        "/sandbox/atmos/invoice/get?transactionId=1",
    ] {
        let r = client().get(p.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paygate"))
        .arg("sandbox")
        .env("PAYGATE_ENV", "production")
        .env("PAYGATE_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("PAYGATE_ENV=production"));
}

#[tokio::test]
async fn orders_cannot_be_read_by_counting() {
    let s = Server::serve(&[]);
    let r = client()
        .post(s.url("/api/orders/create"))
        .json(&json!({"product_name": "Secret thing", "amount": "50.00", "payment_type": "atmos"}))
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let created: Value = r.json().await.unwrap();
    let id = created["order_id"].as_i64().unwrap();
    let token = created["order_token"].as_str().unwrap().to_string();
    assert_eq!(loc, format!("/api/orders/{id}?token={token}"));
    for path in [
        format!("/api/orders/{id}"),
        format!("/v1/orders/{id}"),
        format!("/api/orders/{id}/result/"),
        format!("/api/orders/{id}?token=0000"),
        format!("/api/orders/{id}?token="),
    ] {
        let r = client().get(s.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(!r.text().await.unwrap().contains("Secret thing"), "{path}");
    }
    for path in [
        format!("/api/orders/{id}?token={token}"),
        format!("/v1/orders/{id}?token={token}"),
        format!("/api/orders/{id}/result/?token={token}"),
    ] {
        let r = client().get(s.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    let r = client()
        .get(s.url(&format!("/api/orders/{id}")))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client()
        .get(s.url(&format!("/api/orders/{id}")))
        .bearer_auth("pgk_not_a_key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
