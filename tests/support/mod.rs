//! Starts real `paygate` processes for whole-process tests and talks to them
//! over real HTTP. Each server gets its own temp directory (SQLite database,
//! generated secret) and a free port; it is killed when dropped.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub base: String,
    pub dir: PathBuf,
    pub admin_key: String,
    child: Option<Child>,
    port: u16,
    env: Vec<(String, String)>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("paygate-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Settings that keep tests quick: fast retries and sweeps.
pub fn fast_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("PAYGATE_RETRY_BASE_MS", "20"),
        ("PAYGATE_RETRY_MAX_MS", "200"),
        ("PAYGATE_SWEEP_INTERVAL_MS", "100"),
        ("PAYGATE_REDISPATCH_AFTER_MS", "1000"),
        ("PAYGATE_JOB_LEASE_MS", "3000"),
        ("PAYGATE_GATEWAY_TIMEOUT_MS", "2000"),
        ("RUST_LOG", "warn"),
        // The tests steer the simulators through _config without a key.
        ("PAYGATE_SANDBOX_OPEN_CONTROL", "true"),
    ]
}

impl Server {
    /// `paygate serve` with the given extra environment.
    pub fn serve(extra: &[(&str, &str)]) -> Server {
        let dir = temp_dir();
        let port = free_port();
        let mut env: Vec<(String, String)> = fast_env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in extra {
            env.retain(|(ek, _)| ek != k);
            env.push((k.to_string(), v.to_string()));
        }
        let mut s = Server {
            base: format!("http://127.0.0.1:{port}"),
            dir,
            admin_key: String::new(),
            child: None,
            port,
            env,
        };
        s.start();
        s
    }

    /// (Re)starts the process on the same port and database.
    pub fn start(&mut self) {
        let out = self.dir.join("stdout.log");
        let err = self.dir.join("stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_paygate"))
            .arg("serve")
            .current_dir(&self.dir)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env_remove("SECRET_KEY")
            .env("PAYGATE_LISTEN", format!("127.0.0.1:{}", self.port))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("start paygate");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&out) {
                if let Some(line) = text.lines().find(|l| l.contains("admin API key")) {
                    if let Some(key) = line.split_whitespace().find(|w| w.starts_with("pgk_")) {
                        self.admin_key = key.to_string();
                    }
                }
                if text.contains("listening on") && reachable(self.port) {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("paygate exited early ({status}): {}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "paygate did not start: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no graceful anything, as a crash would be.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "paygate did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!(
            "stdout:\n{}\nstderr:\n{}",
            read("stdout.log"),
            read("stderr.log")
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

fn reachable(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTP client that does not follow redirects (tests look at them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Polls `f` until it returns Some or the time runs out.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The admin key `serve` prints on first start (read from its output if
/// [`Server::start`] returned before that line was written).
pub async fn admin_key(s: &Server) -> String {
    if !s.admin_key.is_empty() {
        return s.admin_key.clone();
    }
    eventually("the admin API key", Duration::from_secs(10), || async {
        let out = std::fs::read_to_string(s.dir.join("stdout.log")).unwrap_or_default();
        out.lines()
            .filter(|l| l.contains("admin API key"))
            .flat_map(|l| l.split_whitespace())
            .find(|w| w.starts_with("pgk_"))
            .map(str::to_string)
    })
    .await
}

/// GET an admin route with the server's admin key; anything but `200` fails
/// the test with the body.
pub async fn admin_get(s: &Server, path: &str) -> serde_json::Value {
    let r = client()
        .get(s.url(path))
        .bearer_auth(admin_key(s).await)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(status, reqwest::StatusCode::OK, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// The payment's jobs in the ledger (`GET /v1/admin/jobs`).
pub async fn jobs_of(s: &Server, payment_id: &str) -> Vec<serde_json::Value> {
    admin_get(s, &format!("/v1/admin/jobs?payment_id={payment_id}")).await["jobs"]
        .as_array()
        .unwrap()
        .clone()
}

/// The payment's activity log (`GET /v1/payments/{id}/events`).
pub async fn events_of(s: &Server, payment_id: &str) -> Vec<serde_json::Value> {
    admin_get(s, &format!("/v1/payments/{payment_id}/events")).await["events"]
        .as_array()
        .unwrap()
        .clone()
}

/// The Prometheus exposition text of `/metrics`.
pub async fn metrics_text(s: &Server) -> String {
    metrics_text_at(&s.url("/metrics")).await
}

/// The Prometheus exposition text at `url` (a worker's own listener).
pub async fn metrics_text_at(url: &str) -> String {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of a Prometheus sample of `name` carrying these labels, if
/// present.
pub async fn metric(s: &Server, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample(&metrics_text(s).await, name, labels)
}

/// [`metric`] in the exposition text at `url`.
pub async fn metric_at(url: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample(&metrics_text_at(url).await, name, labels)
}

fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let sample = format!("{name}{{");
    text.lines()
        .filter(|l| l.starts_with(&sample))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Any `paygate` subcommand as a child process, killed when dropped.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    ready: String,
}

impl Proc {
    /// Starts `paygate <args>` and waits until its stdout shows `ready`.
    pub fn spawn(
        name: &str,
        args: &[&str],
        env: &[(String, String)],
        dir: &std::path::Path,
        ready: &str,
    ) -> Proc {
        let mut p = Proc {
            name: name.to_string(),
            child: None,
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env.to_vec(),
            log: dir.join(format!("{name}.log")),
            ready: ready.to_string(),
        };
        p.start();
        p
    }

    pub fn start(&mut self) {
        let log = std::fs::File::create(&self.log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_paygate"))
            .args(&self.args)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start paygate");
        self.child = Some(child);
        if self.ready.is_empty() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            if text.contains(&self.ready) {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("{} exited early ({status}):\n{text}", self.name);
            }
            assert!(
                Instant::now() < deadline,
                "{} did not start:\n{text}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop on SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis queue namespace (`PAYGATE_REDIS_QUEUE`) whose keys are deleted on
/// drop: the machine's Redis outlives the test. Declare it before the
/// processes that use it, so they are stopped first and none writes a key
/// back afterwards.
pub struct RedisNamespace {
    url: String,
    /// The `PAYGATE_REDIS_QUEUE` value to give the processes.
    pub name: String,
}

impl RedisNamespace {
    pub fn new(url: &str) -> RedisNamespace {
        RedisNamespace {
            url: url.to_string(),
            name: format!("paygate:test:{}", uuid::Uuid::new_v4().simple()),
        }
    }
}

impl Drop for RedisNamespace {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(r#"redis-cli -u "$1" --scan --pattern "$2:*" | xargs -r -n 100 redis-cli -u "$1" del >/dev/null 2>&1"#)
            .args(["sh", self.url.as_str(), self.name.as_str()])
            .status();
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        TempDir(temp_dir())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
