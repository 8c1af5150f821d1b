//! Configuration from environment variables (and a `.env` file, read by the
//! binary). Names from the seeds are kept (`PAYMENT_GATEWAY_URL`,
//! `PAYMENT_API_KEY`, `PAYMENT_REDIRECT_URL`, `SECRET_KEY`, ...); paygate's own
//! settings start with `PAYGATE_`. A bad value stops start-up with one line
//! naming the variable.

use crate::domain::{JobKind, RetryPolicies};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {var}: {problem}")]
pub struct ConfigError {
    pub var: &'static str,
    pub problem: String,
}

fn err(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// Which process is starting; it decides the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `paygate serve`: everything in one process, built-in simulators.
    Serve,
    /// `paygate api` (scaled).
    Api,
    /// `paygate worker` (scaled).
    Worker,
    /// `paygate migrate`, `paygate apikey`: database only.
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct MedogramSettings {
    pub gateway_url: String,
    pub api_key: String,
    pub test_mode: bool,
    pub page_suffix_get: bool,
    pub user_url: String,
    pub user_path: String,
    pub user_auth_header: String,
    pub user_auth_prefix: String,
}

/// Atmos (Uzbekistan) settings; the seed's variable names.
#[derive(Debug, Clone)]
pub struct AtmosSettings {
    /// `ATMOS_API_BASE`; the seed hard-coded https://partner.atmos.uz.
    pub api_base: String,
    /// `ATMOS_CHECKOUT_BASE`; by default the test or production checkout by `ATMOS_TEST_MODE`.
    pub checkout_base: String,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub store_id: String,
    pub terminal_id: Option<String>,
    /// `ATMOS_API_KEY`: the key Atmos signs its callbacks with.
    pub api_key: String,
    pub test_mode: bool,
    /// `ATMOS_SIGN_ALGORITHMS`: which hashes a callback `sign` may use (md5 by
    /// default; the sources disagree, see docs/gateways/atmos.md, 'Signature rule').
    pub sign_algorithms: Vec<String>,
    pub lang: String,
    /// `ATMOS_REDIRECT_URL`: where the payer returns after the checkout
    /// (`?order_id=` is added). Unset: the built-in order result page.
    pub redirect_url: Option<String>,
    /// Payments still processing this long are re-checked by the reconciler.
    pub reconcile_after: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub production: bool,
    pub listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    /// Public base URL of the API, used to build callback URLs for gateways.
    pub public_url: String,
    pub database_url: String,
    pub db_max_connections: u32,
    /// PostgreSQL connections kept apart for work a client is waiting on
    /// (`PAYGATE_DB_PRIORITY_CONNECTIONS`, docs/priority.md).
    pub db_priority_connections: u32,
    pub redis_url: Option<String>,
    /// Name of the Redis queue (`PAYGATE_REDIS_QUEUE`); deployments sharing a
    /// Redis keep apart by name.
    pub redis_queue: String,
    pub secret_key: Option<String>,
    pub secret_key_fallbacks: Vec<String>,
    /// Mount the gateway simulators on this server (`paygate serve` default).
    pub sandbox: bool,
    pub medogram: MedogramSettings,
    /// `None` when Atmos is not configured (orders with payment_type atmos are refused).
    pub atmos: Option<AtmosSettings>,
    /// `None` when Payme is not configured (and no simulator runs).
    pub payme: Option<crate::gateways::payme::settings::PaymeSettings>,
    /// `None` when Click is not configured (and no simulator runs).
    pub click: Option<crate::gateways::click::settings::ClickSettings>,
    pub payment_redirect_url: Option<String>,
    /// How long seed routes wait for the worker before answering 202.
    pub seed_wait: Duration,
    /// The longest `Prefer: wait=N` honoured on `/v1`.
    pub max_wait: Duration,
    pub worker_id: String,
    pub worker_concurrency: usize,
    /// `PAYGATE_API_RUNS_WAITED_JOBS`: the process a client waits on (`api`,
    /// `serve`) runs that client's payment's first jobs itself, claimed in
    /// the create, instead of queueing them (docs/priority.md, "The waited
    /// job runs where its client waits"). At most `worker_concurrency` at
    /// once; more go to the queue.
    pub api_runs_waited_jobs: bool,
    /// `PAYGATE_BACKGROUND_FOLLOW_UP_INSIDE`: background work (a payment
    /// nobody waits on) also runs its follow-up inside the same attempt, as
    /// waited work always does: the invoice inside the user fetch, one claim
    /// and one finish fewer per payment. Off by default (docs/priority.md,
    /// "The invoice runs inside the user fetch": under a burst it brings the
    /// payers' callbacks among the creates still coming in).
    pub background_follow_up_inside: bool,
    pub job_lease: Duration,
    pub sweep_interval: Duration,
    pub redispatch_after: Duration,
    /// How often the queue gauges are sampled (by one process at a time).
    pub sample_interval: Duration,
    pub gateway_timeout: Duration,
    pub retry: RetryPolicies,
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
    pub max_body_bytes: usize,
    /// Timeouts, limits, allowlists and input rules (security.rs).
    pub security: crate::security::SecuritySettings,
    /// How long a payment may wait for its payer (payment_ttl.rs).
    pub payment_ttl: crate::payment_ttl::PaymentTtl,
    /// Merchant notifications (webhooks/settings.rs).
    pub webhooks: crate::webhooks::WebhookSettings,
}

/// Reads variables through `get`, so tests need not touch the process environment.
pub struct Env<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    pub fn new(get: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Env { get }
    }
    fn text(&self, var: &str) -> Option<String> {
        (self.get)(var)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }
    fn parse<T: std::str::FromStr>(&self, var: &'static str, default: T) -> Result<T, ConfigError> {
        match self.text(var) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| err(var, format!("cannot parse {v:?}"))),
        }
    }
    fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.text(var).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(err(var, format!("expected true or false, got {v:?}"))),
        }
    }
    /// For sibling modules that read their own settings (security.rs).
    pub(crate) fn parse_var<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        self.parse(var, default)
    }
    pub(crate) fn text_var(&self, var: &str) -> Option<String> {
        self.text(var)
    }
    pub(crate) fn flag_var(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.flag(var, default)
    }
    fn millis(&self, var: &'static str, default_ms: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(self.parse(var, default_ms)?))
    }
    fn url(&self, var: &'static str) -> Result<Option<String>, ConfigError> {
        match self.text(var) {
            None => Ok(None),
            Some(v) => {
                let parsed = url::Url::parse(&v).map_err(|_| err(var, "not a URL"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(err(var, "must be an http:// or https:// URL"));
                }
                Ok(Some(v.trim_end_matches('/').to_string()))
            }
        }
    }
}

fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "paygate".into());
    // Unique per process: apalis-redis recovers orphaned jobs per worker name.
    let suffix: u32 = rand::random();
    format!("{host}-{}-{suffix:08x}", std::process::id())
}

fn load_atmos(
    env: &Env<'_>,
    sandbox: bool,
    public_url: &str,
) -> Result<Option<AtmosSettings>, ConfigError> {
    let key = env.text("ATMOS_CONSUMER_KEY");
    if key.is_none() && !sandbox {
        return Ok(None);
    }
    // With the built-in simulator, every credential defaults to the simulator's.
    let sandbox_base = format!("{public_url}/sandbox/atmos");
    let required = |var: &'static str, sandbox_default: &str| -> Result<String, ConfigError> {
        match env.text(var) {
            Some(v) => Ok(v),
            None if key.is_none() => Ok(sandbox_default.to_string()),
            None => Err(err(var, "required when ATMOS_CONSUMER_KEY is set")),
        }
    };
    let test_mode = env.flag("ATMOS_TEST_MODE", true)?;
    let using_sandbox = key.is_none();
    let api_base = match env.url("ATMOS_API_BASE")? {
        Some(u) => u,
        None if using_sandbox => sandbox_base.clone(),
        None => "https://partner.atmos.uz".into(),
    };
    let checkout_base = match env.url("ATMOS_CHECKOUT_BASE")? {
        Some(u) => u,
        None if using_sandbox => sandbox_base.clone(),
        None if test_mode => "https://test-checkout.pays.uz".into(),
        None => "https://checkout.pays.uz".into(),
    };
    let store_id = required("ATMOS_STORE_ID", "8157")?;
    if !store_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("ATMOS_STORE_ID", "must be digits"));
    }
    let sign_algorithms: Vec<String> = env
        .text("ATMOS_SIGN_ALGORITHMS")
        .unwrap_or_else(|| "md5".into())
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if sign_algorithms.is_empty()
        || sign_algorithms
            .iter()
            .any(|a| !["md5", "sha256", "sha1"].contains(&a.as_str()))
    {
        return Err(err(
            "ATMOS_SIGN_ALGORITHMS",
            "a comma-separated list of md5, sha256, sha1",
        ));
    }
    Ok(Some(AtmosSettings {
        api_base,
        checkout_base,
        consumer_key: key.clone().unwrap_or_else(|| "sandbox-consumer-key".into()),
        consumer_secret: required("ATMOS_CONSUMER_SECRET", "sandbox-consumer-secret")?,
        store_id,
        terminal_id: env.text("ATMOS_TERMINAL_ID"),
        api_key: required("ATMOS_API_KEY", "sandbox-atmos-api-key")?,
        test_mode,
        sign_algorithms,
        lang: env.text("ATMOS_LANG").unwrap_or_else(|| "ru".into()),
        redirect_url: env.url("ATMOS_REDIRECT_URL")?,
        reconcile_after: env.millis("PAYGATE_ATMOS_RECONCILE_AFTER_MS", 600_000)?,
    }))
}

