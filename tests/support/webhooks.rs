//! A merchant's webhook receiver for whole-process tests (an axum server that
//! can be down, answering a chosen status, then up), and the check of every
//! recorded delivery with the Standard Webhooks reference library from PyPI.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// What the receiver answered.
    pub answered: u16,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    answer: Arc<AtomicU16>,
    /// How long the receiver sits on each request before answering.
    delay_ms: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<Delivery>>>,
}

impl Receiver {
    /// Starts a receiver answering `status` to every delivery.
    pub async fn start(status: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let answer = Arc::new(AtomicU16::new(status));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let seen: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let app = {
            let (answer, seen, delay) = (answer.clone(), seen.clone(), delay_ms.clone());
            Router::new().route(
                "/hooks",
                post(move |headers: HeaderMap, body: Bytes| {
                    let (answer, seen, delay) = (answer.clone(), seen.clone(), delay.clone());
                    async move {
                        // Recorded on arrival: a slow answer is still a delivery seen.
                        let code = answer.load(Ordering::SeqCst);
                        seen.lock().unwrap().push(Delivery {
                            headers: headers
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                                })
                                .collect(),
                            body: String::from_utf8_lossy(&body).into_owned(),
                            answered: code,
                        });
                        let wait = delay.load(Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                        (
                            StatusCode::from_u16(code).unwrap(),
                            format!("answered {code}"),
                        )
                    }
                }),
            )
        };
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks"),
            answer,
            delay_ms,
            seen,
        }
    }

    /// Makes every later request wait `ms` before its answer (a slow merchant).
    pub fn delay(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn answer(&self, status: u16) {
        self.answer.store(status, Ordering::SeqCst);
    }

    pub fn all(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap().clone()
    }

    /// The deliveries the receiver accepted (2xx).
    pub fn accepted(&self) -> Vec<Delivery> {
        self.all()
            .into_iter()
            .filter(|d| (200..300).contains(&d.answered))
            .collect()
    }
}

fn target_dir() -> PathBuf {
    // tests run from cli/; the workspace's target/ is one up.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// The venv with the pinned reference verifier, made on first use (PyPI
/// must be reachable then). Once per test binary (tests run as threads of
/// one process), in a temporary folder renamed when complete, so test
/// binaries running at once never see a half-made one.
fn python() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(make_python).clone()
}

fn make_python() -> PathBuf {
    const PIN: &str = "standardwebhooks==1.1.0";
    let venv = target_dir().join("pyenv-standardwebhooks");
    let py = venv.join("bin/python");
    let ready = |py: &Path| {
        Command::new(py)
            .args(["-c", "import standardwebhooks"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready(&py) {
        return py;
    }
    let tmp = target_dir().join(format!("pyenv-tmp-{}", uuid::Uuid::new_v4().simple()));
    let _ = std::fs::remove_dir_all(&tmp);
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&tmp)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "python3 -m venv failed: install python3 with venv");
    let ok = Command::new(tmp.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", PIN])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "pip install {PIN} failed: PyPI must be reachable for this test"
    );
    if std::fs::rename(&tmp, &venv).is_err() {
        // Another test binary made it first.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(
        ready(&py),
        "the verifier venv at {} is unusable",
        venv.display()
    );
    py
}

/// Verifies every delivery with the PyPI `standardwebhooks` library, each
/// with the secret it should verify under. Panics on any failure.
pub fn verify_all(deliveries: &[(String, Delivery)]) {
    let input: Vec<Value> = deliveries
        .iter()
        .map(|(secret, d)| {
            let headers: serde_json::Map<String, Value> = d
                .headers
                .iter()
                .filter(|(k, _)| k.starts_with("webhook-"))
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            json!({"secret": secret, "headers": headers, "body": d.body})
        })
        .collect();
    let file = std::env::temp_dir().join(format!("paygate-webhooks-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, serde_json::to_vec(&input).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/support/verify_webhooks.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "the reference verifier refused a delivery: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        deliveries.len().to_string()
    );
}
