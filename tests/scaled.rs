//! Scaled mode, proven the way production breaks it: real `paygate api` ×2,
//! `paygate worker` ×3 and `paygate sandbox` (autopay, latency, injected 5xx)
//! on PostgreSQL and Redis, hundreds of payments through the full CrazyMiner
//! flow, and one fault at a time. Every test ends with: every payment terminal
//! and correct, no gateway side effect twice, no job left unfinished.
//!
//! The main flow uses the machine's PostgreSQL and Redis (own database, own
//! queue name). Tests that restart a server start a private one, so nothing
//! else on the machine is disturbed.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{client, free_port, metric_at, Proc, RedisNamespace, Server, TempDir};

/// One cluster at a time: each is five processes and dozens of database
/// connections, and the machine has two cores and one PostgreSQL.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn pg_base() -> String {
    std::env::var("PAYGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn redis_base() -> String {
    std::env::var("PAYGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-tAc", sql])
        .output()
        .expect("psql is required for the scaled tests");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A database of its own on a PostgreSQL server, dropped afterwards.
struct Database {
    admin_url: String,
    name: String,
    pub url: String,
}

impl Database {
    fn create(admin_url: &str) -> Database {
        let name = format!("paygate_scaled_{}", uuid::Uuid::new_v4().simple());
        psql(admin_url, &format!("CREATE DATABASE {name}"));
        let url = match admin_url.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("bad PostgreSQL URL {admin_url}"),
        };
        Database {
            admin_url: admin_url.to_string(),
            name,
            url,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin_url,
                "-tAc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

/// A private Redis server that a test may kill and restart empty.
struct PrivateRedis {
    port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    fn start() -> PrivateRedis {
        let mut r = PrivateRedis {
            port: free_port(),
            child: None,
        };
        r.restart();
        r
    }
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
    fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is required for the scaled tests");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "private redis did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private PostgreSQL cluster that a test may stop hard and start again.
struct PrivatePostgres {
    dir: std::path::PathBuf,
    port: u16,
    bin: std::path::PathBuf,
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries are required (/usr/lib/postgresql)")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())
            .expect("initdb");
        let dir =
            std::env::temp_dir().join(format!("paygate-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        // PostgreSQL refuses to run as root: the cluster belongs to `postgres`.
        let as_pg = |args: &[&str]| {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).args(args);
            cmd
        };
        assert!(Command::new("chown")
            .args(["postgres:postgres", dir.to_str().unwrap()])
            .status()
            .unwrap()
            .success());
        let data = dir.join("data");
        let out = as_pg(&[
            bin.join("initdb").to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
        ])
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = PrivatePostgres {
            dir,
            port: free_port(),
            bin,
        };
        pg.ctl("start");
        pg
    }
    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
    /// The server log's last lines (crashes, recovery).
    fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("pg.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
    fn ctl(&self, action: &str) {
        let data = self.dir.join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let mut args = vec![
            self.bin.join("pg_ctl").to_str().unwrap().to_string(),
            "-D".into(),
            data.to_str().unwrap().into(),
            "-w".into(),
        ];
        match action {
            "start" => args.extend([
                "-o".into(),
                opts,
                "-l".into(),
                self.dir.join("pg.log").to_str().unwrap().into(),
                "start".into(),
            ]),
            // Immediate: no clean shutdown, as a crash or a failover would be.
            _ => args.extend(["-m".into(), "immediate".into(), "stop".into()]),
        }
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.ctl("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// api ×2, worker ×3 and the sandbox on one database and one Redis.
struct Cluster {
    dir: TempDir,
    pub apis: Vec<Proc>,
    pub workers: Vec<Proc>,
    pub sandbox: Proc,
    pub api_urls: Vec<String>,
    pub sandbox_url: String,
    pub admin_key: String,
    /// Each first-started worker's `/metrics` (a restarted one has none).
    pub worker_metrics: Vec<String>,
    env: Vec<(String, String)>,
    /// The machine's Redis outlives the test: the cluster's queue keys go with
    /// it. Held only to be dropped.
    _queue: RedisNamespace,
}

impl Drop for Cluster {
    /// Processes first, so none writes a queue key back after `_queue` (the
    /// last field, dropped after this) deletes them.
    fn drop(&mut self) {
        self.apis.clear();
        self.workers.clear();
    }
}

impl Cluster {
    fn start(database_url: &str, redis_url: &str, sandbox_env: &[(&str, &str)]) -> Cluster {
        Self::start_with(database_url, redis_url, sandbox_env, &[], &[])
    }

    /// [`Cluster::start`] with settings of the API processes' own and of the
    /// workers' own.
    fn start_with(
        database_url: &str,
        redis_url: &str,
        sandbox_env: &[(&str, &str)],
        api_env: &[(&str, &str)],
        worker_env: &[(&str, &str)],
    ) -> Cluster {
        let dir = TempDir::new();
        let queue = RedisNamespace::new(redis_url);
        let sandbox_port = free_port();
        let sandbox_url = format!("http://127.0.0.1:{sandbox_port}");
        let api_ports = [free_port(), free_port()];
        let api_urls: Vec<String> = api_ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let mut env: Vec<(String, String)> = [
            ("DATABASE_URL", database_url.to_string()),
            ("REDIS_URL", redis_url.to_string()),
            ("PAYGATE_REDIS_QUEUE", queue.name.clone()),
            ("SECRET_KEY", "scaled-test-secret".into()),
            (
                "PAYMENT_GATEWAY_URL",
                format!("{sandbox_url}/sandbox/medogram"),
            ),
            ("PAYMENT_API_KEY", "sandbox-medogram-api-key".into()),
            ("PAYGATE_PUBLIC_URL", api_urls[0].clone()),
            ("PAYGATE_RETRY_BASE_MS", "50".into()),
            ("PAYGATE_RETRY_MAX_MS", "1000".into()),
            ("PAYGATE_RETRY_ATTEMPTS", "12".into()),
            ("PAYGATE_JOB_LEASE_MS", "5000".into()),
            ("PAYGATE_GATEWAY_TIMEOUT_MS", "2000".into()),
            ("PAYGATE_SWEEP_INTERVAL_MS", "200".into()),
            ("PAYGATE_REDISPATCH_AFTER_MS", "3000".into()),
            ("PAYGATE_SHUTDOWN_GRACE_MS", "10000".into()),
            ("PAYGATE_WORKER_CONCURRENCY", "32".into()),
            ("PAYGATE_DB_MAX_CONNECTIONS", "10".into()),
            ("RUST_LOG", "warn".into()),
            // Hundreds of creates a second from one address, and _stats without a key.
            ("PAYGATE_RATE_LIMIT_PER_SEC", "0".into()),
            ("PAYGATE_SANDBOX_OPEN_CONTROL", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut sb_env = env.clone();
        sb_env.push(("PAYGATE_LISTEN".into(), format!("127.0.0.1:{sandbox_port}")));
        // Each payer's return and its answer, for a failure's report.
        sb_env.push(("RUST_LOG".into(), "warn,paygate_sandbox=info".into()));
        for (k, v) in sandbox_env {
            sb_env.push((k.to_string(), v.to_string()));
        }
        let sandbox = Proc::spawn("sandbox", &["sandbox"], &sb_env, &dir.0, "listening on");
        let migrate = Command::new(env!("CARGO_BIN_EXE_paygate"))
            .arg("migrate")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        assert!(
            migrate.status.success(),
            "migrate: {}",
            String::from_utf8_lossy(&migrate.stderr)
        );
        let key = Command::new(env!("CARGO_BIN_EXE_paygate"))
            .args(["apikey", "create", "--name", "scaled-test", "--admin"])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        assert!(key.status.success());
        let admin_key = String::from_utf8_lossy(&key.stdout).trim().to_string();
        let apis = api_ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut e = env.clone();
                e.push(("PAYGATE_LISTEN".into(), format!("127.0.0.1:{p}")));
                e.extend(api_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                Proc::spawn(&format!("api{i}"), &["api"], &e, &dir.0, "listening on")
            })
            .collect();
        let worker_ports = [free_port(), free_port(), free_port()];
        let worker_metrics = worker_ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}/metrics"))
            .collect();
        env.extend(
            worker_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let workers = worker_ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut e = env.clone();
                e.push(("PAYGATE_METRICS_LISTEN".into(), format!("127.0.0.1:{p}")));
                Proc::spawn(&format!("worker{i}"), &["worker"], &e, &dir.0, "started")
            })
            .collect();
        env.push(("PAYGATE_METRICS_LISTEN".into(), "127.0.0.1:0".into()));
        Cluster {
            dir,
            apis,
            workers,
            sandbox,
            api_urls,
            sandbox_url,
            admin_key,
            worker_metrics,
            env,
            _queue: queue,
        }
    }

    fn restart_worker(&mut self, i: usize) {
        self.workers[i].kill();
        let mut e = self.env.clone();
        e.retain(|(k, _)| k != "PAYGATE_METRICS_LISTEN");
        self.workers[i] = Proc::spawn(
            &format!("worker{i}b"),
            &["worker"],
            &e,
            &self.dir.0,
            "started",
        );
    }

    fn logs(&self) -> String {
        self.logs_about(&[])
    }

    /// Each process's last lines, and before them its lines that mention
    /// any of `needles` (at most 40 a process).
    fn logs_about(&self, needles: &[String]) -> String {
        let mut out = String::new();
        for p in self
            .apis
            .iter()
            .chain(self.workers.iter())
            .chain(std::iter::once(&self.sandbox))
        {
            let log = p.log();
            let about: Vec<&str> = log
                .lines()
                .filter(|l| needles.iter().any(|n| l.contains(n.as_str())))
                .take(40)
                .collect();
            if !about.is_empty() {
                out.push_str(&format!("--- {} (about {needles:?})\n", p.name));
                out.push_str(&about.join("\n"));
                out.push('\n');
            }
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            out.push_str(&format!(
                "--- {}\n{}\n",
                p.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        out
    }
}

/// Creates `n` payments through /v1 on the given APIs, `concurrency` at a time.
/// Returns the ids of the ones that were acknowledged (2xx).
async fn create_payments(api_urls: &[String], n: usize, concurrency: usize) -> Vec<String> {
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    for i in 0..n {
        let url = format!("{}/v1/payments", api_urls[i % api_urls.len()]);
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            let body = json!({"amount": 100000 + (i as i64 % 7) * 1000, "user_identifier": format!("0912{:07}", i)});
            for _ in 0..3 {
                match client().post(&url).json(&body).send().await {
                    Ok(r) if r.status().is_success() => {
                        let v: Value = r.json().await.unwrap();
                        return Some(v["id"].as_str().unwrap().to_string());
                    }
                    Ok(r) => {
                        // Only an honest "not stored" answer is allowed when it fails.
                        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
                        let v: Value = r.json().await.unwrap();
                        assert_eq!(v["error"]["code"], "service_unavailable");
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            None
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        if let Some(id) = t.await.unwrap() {
            ids.push(id);
        }
    }
    ids
}

async fn count_with_status(api: &str, key: &str, status: &str) -> Option<i64> {
    let r = client()
        .get(format!(
            "{api}/crazyminer/payment/list/?status={status}&page_size=1"
        ))
        .bearer_auth(key)
        .send()
        .await
        .ok()?;
    let v: Value = r.json().await.ok()?;
    v["count"].as_i64()
}

/// What a failed run needs to be understood: every payment not completed,
/// with its events and its jobs; and what to look for in the logs (its id and
/// its invoice's `id_get`).
async fn unfinished_payments(api: &str, key: &str, ids: &[String]) -> (String, Vec<String>) {
    let get = |path: String| async move {
        match client()
            .get(format!("{api}{path}"))
            .bearer_auth(key)
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_else(|e| e.to_string()),
            Err(e) => e.to_string(),
        }
    };
    let mut out = String::new();
    let mut needles = Vec::new();
    for id in ids {
        let payment = get(format!("/v1/payments/{id}")).await;
        if payment.contains("\"completed\"") {
            continue;
        }
        needles.push(id.clone());
        if let Some(id_get) = payment
            .split("gateway-")
            .nth(1)
            .and_then(|rest| rest.split('-').next())
        {
            needles.push(id_get.to_string());
        }
        out.push_str(&format!(
            "--- payment {id}\n{payment}\nevents: {}\njobs: {}\n",
            get(format!("/v1/payments/{id}/events")).await,
            get(format!("/v1/admin/jobs?payment_id={id}")).await,
        ));
    }
    (out, needles)
}

/// The gateway calls stored about `needles` (payment ids, invoice ids).
fn inbound_about(db: &str, needles: &[String]) -> String {
    if needles.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = needles
        .iter()
        .filter(|n| n.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        .map(|n| format!("'{n}'"))
        .chain(std::iter::once("''".to_string()))
        .collect();
    let prefixes: Vec<String> = needles
        .iter()
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
        .map(|n| format!("dedupe_key LIKE '{n}:%'"))
        .chain(std::iter::once("false".to_string()))
        .collect();
    let sql = format!(
        "SELECT dedupe_key, payment_id, outcome, received_at FROM inbound_messages \
         WHERE payment_id IN ({}) OR {}",
        quoted.join(","),
        prefixes.join(" OR ")
    );
    // Not `psql()`: this runs while a failure is being reported, and a
    // database that does not answer must not hide that failure.
    match Command::new("psql").args([db, "-tAc", &sql]).output() {
        Ok(out) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => format!("psql: {e}"),
    }
}

/// Waits until every payment is terminal, then checks they all completed,
/// that the gateway saw one invoice and one verification per payment, and
/// that the ledger holds no unfinished job.
async fn assert_all_completed(
    api: &str,
    sandbox: &str,
    key: &str,
    ids: &[String],
    timeout: Duration,
    logs: impl Fn(&[String]) -> String,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let completed = count_with_status(api, key, "completed").await.unwrap_or(-1);
        let failed = count_with_status(api, key, "failed").await.unwrap_or(-1);
        if completed == ids.len() as i64 {
            break;
        }
        assert!(failed <= 0, "{failed} payments failed\n{}", logs(&[]));
        if Instant::now() >= deadline {
            let (report, needles) = unfinished_payments(api, key, ids).await;
            panic!(
                "only {completed}/{} completed in time\n{report}\n{}",
                ids.len(),
                logs(&needles)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let stats: Value = client()
        .get(format!("{sandbox}/sandbox/medogram/_stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let invoices = stats["invoices_by_factor"].as_object().unwrap();
    for id in ids {
        assert_eq!(
            invoices.get(id).and_then(|v| v.as_u64()),
            Some(1),
            "one invoice for {id}"
        );
    }
    let verifies = stats["verifies_by_trans"].as_object().unwrap();
    assert_eq!(
        verifies.len(),
        ids.len(),
        "one verified transaction per payment"
    );
    assert!(
        verifies.values().all(|v| v.as_u64() == Some(1)),
        "no transaction verified twice"
    );
    // Jobs settle a moment after the payment does (the last commit is the job's).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut unfinished = 0;
        for status in ["queued", "running"] {
            let v: Value = client()
                .get(format!("{api}/v1/admin/jobs?status={status}&limit=1000"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            unfinished += v["jobs"].as_array().map(|a| a.len()).unwrap_or(0);
        }
        if unfinished == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unfinished} jobs left unfinished\n{}",
            logs(&[])
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const SANDBOX_FAULTS: &[(&str, &str)] = &[
    ("PAYGATE_SANDBOX_MEDOGRAM_AUTOPAY", "true"),
    ("PAYGATE_SANDBOX_MEDOGRAM_AUTOPAY_DELAY_MS", "20"),
    ("PAYGATE_SANDBOX_MEDOGRAM_LATENCY_MS", "10"),
    ("PAYGATE_SANDBOX_MEDOGRAM_ERROR_RATE", "0.03"),
];

/// Creates `n` payments through both APIs while worker 0 is killed (-9)
/// `after` into it, in the middle of its jobs (their leases expire and
/// another worker takes them over), restarts it, and checks every payment
/// completed once.
async fn survive_a_worker_killed(c: &mut Cluster, n: usize, after: Duration) {
    let apis = c.api_urls.clone();
    let creating = tokio::spawn(async move { create_payments(&apis, n, 32).await });
    tokio::time::sleep(after).await;
    c.workers[0].kill();
    let ids = creating.await.unwrap();
    assert_eq!(ids.len(), n, "every create acknowledged\n{}", c.logs());
    c.restart_worker(0);
    let logs = |needles: &[String]| c.logs_about(needles);
    assert_all_completed(
        &c.api_urls[1],
        &c.sandbox_url,
        &c.admin_key,
        &ids,
        Duration::from_secs(120),
        logs,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_payments_survive_a_worker_killed_mid_flight() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let db = Database::create(&pg_base());
    let mut c = Cluster::start(&db.url, &redis_base(), SANDBOX_FAULTS);
    survive_a_worker_killed(&mut c, 500, Duration::from_millis(1500)).await;

    // Graceful stop: every process exits 0 on SIGTERM.
    for p in c.workers.iter_mut().chain(c.apis.iter_mut()) {
        let status = p.terminate();
        assert!(
            status.success(),
            "{} exited with {status}:\n{}",
            p.name,
            p.log()
        );
    }
}

/// With `PAYGATE_BACKGROUND_FOLLOW_UP_INSIDE` on the workers, payments nobody
/// waits on run their invoice inside the user fetch, and a worker killed in
/// the middle of such attempts still loses nothing and invoices and verifies
/// each payment once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn background_invoices_inside_the_user_fetch_survive_a_worker_killed() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let db = Database::create(&pg_base());
    let mut c = Cluster::start_with(
        &db.url,
        &redis_base(),
        SANDBOX_FAULTS,
        &[],
        &[("PAYGATE_BACKGROUND_FOLLOW_UP_INSIDE", "true")],
    );
    survive_a_worker_killed(&mut c, 200, Duration::from_millis(700)).await;
    let mut inside = 0.0;
    for url in &c.worker_metrics[1..] {
        let labels = [("kind", "create_invoice")];
        inside += metric_at(url, "paygate_jobs_run_inside_total", &labels)
            .await
            .unwrap_or(0.0);
    }
    assert!(inside > 0.0, "the surviving workers ran invoices inside");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_restarted_empty_loses_nothing() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let db = Database::create(&pg_base());
    let mut redis = PrivateRedis::start();
    // A slow gateway keeps jobs queued in Redis when it dies.
    let mut faults = SANDBOX_FAULTS.to_vec();
    faults.push(("PAYGATE_SANDBOX_MEDOGRAM_LATENCY_MS", "150"));
    let c = Cluster::start(&db.url, &redis.url(), &faults);
    let ids = create_payments(&c.api_urls, 200, 50).await;
    assert_eq!(ids.len(), 200);
    redis.restart(); // empty: this Redis keeps nothing on disk
    let logs = |needles: &[String]| c.logs_about(needles);
    assert_all_completed(
        &c.api_urls[0],
        &c.sandbox_url,
        &c.admin_key,
        &ids,
        Duration::from_secs(120),
        logs,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restart_gives_honest_errors_and_then_recovers() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let pg = PrivatePostgres::start();
    psql(&pg.url("postgres"), "CREATE DATABASE paygate");
    let c = Cluster::start(&pg.url("paygate"), &redis_base(), SANDBOX_FAULTS);
    let first = create_payments(&c.api_urls, 100, 20).await;
    assert_eq!(first.len(), 100);
    pg.ctl("stop");
    // While the database is down the API never claims success.
    let r = client()
        .post(format!("{}/v1/payments", c.api_urls[0]))
        .json(&json!({"amount": 100000, "user_identifier": "09123456789"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "service_unavailable");
    let ready = client()
        .get(format!("{}/readyz", c.api_urls[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.ctl("start");
    let second = create_payments(&c.api_urls, 100, 20).await;
    assert_eq!(second.len(), 100, "{}", c.logs());
    let ids: Vec<String> = first.into_iter().chain(second).collect();
    let db = pg.url("paygate");
    let logs = |needles: &[String]| {
        format!(
            "{}\n--- inbound messages about {needles:?}\n{}\n--- pg.log\n{}",
            c.logs_about(needles),
            inbound_about(&db, needles),
            pg.log_tail(40)
        )
    };
    assert_all_completed(
        &c.api_urls[0],
        &c.sandbox_url,
        &c.admin_key,
        &ids,
        Duration::from_secs(120),
        logs,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_of_duplicate_callbacks_verifies_once() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let db = Database::create(&pg_base());
    // No autopay: the test plays the payer and then the storm.
    let c = Cluster::start(&db.url, &redis_base(), &[]);
    let mut rounds = Vec::new();
    for i in 0..10 {
        let r: Value = client()
            .post(format!("{}/v1/payments", c.api_urls[0]))
            .header("prefer", "wait=10")
            .json(&json!({"amount": 100000, "user_identifier": format!("0912000{:04}", i)}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = r["id"].as_str().unwrap().to_string();
        let url = r["payment_url"].as_str().expect("payment url").to_string();
        let id_get = url
            .rsplit("gateway-")
            .next()
            .unwrap()
            .trim_end_matches("-get")
            .to_string();
        let back = client()
            .post(format!(
                "{}/sandbox/medogram/payment/gateway-{id_get}/pay",
                c.sandbox_url
            ))
            .send()
            .await
            .unwrap();
        let location = back.headers()["location"].to_str().unwrap().to_string();
        let query = location.split_once('?').unwrap().1.to_string();
        rounds.push((id, query));
    }
    let mut storm = Vec::new();
    for (_, query) in &rounds {
        for k in 0..20 {
            let url = format!("{}/crazyminer/payment/callback/?{query}", c.api_urls[k % 2]);
            storm.push(tokio::spawn(async move {
                client().get(url).send().await.unwrap().status()
            }));
        }
    }
    for s in storm {
        assert_eq!(s.await.unwrap(), StatusCode::SEE_OTHER);
    }
    let ids: Vec<String> = rounds.into_iter().map(|(id, _)| id).collect();
    let logs = |needles: &[String]| c.logs_about(needles);
    assert_all_completed(
        &c.api_urls[1],
        &c.sandbox_url,
        &c.admin_key,
        &ids,
        Duration::from_secs(60),
        logs,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_flow_in_embedded_mode() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let s = Server::serve(&[
        ("PAYGATE_SANDBOX_MEDOGRAM_AUTOPAY", "true"),
        ("PAYGATE_SANDBOX_MEDOGRAM_AUTOPAY_DELAY_MS", "20"),
        ("PAYGATE_SANDBOX_MEDOGRAM_LATENCY_MS", "10"),
        ("PAYGATE_SANDBOX_MEDOGRAM_ERROR_RATE", "0.03"),
        ("PAYGATE_RETRY_ATTEMPTS", "12"),
        // 500 creates as fast as they go, from one address.
        ("PAYGATE_RATE_LIMIT_PER_SEC", "0"),
    ]);
    let ids = create_payments(std::slice::from_ref(&s.base), 500, 32).await;
    assert_eq!(ids.len(), 500);
    let logs = |_: &[String]| s.logs();
    assert_all_completed(
        &s.base,
        &s.base,
        &s.admin_key,
        &ids,
        Duration::from_secs(120),
        logs,
    )
    .await;
}

/// The seed route's bounded wait, answered across processes: a worker's
/// commit is announced over Redis and wakes the waiting request in the API
/// process (`paygate_waiter_wakeups_total` counts it), and again after Redis
/// restarts (the subscriber reconnects on its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_seed_route_is_woken_across_processes() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let db = Database::create(&pg_base());
    let mut redis = PrivateRedis::start();
    // The workers run the waited jobs here, so their commits must wake the
    // API's waiter over Redis.
    let c = Cluster::start_with(
        &db.url,
        &redis.url(),
        &[],
        &[("PAYGATE_API_RUNS_WAITED_JOBS", "false")],
        &[],
    );
    let api = c.api_urls[0].clone();
    let seed_create = |i: u32| {
        let url = format!("{api}/crazyminer/payment/create/");
        async move {
            let r = client()
                .post(url)
                .json(&json!({"amount": 100000, "user_identifier": format!("0912{i:07}")}))
                .send()
                .await;
            match r {
                Ok(r) => (r.status(), r.json::<Value>().await.unwrap_or(Value::Null)),
                Err(_) => (StatusCode::BAD_GATEWAY, Value::Null),
            }
        }
    };
    let wakeups = || async {
        let m = client()
            .get(format!("{}/metrics", c.api_urls[0]))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        m.lines()
            .find_map(|l| l.strip_prefix("paygate_waiter_wakeups_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };

    let (status, v) = seed_create(1).await;
    assert_eq!(status, StatusCode::CREATED, "{v}\n{}", c.logs());
    assert!(v["payment_url"].is_string(), "{v}");
    let before = wakeups().await;
    assert!(before >= 1.0, "the wait was not woken\n{}", c.logs());

    redis.restart();
    // Once the queue and the subscription are back, creates are woken again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut i = 2;
    loop {
        let (status, v) = seed_create(i).await;
        i += 1;
        if status == StatusCode::CREATED && v["payment_url"].is_string() && wakeups().await > before
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no woken create after the Redis restart: {status} {v}\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// With `SECRET_KEY` and the gateway's address, the API runs a waited
/// payment's first jobs itself: the seed route answers `201` with the URL
/// while no worker runs at all, and a payment nobody waits for stays queued
/// for the workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_api_runs_a_waited_payments_first_jobs_itself() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let db = Database::create(&pg_base());
    let redis = PrivateRedis::start();
    let mut c = Cluster::start(&db.url, &redis.url(), &[]);
    c.workers.clear();
    let api = c.api_urls[0].clone();
    for i in 0..5 {
        let r = client()
            .post(format!("{api}/crazyminer/payment/create/"))
            .json(&json!({"amount": 100000, "user_identifier": format!("0913{i:07}")}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{v}\n{}", c.logs());
        assert!(
            v["payment_url"]
                .as_str()
                .is_some_and(|u| u.starts_with(&c.sandbox_url)),
            "{v}"
        );
    }
    let metrics = client()
        .get(format!("{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("paygate_waited_first_jobs_total{")
                && l.contains("runs_in=\"this_process\"")
                && l.ends_with(" 5")),
        "{metrics}"
    );
    // Nobody waits for a /v1 create without `Prefer: wait`: its jobs are the
    // workers', and there are none.
    let r = client()
        .post(format!("{api}/v1/payments"))
        .json(&json!({"amount": 100000, "user_identifier": "09130000099"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let v: Value = r.json().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p: Value = client()
        .get(format!("{api}/v1/payments/{}", v["id"].as_str().unwrap()))
        .header("authorization", format!("Bearer {}", c.admin_key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(p["payment_url"].is_null(), "{p}");
}