impl Config {
    pub fn from_env(mode: Mode) -> Result<Config, ConfigError> {
        let get = |k: &str| std::env::var(k).ok();
        Self::load(mode, &Env::new(&get))
    }

    pub fn load(mode: Mode, env: &Env<'_>) -> Result<Config, ConfigError> {
        let production = match env.text("PAYGATE_ENV").as_deref() {
            None => mode == Mode::Api || mode == Mode::Worker,
            Some("production") => true,
            Some("development") => false,
            Some(other) => {
                return Err(err(
                    "PAYGATE_ENV",
                    format!("expected production or development, got {other:?}"),
                ))
            }
        };
        let listen: SocketAddr =
            env.parse("PAYGATE_LISTEN", "127.0.0.1:8080".parse().expect("literal"))?;
        let metrics_listen = match env.text("PAYGATE_METRICS_LISTEN") {
            None => None,
            Some(v) => Some(
                v.parse()
                    .map_err(|_| err("PAYGATE_METRICS_LISTEN", "expected HOST:PORT"))?,
            ),
        };
        let public_url = env
            .url("PAYGATE_PUBLIC_URL")?
            .unwrap_or_else(|| format!("http://{listen}"));
        let database_url = env
            .text("DATABASE_URL")
            .unwrap_or_else(|| "sqlite://paygate.db".into());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres:")
            || database_url.starts_with("postgresql:"))
        {
            return Err(err("DATABASE_URL", "expected sqlite://… or postgres://…"));
        }
        let redis_url = env.text("REDIS_URL");
        if let Some(r) = &redis_url {
            if !(r.starts_with("redis://") || r.starts_with("rediss://")) {
                return Err(err("REDIS_URL", "expected redis://…"));
            }
        }
        let secret_key = env.text("SECRET_KEY");
        if production && secret_key.is_none() && mode != Mode::Admin {
            return Err(err(
                "SECRET_KEY",
                "required in production (it encrypts payer data; every process must share it)",
            ));
        }
        let secret_key_fallbacks = env
            .text("SECRET_KEY_FALLBACKS")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();

        let sandbox = env.flag("PAYGATE_SANDBOX", mode == Mode::Serve)?;
        let gateway_url = match env.url("PAYMENT_GATEWAY_URL")? {
            Some(u) => u,
            None if sandbox => format!("{public_url}/sandbox/medogram"),
            None if mode == Mode::Admin || mode == Mode::Api => String::new(),
            None => {
                return Err(err(
                    "PAYMENT_GATEWAY_URL",
                    "required when the built-in sandbox is off",
                ))
            }
        };
        let api_key = match env.text("PAYMENT_API_KEY") {
            Some(k) => k,
            None if sandbox || mode == Mode::Admin || mode == Mode::Api => {
                "sandbox-medogram-api-key".into()
            }
            None => {
                return Err(err(
                    "PAYMENT_API_KEY",
                    "required when the built-in sandbox is off",
                ))
            }
        };
        let medogram = MedogramSettings {
            user_url: env
                .url("PAYGATE_USER_URL")?
                .unwrap_or_else(|| gateway_url.clone()),
            user_path: env
                .text("PAYGATE_USER_PATH")
                .unwrap_or_else(|| "/api/users/{identifier}/".into()),
            user_auth_header: env
                .text("PAYGATE_USER_AUTH_HEADER")
                .unwrap_or_else(|| "Authorization".into()),
            user_auth_prefix: (env.get)("PAYGATE_USER_AUTH_PREFIX")
                .unwrap_or_else(|| "Api-Key ".into()),
            test_mode: env.flag("PAYMENT_TEST_MODE", false)?,
            page_suffix_get: env.flag("PAYGATE_MEDOGRAM_PAGE_SUFFIX_GET", true)?,
            gateway_url,
            api_key,
        };
        if !medogram.user_path.contains("{identifier}") {
            return Err(err("PAYGATE_USER_PATH", "must contain {identifier}"));
        }
        let payment_redirect_url = env.url("PAYMENT_REDIRECT_URL")?;
        let atmos = load_atmos(env, sandbox, &public_url)?;
        // Payme and Click: their own sections (common/src/gateways/<name>/settings.rs).
        let payme = crate::gateways::payme::settings::PaymeSettings::from_lookup(
            env.get,
            sandbox,
            &public_url,
        )?;
        let click_sandbox = format!("{public_url}/sandbox/click");
        let click = crate::gateways::click::settings::ClickSettings::from_lookup(
            env.get,
            sandbox.then_some(click_sandbox.as_str()),
        )?;

        let mut retry = RetryPolicies::default();
        let base = env.text("PAYGATE_RETRY_BASE_MS");
        let cap = env.text("PAYGATE_RETRY_MAX_MS");
        let attempts = env.text("PAYGATE_RETRY_ATTEMPTS");
        for kind in JobKind::ALL {
            let p = retry.for_kind_mut(kind);
            if base.is_some() {
                p.base = env.millis("PAYGATE_RETRY_BASE_MS", 0)?;
            }
            if cap.is_some() {
                p.cap = env.millis("PAYGATE_RETRY_MAX_MS", 0)?;
            }
            if attempts.is_some() {
                p.max_attempts = env.parse("PAYGATE_RETRY_ATTEMPTS", 1u32)?;
            }
            if p.max_attempts == 0 {
                return Err(err("PAYGATE_RETRY_ATTEMPTS", "must be at least 1"));
            }
        }

        let worker_concurrency: usize = env.parse("PAYGATE_WORKER_CONCURRENCY", 64)?;
        if worker_concurrency == 0 || worker_concurrency > 4096 {
            return Err(err(
                "PAYGATE_WORKER_CONCURRENCY",
                "must be between 1 and 4096",
            ));
        }
        // The API runs a waited payment's user fetch and invoice only with
        // what the worker would use: the key that seals the payer's data and
        // the gateway's address (an API needs neither otherwise).
        let api_can_run_jobs = secret_key.is_some() && !medogram.gateway_url.is_empty();
        let api_runs_waited_jobs = match mode {
            Mode::Serve => env.flag("PAYGATE_API_RUNS_WAITED_JOBS", true)?,
            Mode::Api => {
                let on = env.flag("PAYGATE_API_RUNS_WAITED_JOBS", api_can_run_jobs)?;
                if on && !api_can_run_jobs {
                    return Err(err(
                        "PAYGATE_API_RUNS_WAITED_JOBS",
                        "the API runs a waited payment's first jobs itself only with \
                         SECRET_KEY and PAYMENT_GATEWAY_URL set, as the worker has them",
                    ));
                }
                on
            }
            _ => false,
        };
        let seed_wait = env.millis("PAYGATE_SEED_WAIT_MS", 3000)?;
        let max_wait = env.millis("PAYGATE_MAX_WAIT_MS", 30_000)?;
        let job_lease = env.millis("PAYGATE_JOB_LEASE_MS", 25_000)?;
        let gateway_timeout = env.millis("PAYGATE_GATEWAY_TIMEOUT_MS", 10_000)?;
        if gateway_timeout >= job_lease {
            return Err(err(
                "PAYGATE_GATEWAY_TIMEOUT_MS",
                "must be shorter than PAYGATE_JOB_LEASE_MS, or a slow call would outlive its lease",
            ));
        }
        let log_format = match env.text("PAYGATE_LOG_FORMAT").as_deref() {
            None => {
                if production {
                    LogFormat::Json
                } else {
                    LogFormat::Text
                }
            }
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(o) => {
                return Err(err(
                    "PAYGATE_LOG_FORMAT",
                    format!("expected text or json, got {o:?}"),
                ))
            }
        };
        Ok(Config {
            mode,
            production,
            listen,
            metrics_listen,
            public_url,
            database_url,
            db_max_connections: env.parse("PAYGATE_DB_MAX_CONNECTIONS", 16)?,
            db_priority_connections: env.parse("PAYGATE_DB_PRIORITY_CONNECTIONS", 2)?,
            redis_url,
            redis_queue: env
                .text("PAYGATE_REDIS_QUEUE")
                .unwrap_or_else(|| "paygate:jobs".into()),
            secret_key,
            secret_key_fallbacks,
            sandbox,
            medogram,
            atmos,
            payme,
            click,
            payment_redirect_url,
            seed_wait,
            max_wait,
            worker_id: env
                .text("PAYGATE_WORKER_ID")
                .unwrap_or_else(default_worker_id),
            worker_concurrency,
            api_runs_waited_jobs,
            background_follow_up_inside: env.flag("PAYGATE_BACKGROUND_FOLLOW_UP_INSIDE", false)?,
            job_lease,
            sweep_interval: env.millis("PAYGATE_SWEEP_INTERVAL_MS", 500)?,
            redispatch_after: env.millis("PAYGATE_REDISPATCH_AFTER_MS", 30_000)?,
            sample_interval: env.millis("PAYGATE_SAMPLE_INTERVAL_MS", 5_000)?,
            gateway_timeout,
            retry,
            shutdown_grace: env.millis("PAYGATE_SHUTDOWN_GRACE_MS", 20_000)?,
            log_format,
            max_body_bytes: env.parse("PAYGATE_MAX_BODY_BYTES", 64 * 1024)?,
            security: crate::security::load(env)?,
            payment_ttl: crate::payment_ttl::PaymentTtl::load(env)?,
            webhooks: crate::webhooks::settings::load(env, worker_concurrency)?,
        })
    }

    /// Where medogram sends the payer back after paying.
    pub fn crazyminer_callback_url(&self) -> String {
        format!("{}/crazyminer/payment/callback/", self.public_url)
    }

    /// How long a `provider` payment may stay `processing` before the
    /// reconciler verifies it again (`None`: not configured here).
    pub fn reconcile_after(&self, provider: crate::domain::Provider) -> Option<Duration> {
        use crate::domain::Provider;
        match provider {
            Provider::Medogram => None,
            Provider::Atmos => self.atmos.as_ref().map(|a| a.reconcile_after),
            Provider::Payme | Provider::Click => None,
        }
    }

    /// Where a shop gateway's checkout sends the payer back (`{order_id}` and
    /// the order's read token `{order_token}` are filled in):
    /// `ATMOS_REDIRECT_URL` (the seed's name; it serves every shop gateway) or
    /// the built-in order page.
    pub fn shop_return_url_template(&self) -> String {
        match self.atmos.as_ref().and_then(|a| a.redirect_url.clone()) {
            Some(url) => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}order_id={{order_id}}")
            }
            None => format!(
                "{}/api/orders/{{order_id}}/result/?token={{order_token}}",
                self.public_url
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(mode: Mode, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = move |k: &str| map.get(k).cloned();
        Config::load(mode, &Env::new(&get))
    }

    #[test]
    fn serve_needs_nothing() {
        let c = load(Mode::Serve, &[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://paygate.db");
        assert!(c.sandbox && !c.production);
        assert_eq!(
            c.medogram.gateway_url,
            "http://127.0.0.1:8080/sandbox/medogram"
        );
        assert_eq!(
            c.crazyminer_callback_url(),
            "http://127.0.0.1:8080/crazyminer/payment/callback/"
        );
    }

    #[test]
    fn production_processes_refuse_to_start_without_secret_key() {
        let e = load(
            Mode::Api,
            &[
                ("PAYMENT_GATEWAY_URL", "https://api.medogram.ir"),
                ("PAYMENT_API_KEY", "k"),
            ],
        )
        .unwrap_err();
        assert_eq!(e.var, "SECRET_KEY");
        assert!(e
            .to_string()
            .starts_with("invalid configuration: SECRET_KEY"));
        let e = load(Mode::Worker, &[("SECRET_KEY", "s")]).unwrap_err();
        assert_eq!(e.var, "PAYMENT_GATEWAY_URL");
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, val) in [
            ("PAYGATE_LISTEN", "nope"),
            ("DATABASE_URL", "mysql://x"),
            ("REDIS_URL", "http://x"),
            ("PAYMENT_GATEWAY_URL", "ftp://x"),
            ("PAYGATE_WORKER_CONCURRENCY", "0"),
            ("PAYGATE_SEED_WAIT_MS", "-1"),
            ("PAYMENT_TEST_MODE", "maybe"),
            ("PAYGATE_LOG_FORMAT", "xml"),
            ("PAYGATE_USER_PATH", "/users/"),
            ("PAYGATE_GATEWAY_TIMEOUT_MS", "60000"),
            ("PAYGATE_BACKGROUND_FOLLOW_UP_INSIDE", "sometimes"),
        ] {
            let e = load(Mode::Serve, &[(var, val)]).unwrap_err();
            assert_eq!(e.var, var, "{var}={val}");
        }
    }

    #[test]
    fn atmos_is_configured_by_the_seeds_variables() {
        let c = load(Mode::Serve, &[]).unwrap();
        let a = c.atmos.unwrap();
        assert_eq!(a.api_base, "http://127.0.0.1:8080/sandbox/atmos");
        assert_eq!(a.sign_algorithms, vec!["md5"]);
        let c = load(
            Mode::Serve,
            &[
                ("PAYGATE_SANDBOX", "false"),
                ("PAYMENT_GATEWAY_URL", "https://g.example"),
                ("PAYMENT_API_KEY", "k"),
            ],
        )
        .unwrap();
        assert!(c.atmos.is_none());
        let e = load(Mode::Serve, &[("ATMOS_CONSUMER_KEY", "ck")]).unwrap_err();
        assert_eq!(e.var, "ATMOS_STORE_ID");
        let c = load(
            Mode::Serve,
            &[
                ("ATMOS_CONSUMER_KEY", "ck"),
                ("ATMOS_CONSUMER_SECRET", "cs"),
                ("ATMOS_STORE_ID", "1234"),
                ("ATMOS_API_KEY", "ak"),
                ("ATMOS_TEST_MODE", "false"),
                ("ATMOS_SIGN_ALGORITHMS", "md5,sha256"),
            ],
        )
        .unwrap();
        let a = c.atmos.unwrap();
        assert_eq!(a.api_base, "https://partner.atmos.uz");
        assert_eq!(a.checkout_base, "https://checkout.pays.uz");
        assert_eq!(a.sign_algorithms, vec!["md5", "sha256"]);
        let e = load(Mode::Serve, &[("ATMOS_SIGN_ALGORITHMS", "crc32")]).unwrap_err();
        assert_eq!(e.var, "ATMOS_SIGN_ALGORITHMS");
    }

    #[test]
    fn retry_overrides_apply_to_every_kind() {
        let c = load(
            Mode::Serve,
            &[
                ("PAYGATE_RETRY_BASE_MS", "10"),
                ("PAYGATE_RETRY_ATTEMPTS", "3"),
            ],
        )
        .unwrap();
        for k in JobKind::ALL {
            assert_eq!(c.retry.for_kind(k).base, Duration::from_millis(10));
            assert_eq!(c.retry.for_kind(k).max_attempts, 3);
        }
    }
}
