//! The store contract: one set of test bodies, run against SQLite and PostgreSQL.
//!
//! Every contract is an `async fn(Store)` in [`contracts`]; the
//! `contract_tests!` macro at the bottom instantiates it twice, as
//! `sqlite_<name>` (a fresh database file in its own temp dir) and
//! `postgres_<name>` (a fresh `paygate_test_<hex>` database created on the
//! server named by `PAYGATE_TEST_POSTGRES_URL`, dropped afterwards even when the
//! body panics). PostgreSQL is required: if it cannot be reached the postgres
//! tests fail, they never skip.

use futures::FutureExt;
use paygate_common::store::{Store, StoreOptions};
use sqlx::Connection;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::Duration;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn store_options() -> StoreOptions {
    StoreOptions {
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
        ..StoreOptions::default()
    }
}

/// A temp directory removed on drop (also while unwinding).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "paygate-store-contract-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `body` against a fresh, migrated SQLite database file.
async fn run_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.0.join("paygate.db").display());
    let mut opened: Option<Store> = None;
    let outcome = AssertUnwindSafe(async {
        let store = Store::connect(&url, &store_options())
            .await
            .unwrap_or_else(|e| panic!("open SQLite at {url}: {e}"));
        opened = Some(store.clone());
        store.migrate().await.expect("migrate SQLite");
        body(store).await;
    })
    .catch_unwind()
    .await;
    if let Some(store) = opened {
        store.close().await;
    }
    drop(dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn postgres_base_url() -> String {
    std::env::var("PAYGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into())
}

async fn postgres_admin(base: &str) -> sqlx::PgConnection {
    match tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(base)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "PostgreSQL is required for the contract tests: cannot connect to {base}: {e} \
             (set PAYGATE_TEST_POSTGRES_URL to a server where this user may CREATE DATABASE)"
        ),
        Err(_) => panic!(
            "PostgreSQL is required for the contract tests: connecting to {base} timed out \
             (set PAYGATE_TEST_POSTGRES_URL to a reachable server)"
        ),
    }
}

/// Runs `body` against a fresh, migrated PostgreSQL database, then drops it
/// whatever the body did.
async fn run_postgres<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let base = postgres_base_url();
    let mut admin = postgres_admin(&base).await;
    let name = format!("paygate_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is required for the contract tests: CREATE DATABASE {name}: {e}")
        });
    let mut url = url::Url::parse(&base).expect("PAYGATE_TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    let url = url.to_string();

    let mut opened: Option<Store> = None;
    let outcome = AssertUnwindSafe(async {
        let store = Store::connect(&url, &store_options())
            .await
            .unwrap_or_else(|e| panic!("open PostgreSQL database {name}: {e}"));
        opened = Some(store.clone());
        store.migrate().await.expect("migrate PostgreSQL");
        body(store).await;
    })
    .catch_unwind()
    .await;
    if let Some(store) = opened {
        store.close().await;
    }
    let dropped = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    let _ = admin.close().await;
    match (outcome, dropped) {
        (Err(panic), dropped) => {
            if let Err(e) = dropped {
                eprintln!("could not drop test database {name}: {e}");
            }
            std::panic::resume_unwind(panic)
        }
        (Ok(()), Err(e)) => panic!("could not drop test database {name}: {e}"),
        (Ok(()), Ok(_)) => {}
    }
}

/// The test bodies, each written once for both databases.
mod contracts {
    use paygate_common::domain::{
        Amount, Currency, Description, EventKind, JobKind, JobMessage, JobStatus, NewEvent,
        Payment, PaymentChange, PaymentId, PaymentStatus, Provider,
    };
    use paygate_common::domain::{JobPayload, NewJob, RetryPolicies, VerifyArgs};
    use paygate_common::store::{
        ClaimedJob, CreateOutcome, Finished, InboundOutcome, JobFinish, JobRecord, JobResult,
        NewInbound, NewPayment, NextClaim, PaymentFilter, Store, StoreError,
    };
    use serde_json::json;
    use std::collections::BTreeSet;
    use std::time::Duration;
    use uuid::Uuid;

    const PERSIAN: &str = "خرید اشتراک ماهانه\u{200c}ی کرایزی‌ماینر — ۱۲۳";
    const LONG_LEASE: i64 = 60_000;

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    async fn sleep_ms(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    fn new_payment(provider: Provider, merchant_ref: &str, minor: i64) -> NewPayment {
        NewPayment {
            id: PaymentId::new(),
            provider,
            merchant_ref: merchant_ref.to_string(),
            amount: Amount::from_minor(minor).unwrap(),
            currency: provider.currency(),
            description: Description::parse(PERSIAN).unwrap(),
            idempotency_key: None,
            order_id: None,
        }
    }

    fn request_event(id: PaymentId) -> NewEvent {
        NewEvent::new(id, EventKind::Request, "payment requested")
            .detail(json!({"source": "contract"}))
    }

    fn policies() -> RetryPolicies {
        RetryPolicies::default()
    }

    fn verify_payload(trans_id: &str) -> JobPayload {
        JobPayload::VerifyPayment(VerifyArgs {
            trans_id: Some(trans_id.into()),
            ..VerifyArgs::default()
        })
    }

    /// A due job of `kind` for payment `id` with a budget of `attempts`.
    fn new_job(kind: JobKind, id: PaymentId, attempts: u32) -> NewJob {
        let payload = match kind {
            JobKind::FetchUser => JobPayload::FetchUser,
            JobKind::CreateInvoice => JobPayload::CreateInvoice,
            JobKind::VerifyPayment => JobPayload::VerifyPayment(VerifyArgs::default()),
            JobKind::UpdateOrder => JobPayload::UpdateOrder,
            JobKind::ExpirePayment => JobPayload::ExpirePayment,
            JobKind::Refund => JobPayload::Refund(paygate_common::domain::RefundArgs {
                refund_id: uuid::Uuid::now_v7(),
            }),
            JobKind::Notify => JobPayload::Notify(paygate_common::domain::NotifyArgs {
                event_id: Uuid::now_v7(),
                event_type: paygate_common::domain::EventType::PaymentProcessing,
                at_ms: 0,
                subject: paygate_common::domain::Subject::Payment {
                    status: PaymentStatus::Processing,
                    version: 1,
                    status_reason: None,
                },
            }),
            JobKind::DeliverWebhook => {
                JobPayload::DeliverWebhook(paygate_common::domain::DeliverArgs {
                    message_id: "msg_test".into(),
                })
            }
        };
        NewJob::new(payload, Some(id), &policies()).max_attempts(attempts)
    }

    /// Gives a job arguments that travel with it (a verification's trans_id).
    trait WithArgs {
        fn with_args(self, trans_id: &str) -> NewJob;
    }
    impl WithArgs for NewJob {
        fn with_args(mut self, trans_id: &str) -> NewJob {
            self.payload = verify_payload(trans_id);
            self
        }
    }

    fn invoice_job(id: PaymentId) -> NewJob {
        new_job(JobKind::CreateInvoice, id, 5)
    }

    /// Creates a payment with its request event and a due invoice job.
    async fn create_with(store: &Store, new: NewPayment) -> (Payment, Uuid) {
        let job = invoice_job(new.id);
        let job_id = job.id;
        match store
            .create_payment(&new, request_event(new.id), job)
            .await
            .expect("create_payment")
        {
            CreateOutcome::Created(p, messages) => {
                assert_eq!(
                    messages,
                    vec![JobMessage::new(job_id, JobKind::CreateInvoice)]
                );
                (p, job_id)
            }
            CreateOutcome::Existing(p) => panic!("expected a new payment, got existing {p:?}"),
        }
    }

    async fn create(store: &Store, provider: Provider, merchant_ref: &str) -> (Payment, Uuid) {
        create_with(store, new_payment(provider, merchant_ref, 150_000)).await
    }

    async fn claim(store: &Store, job_id: Uuid, worker: &str, lease_ms: i64) -> ClaimedJob {
        store
            .claim_job(job_id, worker, lease_ms)
            .await
            .expect("claim_job")
            .unwrap_or_else(|| panic!("job {job_id} should be claimable by {worker}"))
    }

    /// True when `worker` cannot take `job_id` now (finished, not yet due, or
    /// held under a live lease).
    async fn claims_nothing(store: &Store, job_id: Uuid, worker: &str) -> bool {
        store
            .claim_job(job_id, worker, LONG_LEASE)
            .await
            .expect("claim_job")
            .is_none()
    }

    async fn payment(store: &Store, id: PaymentId) -> Payment {
        store
            .payment(id)
            .await
            .expect("payment")
            .expect("payment exists")
    }

    async fn job(store: &Store, id: Uuid) -> JobRecord {
        store.job(id).await.expect("job").expect("job exists")
    }

    async fn job_total(store: &Store) -> i64 {
        store
            .job_counts()
            .await
            .expect("job_counts")
            .iter()
            .map(|(_, _, n)| n)
            .sum()
    }

    async fn payment_total(store: &Store) -> i64 {
        store
            .list_payments(&PaymentFilter {
                limit: 500,
                ..PaymentFilter::default()
            })
            .await
            .expect("list_payments")
            .0
    }

    async fn event_count(store: &Store, id: PaymentId) -> usize {
        store.events(id).await.expect("events").len()
    }

    fn to_processing(p: &Payment, gateway_ref: &str) -> PaymentChange {
        p.change()
            .status(PaymentStatus::Processing, None)
            .unwrap()
            .payment_url(format!("https://pay.example/{gateway_ref}"))
            .gateway_ref(gateway_ref.to_string())
    }

    fn ids(messages: &[JobMessage]) -> BTreeSet<Uuid> {
        messages.iter().map(|m| m.job_id).collect()
    }

    /// 1. The payment, its request event and its first job are written together.
    pub async fn create_payment_is_atomic(store: Store) {
        let mut new = new_payment(Provider::Atmos, "09123456789", 123_456_789_012_345);
        new.idempotency_key = Some("idem-create-1".into());
        new.order_id = Some(42);
        let first = invoice_job(new.id);
        let first_id = first.id;
        let outcome = store
            .create_payment(&new, request_event(new.id), first)
            .await
            .expect("create_payment");
        let CreateOutcome::Created(created, messages) = outcome else {
            panic!("expected Created, got {outcome:?}");
        };
        assert_eq!(
            messages,
            vec![JobMessage::new(first_id, JobKind::CreateInvoice)]
        );

        let read = payment(&store, new.id).await;
        assert_eq!(read, created);
        assert_eq!(read.id, new.id);
        assert_eq!(read.provider, Provider::Atmos);
        assert_eq!(read.merchant_ref, "09123456789");
        assert_eq!(read.amount.minor(), 123_456_789_012_345);
        assert_eq!(read.currency, Currency::Uzs);
        assert_eq!(read.description.as_str(), PERSIAN);
        assert_eq!(read.status, PaymentStatus::Pending);
        assert_eq!(read.status_reason, None);
        assert_eq!(read.payment_url, None);
        assert_eq!(read.gateway_ref, None);
        assert_eq!(read.gateway_trans_id, None);
        assert_eq!(read.tracking_code, None);
        assert_eq!(read.encrypted_user_data, None);
        assert_eq!(read.idempotency_key.as_deref(), Some("idem-create-1"));
        assert_eq!(read.order_id, Some(42));
        assert_eq!(read.created_at, read.updated_at);
        assert_eq!(read.completed_at, None);
        assert_eq!(read.version, 0);
        let age = now_ms() - read.created_at.timestamp_millis();
        assert!((0..60_000).contains(&age), "created_at is now-ish: {age}");

        let events = store.events(new.id).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::Request);
        assert_eq!(events[0].payment_id, new.id);
        assert_eq!(events[0].message, "payment requested");

        let rec = job(&store, first_id).await;
        assert_eq!(rec.kind, JobKind::CreateInvoice);
        assert_eq!(rec.status, JobStatus::Queued);
        assert_eq!(rec.payment_id, Some(new.id.to_string()));
        assert_eq!(rec.attempts, 0);
        assert_eq!(rec.max_attempts, 5);
        assert_eq!(
            store.job_counts().await.unwrap(),
            vec![(JobKind::CreateInvoice, JobStatus::Queued, 1)]
        );

        // All or nothing: an event that cannot be stored (it names a payment
        // that does not exist) takes the payment and the job down with it.
        let orphan = new_payment(Provider::Medogram, "u-2", 5_000);
        let bad_event = NewEvent::new(PaymentId::new(), EventKind::Request, "orphan");
        let orphan_job = invoice_job(orphan.id);
        let orphan_job_id = orphan_job.id;
        let err = store
            .create_payment(&orphan, bad_event, orphan_job)
            .await
            .expect_err("an event for an unknown payment must fail the whole create");
        assert!(matches!(err, StoreError::Database(_)), "{err:?}");
        assert!(store.payment(orphan.id).await.unwrap().is_none());
        assert!(store.job(orphan_job_id).await.unwrap().is_none());

        // ... and so does a job that cannot be stored (its id is taken).
        let clash = new_payment(Provider::Medogram, "u-3", 5_000);
        let mut clash_job = invoice_job(clash.id);
        clash_job.id = first_id;
        let err = store
            .create_payment(&clash, request_event(clash.id), clash_job)
            .await
            .expect_err("a job id collision must fail the whole create");
        assert!(matches!(err, StoreError::Database(_)), "{err:?}");
        assert!(store.payment(clash.id).await.unwrap().is_none());
        assert_eq!(event_count(&store, clash.id).await, 0);
        assert_eq!(payment_total(&store).await, 1);
        assert_eq!(job_total(&store).await, 1);
        assert_eq!(
            job(&store, first_id).await.payment_id,
            Some(new.id.to_string())
        );
    }

    /// 2. The same idempotency key gives back the first payment.
    pub async fn idempotency_key_returns_the_first_payment(store: Store) {
        let mut first = new_payment(Provider::Medogram, "u-1", 10_000);
        first.idempotency_key = Some("idem-1".into());
        let (created, _) = create_with(&store, first.clone()).await;

        let mut again = new_payment(Provider::Medogram, "u-1", 99_000);
        again.idempotency_key = Some("idem-1".into());
        let outcome = store
            .create_payment(&again, request_event(again.id), invoice_job(again.id))
            .await
            .expect("second create");
        match outcome {
            CreateOutcome::Existing(p) => assert_eq!(p, created),
            other => panic!("expected Existing, got {other:?}"),
        }
        assert!(store.payment(again.id).await.unwrap().is_none());
        assert_eq!(payment_total(&store).await, 1);
        assert_eq!(job_total(&store).await, 1);
        assert_eq!(event_count(&store, first.id).await, 1);

        // Two racing creates with one key: one wins, the other gets its payment.
        let mut a = new_payment(Provider::Atmos, "u-2", 20_000);
        a.idempotency_key = Some("idem-race".into());
        let mut b = new_payment(Provider::Atmos, "u-2", 20_000);
        b.idempotency_key = Some("idem-race".into());
        let (ra, rb) = tokio::join!(
            store.create_payment(&a, request_event(a.id), invoice_job(a.id)),
            store.create_payment(&b, request_event(b.id), invoice_job(b.id)),
        );
        let (ra, rb) = (ra.expect("racer a"), rb.expect("racer b"));
        let (winner, loser) = match (ra, rb) {
            (CreateOutcome::Created(w, _), CreateOutcome::Existing(l))
            | (CreateOutcome::Existing(l), CreateOutcome::Created(w, _)) => (w, l),
            other => panic!("expected one Created and one Existing, got {other:?}"),
        };
        assert_eq!(winner, loser);
        assert_eq!(payment_total(&store).await, 2);
        assert_eq!(job_total(&store).await, 2);
    }

    /// An enabled endpoint: from now on changes write their `notify` jobs.
    async fn listen_for_notifications(store: &Store) {
        store
            .create_webhook_endpoint("https://merchant.example/hooks", "", &[])
            .await
            .expect("create a webhook endpoint");
    }

    /// A `notify` job is written only while an endpoint is enabled
    /// (docs/notifications.md, 'No endpoint, no job'), whichever statement
    /// writes the change.
    pub async fn notify_jobs_need_an_enabled_endpoint(store: Store) {
        let notifies = |messages: &[JobMessage]| {
            messages
                .iter()
                .filter(|m| m.kind == JobKind::Notify)
                .count()
        };
        let settle = |store: Store, user: &'static str| async move {
            let (p, job_id) = create(&store, Provider::Medogram, user).await;
            let claimed = claim(&store, job_id, "worker-a", LONG_LEASE).await;
            store
                .finish_job(
                    &claimed,
                    &policies(),
                    JobFinish {
                        change: Some(to_processing(&p, user)),
                        ..JobFinish::default()
                    },
                )
                .await
                .expect("finish_job")
        };
        assert_eq!(
            notifies(&settle(store.clone(), "u-1").await),
            0,
            "nobody listens"
        );
        let endpoint = store
            .create_webhook_endpoint("https://merchant.example/hooks", "", &[])
            .await
            .unwrap();
        assert_eq!(
            notifies(&settle(store.clone(), "u-2").await),
            1,
            "an endpoint listens"
        );
        assert!(store
            .disable_webhook_endpoint(&endpoint.id, "test")
            .await
            .unwrap());
        assert_eq!(
            notifies(&settle(store.clone(), "u-3").await),
            0,
            "it was disabled"
        );
    }

    /// 3. Claims are exclusive while leased; a lost lease fences the old worker.
    pub async fn claim_job_is_fenced_by_its_lease(store: Store) {
        let (p, job_id) = create(&store, Provider::Medogram, "u-1").await;

        let first = claim(&store, job_id, "worker-a", 1).await;
        assert_eq!(first.attempt, 1);
        assert_eq!(first.id, job_id);
        assert_eq!(first.kind, JobKind::CreateInvoice);
        assert_eq!(first.payment_id, Some(p.id));
        assert_eq!(first.max_attempts, 5);
        assert_eq!(first.worker, "worker-a");
        assert_eq!(
            first.payment.as_ref(),
            Some(&p),
            "the claim carries the payment"
        );
        let rec = job(&store, job_id).await;
        assert_eq!((rec.status, rec.attempts), (JobStatus::Running, 1));

        // A job that is not due yet cannot be claimed.
        let later = new_payment(Provider::Medogram, "u-2", 5_000);
        let mut later_job = invoice_job(later.id);
        later_job.run_at_ms = now_ms() + 60_000;
        let later_job_id = later_job.id;
        match store
            .create_payment(&later, request_event(later.id), later_job)
            .await
            .unwrap()
        {
            CreateOutcome::Created(_, messages) => {
                assert!(messages.is_empty(), "a future job is not dispatched now")
            }
            other => panic!("expected Created, got {other:?}"),
        }
        assert!(claims_nothing(&store, later_job_id, "worker-a").await);
        assert_eq!(job(&store, later_job_id).await.status, JobStatus::Queued);
        assert_eq!(job(&store, later_job_id).await.attempts, 0);

        // A live lease: a duplicate delivery gets nothing.
        let live = create(&store, Provider::Medogram, "u-3").await.1;
        claim(&store, live, "worker-a", LONG_LEASE).await;
        assert!(claims_nothing(&store, live, "worker-b").await);
        assert!(claims_nothing(&store, live, "worker-a").await);
        assert_eq!(job(&store, live).await.attempts, 1);

        // The 1 ms lease of the first claim expires; another worker takes over.
        sleep_ms(20).await;
        let second = claim(&store, job_id, "worker-b", LONG_LEASE).await;
        assert_eq!(second.attempt, 2);
        assert!(claims_nothing(&store, job_id, "worker-c").await);

        // The first worker comes back: everything it tries is refused.
        let stale_next = new_job(JobKind::VerifyPayment, p.id, 5);
        let stale_next_id = stale_next.id;
        let finish = JobFinish {
            change: Some(to_processing(&p, "G-stale")),
            events: vec![NewEvent::new(p.id, EventKind::Invoice, "stale invoice")],
            next_jobs: vec![stale_next],
            ..JobFinish::default()
        };
        let err = store
            .finish_job(&first, &policies(), finish)
            .await
            .expect_err("the first worker lost its lease");
        assert!(matches!(err, StoreError::LeaseLost), "{err:?}");
        let after = payment(&store, p.id).await;
        assert_eq!(after, p, "a lost lease changes nothing");
        assert_eq!(after.version, 0);
        assert_eq!(event_count(&store, p.id).await, 1);
        assert!(store.job(stale_next_id).await.unwrap().is_none());
        let rec = job(&store, job_id).await;
        assert_eq!((rec.status, rec.attempts), (JobStatus::Running, 2));

        // The current holder can finish.
        let messages = store
            .finish_job(
                &second,
                &policies(),
                JobFinish {
                    change: Some(to_processing(&p, "G-1")),
                    ..JobFinish::default()
                },
            )
            .await
            .expect("the current holder finishes");
        // Nothing follows: no endpoint is enabled, so no notification.
        assert_eq!(messages, vec![]);
        assert_eq!(job(&store, job_id).await.status, JobStatus::Succeeded);
        assert_eq!(payment(&store, p.id).await.version, 1);
        // A finished job cannot be claimed again.
        assert!(claims_nothing(&store, job_id, "worker-a").await);
    }

    /// 3b. A heartbeat extends the holder's lease and only the holder's: a
    /// renewed job is not taken over when its first lease runs out, and a
    /// worker whose attempt was taken over cannot renew it back.
    pub async fn a_lease_is_renewed_only_by_its_holder(store: Store) {
        let (_, kept) = create(&store, Provider::Medogram, "u-1").await;
        let holder = claim(&store, kept, "worker-a", 1).await;
        assert!(store.renew_lease(&holder, LONG_LEASE).await.unwrap());
        sleep_ms(20).await;
        assert!(
            claims_nothing(&store, kept, "worker-b").await,
            "the renewed lease still holds after the first one ran out"
        );
        let rec = job(&store, kept).await;
        assert_eq!((rec.status, rec.attempts), (JobStatus::Running, 1));

        let (_, lost) = create(&store, Provider::Medogram, "u-2").await;
        let stale = claim(&store, lost, "worker-a", 1).await;
        sleep_ms(20).await;
        let current = claim(&store, lost, "worker-b", LONG_LEASE).await;
        assert_eq!(current.attempt, 2);
        assert!(
            !store.renew_lease(&stale, LONG_LEASE).await.unwrap(),
            "a taken-over attempt cannot be renewed"
        );
        assert!(store.renew_lease(&current, LONG_LEASE).await.unwrap());
        assert!(claims_nothing(&store, lost, "worker-c").await);
        assert_eq!(job(&store, lost).await.attempts, 2);
    }

    /// Finishes `claim` with `finish`, taking `next` for its worker for `lease_ms`.
    async fn taking(
        store: &Store,
        claim: &ClaimedJob,
        finish: JobFinish,
        next: Uuid,
        lease_ms: i64,
    ) -> Finished {
        let claim_next = Some(NextClaim {
            job_id: next,
            lease_until_ms: now_ms() + lease_ms,
        });
        store
            .finish_job_and_take_next(
                claim,
                &policies(),
                JobFinish {
                    claim_next,
                    ..finish
                },
            )
            .await
            .expect("finish")
    }

    /// A finish can insert one of its next jobs as already succeeded, its
    /// work done inside the finishing attempt: attempt 1, no queue message,
    /// nothing for a worker or the sweeper to take, in the same write as the
    /// attempt's payment change. A job with its dedupe key already there is
    /// that job, left as it is.
    pub async fn a_finish_records_the_next_job_it_ran_inside(store: Store) {
        let (p, job_id) = create(&store, Provider::Medogram, "u-ran").await;
        let first = claim(&store, job_id, "worker-a", LONG_LEASE).await;
        let ran = new_job(JobKind::CreateInvoice, p.id, 5).dedupe(format!("invoice:{}", p.id));
        let queued = new_job(JobKind::UpdateOrder, p.id, 5);
        let (ran_id, queued_id) = (ran.id, queued.id);
        let finished = store
            .finish_job_and_take_next(
                &first,
                &policies(),
                JobFinish {
                    change: Some(to_processing(&p, "G-ran")),
                    next_jobs: vec![ran, queued],
                    ran_next: Some(ran_id),
                    ..JobFinish::default()
                },
            )
            .await
            .expect("finish");
        assert_eq!(
            finished.messages,
            vec![JobMessage::new(queued_id, JobKind::UpdateOrder)],
            "the job run inside has no message; the other one does"
        );
        assert!(finished.next.is_none());
        let committed = payment(&store, p.id).await;
        assert_eq!(
            (committed.version, committed.status),
            (1, PaymentStatus::Processing)
        );
        assert_eq!(finished.payment.as_ref(), Some(&committed));
        assert_eq!(job(&store, job_id).await.status, JobStatus::Succeeded);
        let rec = job(&store, ran_id).await;
        assert_eq!(
            (rec.kind, rec.status, rec.attempts, rec.max_attempts),
            (JobKind::CreateInvoice, JobStatus::Succeeded, 1, 5)
        );
        assert!(claims_nothing(&store, ran_id, "worker-b").await);
        sleep_ms(5).await;
        let due = store.take_due_for_dispatch(0, 100).await.unwrap();
        assert!(!ids(&due).contains(&ran_id), "{due:?}");

        // Its dedupe key taken already: the existing job stays as it was.
        let (q, q_job) = create(&store, Provider::Medogram, "u-ran-dedupe").await;
        let key = format!("invoice:{}", q.id);
        let existing = new_job(JobKind::CreateInvoice, q.id, 5).dedupe(key.clone());
        let existing_id = existing.id;
        store.enqueue_jobs(&[existing]).await.unwrap();
        let claimed = claim(&store, q_job, "worker-a", LONG_LEASE).await;
        let again = new_job(JobKind::CreateInvoice, q.id, 5).dedupe(key);
        let again_id = again.id;
        store
            .finish_job_and_take_next(
                &claimed,
                &policies(),
                JobFinish {
                    next_jobs: vec![again],
                    ran_next: Some(again_id),
                    ..JobFinish::default()
                },
            )
            .await
            .expect("finish");
        assert!(store.job(again_id).await.unwrap().is_none());
        let rec = job(&store, existing_id).await;
        assert_eq!((rec.status, rec.attempts), (JobStatus::Queued, 0));
    }

    /// A finish can insert one of its next jobs already claimed by its own
    /// worker: running, attempt 1, no queue message, handed back with the
    /// payment as committed, and fenced like any claim. A job whose dedupe
    /// key exists is not taken, and a claimed job whose worker goes away is
    /// dispatched again when its lease ends.
    pub async fn a_finish_claims_the_next_job_for_its_worker(store: Store) {
        let (p, job_id) = create(&store, Provider::Medogram, "u-next").await;
        let first = claim(&store, job_id, "worker-a", LONG_LEASE).await;
        let taken = new_job(JobKind::VerifyPayment, p.id, 4).with_args("T-next");
        let queued = new_job(JobKind::UpdateOrder, p.id, 5);
        let (taken_id, queued_id) = (taken.id, queued.id);
        let finish = JobFinish {
            change: Some(to_processing(&p, "G-next")),
            next_jobs: vec![taken, queued],
            ..JobFinish::default()
        };
        let finished = taking(&store, &first, finish, taken_id, LONG_LEASE).await;
        assert_eq!(
            finished.messages,
            vec![JobMessage::new(queued_id, JobKind::UpdateOrder)],
            "the taken job has no message; the other one does"
        );
        let next = finished.next.expect("the next job is handed back");
        let committed = payment(&store, p.id).await;
        assert_eq!(committed.version, 1);
        assert_eq!(next.payment.as_ref(), Some(&committed), "as committed");
        assert_eq!(
            finished.payment.as_ref(),
            Some(&committed),
            "the finish hands on the payment it changed"
        );
        assert_eq!(
            (next.id, next.kind, next.attempt, next.max_attempts),
            (taken_id, JobKind::VerifyPayment, 1, 4)
        );
        assert_eq!(next.worker, "worker-a");
        assert_eq!(next.payment_id, Some(p.id));
        assert_eq!(next.payload.as_ref().ok(), Some(&verify_payload("T-next")));
        let rec = job(&store, taken_id).await;
        assert_eq!((rec.status, rec.attempts), (JobStatus::Running, 1));
        assert!(
            claims_nothing(&store, taken_id, "worker-b").await,
            "its lease is live"
        );
        assert_eq!(job(&store, queued_id).await.status, JobStatus::Queued);
        // Its worker finishes it with the claim it was handed; that finish
        // changes no payment, so it hands none on.
        let unchanged = store
            .finish_job_and_take_next(&next, &policies(), JobFinish::default())
            .await
            .expect("the handed claim finishes");
        assert_eq!(unchanged.payment, None);
        assert_eq!(job(&store, taken_id).await.status, JobStatus::Succeeded);

        // A next job whose dedupe key exists is the existing job: not taken.
        let (q, q_job) = create(&store, Provider::Medogram, "u-dedupe").await;
        let key = format!("verify:{}", q.id);
        let existing = new_job(JobKind::VerifyPayment, q.id, 5).dedupe(key.clone());
        let existing_id = existing.id;
        store.enqueue_jobs(&[existing]).await.unwrap();
        let claimed = claim(&store, q_job, "worker-a", LONG_LEASE).await;
        let again = new_job(JobKind::VerifyPayment, q.id, 5).dedupe(key);
        let again_id = again.id;
        let finish = JobFinish {
            next_jobs: vec![again],
            ..JobFinish::default()
        };
        let finished = taking(&store, &claimed, finish, again_id, LONG_LEASE).await;
        assert!(finished.next.is_none() && finished.messages.is_empty());
        assert!(store.job(again_id).await.unwrap().is_none());
        let rec = job(&store, existing_id).await;
        assert_eq!((rec.status, rec.attempts), (JobStatus::Queued, 0));

        // A taken job whose worker went away is dispatched when its lease ends.
        let (r, r_job) = create(&store, Provider::Medogram, "u-gone").await;
        let claimed = claim(&store, r_job, "worker-a", LONG_LEASE).await;
        let orphan = new_job(JobKind::VerifyPayment, r.id, 5);
        let orphan_id = orphan.id;
        let finish = JobFinish {
            next_jobs: vec![orphan],
            ..JobFinish::default()
        };
        let finished = taking(&store, &claimed, finish, orphan_id, 1).await;
        assert!(finished.next.is_some());
        sleep_ms(20).await;
        let due = store.take_due_for_dispatch(60_000, 100).await.unwrap();
        assert!(ids(&due).contains(&orphan_id), "{due:?}");
        let retaken = claim(&store, orphan_id, "worker-b", LONG_LEASE).await;
        assert_eq!((retaken.attempt, retaken.worker.as_str()), (2, "worker-b"));
        let late = store
            .finish_job(
                finished.next.as_ref().unwrap(),
                &policies(),
                JobFinish::default(),
            )
            .await;
        assert!(matches!(late, Err(StoreError::LeaseLost)), "{late:?}");
    }

    /// A create that claims its first job for the process its client waits
    /// on: no message, the job running under that claim, finished with it; a
    /// repeated idempotency key claims nothing; a claimant that went away
    /// leaves the job to the sweeper once the lease ends.
    pub async fn a_create_claims_its_first_job_for_the_waiting_process(store: Store) {
        let new = new_payment(Provider::Medogram, "u-waited", 150_000);
        let first_job = invoice_job(new.id);
        let job_id = first_job.id;
        let (outcome, claimed) = store
            .create_payment_claiming_first(
                &new,
                request_event(new.id),
                first_job,
                "api-1",
                LONG_LEASE,
            )
            .await
            .expect("create");
        let CreateOutcome::Created(p, messages) = outcome else {
            panic!("expected a new payment");
        };
        assert!(
            messages.is_empty(),
            "a claimed job has no message: {messages:?}"
        );
        let held = claimed.expect("the claim comes back");
        assert_eq!(
            (held.id, held.kind, held.attempt, held.worker.as_str()),
            (job_id, JobKind::CreateInvoice, 1, "api-1")
        );
        assert_eq!(held.payment.as_ref(), Some(&p), "the payment as created");
        let rec = job(&store, job_id).await;
        assert_eq!((rec.status, rec.attempts), (JobStatus::Running, 1));
        assert!(
            claims_nothing(&store, job_id, "worker-b").await,
            "its lease is live"
        );
        assert!(
            !ids(&store.take_due_for_dispatch(0, 100).await.unwrap()).contains(&job_id),
            "nothing to dispatch while the claim holds"
        );
        store
            .finish_job(&held, &policies(), JobFinish::default())
            .await
            .expect("the claim finishes");
        assert_eq!(job(&store, job_id).await.status, JobStatus::Succeeded);

        // The same idempotency key again: the first payment, no claim.
        let mut keyed = new_payment(Provider::Medogram, "u-keyed", 150_000);
        keyed.idempotency_key = Some("waited-key".into());
        let first = store
            .create_payment_claiming_first(
                &keyed,
                request_event(keyed.id),
                invoice_job(keyed.id),
                "api-1",
                LONG_LEASE,
            )
            .await
            .expect("create");
        assert!(first.1.is_some());
        let mut again = new_payment(Provider::Medogram, "u-keyed", 150_000);
        again.idempotency_key = Some("waited-key".into());
        let (outcome, claimed) = store
            .create_payment_claiming_first(
                &again,
                request_event(again.id),
                invoice_job(again.id),
                "api-1",
                LONG_LEASE,
            )
            .await
            .expect("repeat");
        assert!(matches!(outcome, CreateOutcome::Existing(ref e) if e.id == keyed.id));
        assert!(claimed.is_none());

        // The claimant went away: the job is dispatched once the lease ends,
        // and the old claim is fenced off.
        let gone = new_payment(Provider::Medogram, "u-gone-api", 150_000);
        let (_, claimed) = store
            .create_payment_claiming_first(
                &gone,
                request_event(gone.id),
                invoice_job(gone.id),
                "api-1",
                1,
            )
            .await
            .expect("create");
        let orphan = claimed.expect("claimed");
        sleep_ms(20).await;
        let due = store.take_due_for_dispatch(60_000, 100).await.unwrap();
        assert!(ids(&due).contains(&orphan.id), "{due:?}");
        let retaken = claim(&store, orphan.id, "worker-b", LONG_LEASE).await;
        assert_eq!((retaken.attempt, retaken.worker.as_str()), (2, "worker-b"));
        let late = store
            .finish_job(&orphan, &policies(), JobFinish::default())
            .await;
        assert!(matches!(late, Err(StoreError::LeaseLost)), "{late:?}");
    }

    /// A redrive must not let a claim from before it pass the fence again
    /// (redrive keeps `attempts`, the fencing token, counting up).
    pub async fn redrive_keeps_old_claims_fenced(store: Store) {
        let (p, job_id) = create(&store, Provider::Medogram, "u-1").await;
        let stale = claim(&store, job_id, "worker-a", 1).await;
        sleep_ms(20).await;
        let other = claim(&store, job_id, "worker-b", LONG_LEASE).await;
        store
            .finish_job(
                &other,
                &policies(),
                JobFinish {
                    result: JobResult::Dead {
                        error: "out of attempts".into(),
                    },
                    ..JobFinish::default()
                },
            )
            .await
            .unwrap();
        assert!(store.redrive_job(job_id).await.unwrap().is_some());
        // The same worker process picks the redriven job up again.
        let fresh = claim(&store, job_id, "worker-a", LONG_LEASE).await;
        assert_eq!((stale.attempt, fresh.attempt), (1, 3));
        // The attempt from before the redrive finishes late: it must be refused.
        let late = store
            .finish_job(
                &stale,
                &policies(),
                JobFinish {
                    change: Some(to_processing(&p, "G-stale")),
                    ..JobFinish::default()
                },
            )
            .await;
        assert!(
            matches!(late, Err(StoreError::LeaseLost)),
            "a claim from before the redrive passed the fence: {late:?}; payment now {:?}",
            payment(&store, p.id).await.status
        );
    }

    /// A caller that gives up (a client that disconnects mid-request) leaves
    /// its write whole or absent, and the store takes the next write: on
    /// SQLite the writer must not be left inside a transaction.
    pub async fn a_write_whose_caller_gives_up_is_whole_or_absent(store: Store) {
        for _ in 0..20 {
            let new = new_payment(Provider::Medogram, "u-gives-up", 1000);
            let id = new.id;
            let write = store.create_payment(&new, request_event(id), invoice_job(id));
            // Polled once, then dropped: it may have been sent or not, and
            // SQLite's writer thread may even have finished it within that
            // one poll (then it is simply done).
            let _ = futures::FutureExt::now_or_never(write);
            sleep_ms(20).await;
            // The payment first: if it is there, the rest must be too (read
            // the other way round, a commit in between would look partial).
            if store.payment(id).await.unwrap().is_some() {
                assert_eq!(event_count(&store, id).await, 1, "its event came with it");
                let jobs = store.list_jobs(None, Some(id), 10).await.unwrap();
                assert_eq!(jobs.len(), 1, "its job came with it");
            }
        }
        let (p, _) = create(&store, Provider::Medogram, "u-after").await;
        assert_eq!(
            payment(&store, p.id).await,
            p,
            "the next write goes through"
        );
    }

    /// When a finishing attempt fails more than one gate, the payment's
    /// version is judged first: the worker reloads either way, and both
    /// databases say the same.
    pub async fn a_stale_change_is_judged_before_a_lost_claim(store: Store) {
        let (p, job_id) = create(&store, Provider::Medogram, "u-gates").await;
        let first = claim(&store, job_id, "worker-a", 1).await;
        sleep_ms(20).await;
        let second = claim(&store, job_id, "worker-b", LONG_LEASE).await;
        let moved = store
            .finish_job(
                &second,
                &policies(),
                JobFinish {
                    change: Some(to_processing(&p, "G-moved")),
                    ..JobFinish::default()
                },
            )
            .await;
        assert!(moved.is_ok(), "{moved:?}");
        let err = store
            .finish_job(
                &first,
                &policies(),
                JobFinish {
                    change: Some(to_processing(&p, "G-stale")),
                    events: vec![NewEvent::new(p.id, EventKind::Invoice, "stale")],
                    ..JobFinish::default()
                },
            )
            .await
            .expect_err("stale on both counts");
        assert!(matches!(err, StoreError::Conflict), "{err:?}");
        assert_eq!(
            payment(&store, p.id).await.gateway_ref.as_deref(),
            Some("G-moved")
        );
    }

    /// 4. finish_job commits the change, events, next jobs and result together.
    pub async fn finish_job_is_all_or_nothing(store: Store) {
        listen_for_notifications(&store).await;
        let (p, job_id) = create(&store, Provider::Medogram, "u-1").await;
        let claimed = claim(&store, job_id, "worker-a", LONG_LEASE).await;

        let verify = new_job(JobKind::VerifyPayment, p.id, 12).with_args("n-1");
        let verify_id = verify.id;
        let fetch = new_job(JobKind::FetchUser, p.id, 8);
        let fetch_id = fetch.id;
        let mut not_due = new_job(JobKind::VerifyPayment, p.id, 12);
        not_due.run_at_ms = now_ms() + 60_000;
        let not_due_id = not_due.id;
        let messages = store
            .finish_job(
                &claimed,
                &policies(),
                JobFinish {
                    change: Some(to_processing(&p, "G-100")),
                    events: vec![
                        NewEvent::new(p.id, EventKind::Invoice, "invoice created"),
                        NewEvent::new(p.id, EventKind::StatusChange, "pending → processing"),
                    ],
                    next_jobs: vec![verify, fetch, not_due],
                    ..JobFinish::default()
                },
            )
            .await
            .expect("finish_job");
        // The status change's own follow-up (the merchant's notification) first.
        assert_eq!(messages[0].kind, JobKind::Notify);
        assert_eq!(
            messages[1..],
            vec![
                JobMessage::new(verify_id, JobKind::VerifyPayment),
                JobMessage::new(fetch_id, JobKind::FetchUser),
            ],
            "due next jobs are returned, in order; a future one is not"
        );

        let after = payment(&store, p.id).await;
        assert_eq!(after.status, PaymentStatus::Processing);
        assert_eq!(
            after.payment_url.as_deref(),
            Some("https://pay.example/G-100")
        );
        assert_eq!(after.gateway_ref.as_deref(), Some("G-100"));
        assert_eq!(after.version, 1);
        assert_eq!(after.amount, p.amount);
        assert_eq!(after.created_at, p.created_at);
        assert!(after.updated_at >= p.updated_at);
        assert_eq!(after.completed_at, None);
        let kinds: Vec<EventKind> = store
            .events(p.id)
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                EventKind::Request,
                EventKind::Invoice,
                EventKind::StatusChange
            ]
        );
        let rec = job(&store, job_id).await;
        assert_eq!(rec.status, JobStatus::Succeeded);
        assert_eq!(rec.last_error, None);
        for (id, max) in [(verify_id, 12), (fetch_id, 8), (not_due_id, 12)] {
            let r = job(&store, id).await;
            assert_eq!(
                (r.status, r.attempts, r.max_attempts),
                (JobStatus::Queued, 0, max)
            );
            assert_eq!(r.payment_id, Some(p.id.to_string()));
        }
        let verify_claim = claim(&store, verify_id, "worker-b", LONG_LEASE).await;
        assert_eq!(verify_claim.payload, Ok(verify_payload("n-1")));

        // A stale change: nothing of the attempt is written, the job stays running.
        let stale = to_processing(&p, "G-200"); // built from version 0
        let orphan_next = new_job(JobKind::FetchUser, p.id, 8);
        let orphan_next_id = orphan_next.id;
        let err = store
            .finish_job(
                &verify_claim,
                &policies(),
                JobFinish {
                    change: Some(stale),
                    events: vec![NewEvent::new(p.id, EventKind::Verification, "stale")],
                    next_jobs: vec![orphan_next],
                    ..JobFinish::default()
                },
            )
            .await
            .expect_err("a stale expected_version must conflict");
        assert!(matches!(err, StoreError::Conflict), "{err:?}");
        assert_eq!(payment(&store, p.id).await, after);
        assert_eq!(event_count(&store, p.id).await, 3);
        assert!(store.job(orphan_next_id).await.unwrap().is_none());
        let rec = job(&store, verify_id).await;
        assert_eq!((rec.status, rec.attempts), (JobStatus::Running, 1));

        // The claim is still good: the worker reloads and finishes properly.
        let done = after
            .change()
            .status(PaymentStatus::Completed, None)
            .unwrap()
            .gateway_trans_id("T-1".into())
            .tracking_code("TRK-1".into());
        store
            .finish_job(
                &verify_claim,
                &policies(),
                JobFinish {
                    change: Some(done),
                    ..JobFinish::default()
                },
            )
            .await
            .expect("finish with a fresh change");
        let done = payment(&store, p.id).await;
        assert_eq!(done.status, PaymentStatus::Completed);
        assert_eq!(done.version, 2);
        assert!(done.completed_at.is_some());
        assert_eq!(done.gateway_ref.as_deref(), Some("G-100"), "kept");
        assert_eq!(done.gateway_trans_id.as_deref(), Some("T-1"));
        assert_eq!(done.tracking_code.as_deref(), Some("TRK-1"));
    }

    /// A gateway that settles inside its own call (Payme, Click): its call,
    /// its transaction row, the payment change, the order change and the
    /// follow-up job land in one write; a second transaction with the same
    /// gateway id, or an update from a stale version, changes nothing.
    /// A refund is asked for (row, event, job: one write; a repeated key or a
    /// second live refund is refused by the database) and carried out (the
    /// refund, the payment, the order and the events: one write, gated on the
    /// refund still being `requested`).
    pub async fn refunds_are_written_with_their_effects_in_one_write(store: Store) {
        use paygate_common::domain::{
            OrderChange, OrderStatus, PaymentType, ProductName, RefundArgs, RefundStatus,
        };
        use paygate_common::store::{Changeset, NewOrder, NewRefund, UniqueKey};
        let paid = |minor: i64| {
            let store = store.clone();
            async move {
                let new = new_payment(Provider::Atmos, "", minor);
                let (order, p, _) = store
                    .create_order(
                        &NewOrder {
                            product_name: ProductName::parse("Kitob").unwrap(),
                            amount: Amount::from_minor(minor).unwrap(),
                            payment_type: PaymentType::Atmos,
                        },
                        new.clone(),
                        request_event(new.id),
                        None,
                    )
                    .await
                    .expect("create_order");
                let to_processing = p.change().status(PaymentStatus::Processing, None).unwrap();
                store
                    .commit(&Changeset::from_api().change_payment(to_processing, &policies()))
                    .await
                    .unwrap();
                let p = payment(&store, p.id).await;
                let done = p.change().status(PaymentStatus::Completed, None).unwrap();
                store
                    .commit(
                        &Changeset::from_api()
                            .change_payment(done, &policies())
                            .order_status(
                                OrderChange::from_pending(order.id, OrderStatus::Paid).unwrap(),
                                &policies(),
                            ),
                    )
                    .await
                    .unwrap();
                (order.id, payment(&store, p.id).await)
            }
        };
        let ask = |p: &Payment, key: Option<&str>| {
            let id = Uuid::now_v7();
            let new = NewRefund {
                id,
                payment_id: p.id,
                amount_minor: p.amount.minor(),
                reason: Some("returned".into()),
                caller: "key-1".into(),
                idempotency_key: key.map(str::to_string),
            };
            let event = NewEvent::new(p.id, EventKind::Refund, "refund requested");
            let job = NewJob::new(
                JobPayload::Refund(RefundArgs { refund_id: id }),
                Some(p.id),
                &policies(),
            )
            .dedupe(format!("refund:{id}"));
            (new, event, job)
        };

        let (order_id, p) = paid(250_000).await;
        let (new, event, job) = ask(&p, Some("k1"));
        let (refund_id, job_id) = (new.id, job.id);
        let messages = store.request_refund(new, event, job).await.unwrap();
        assert_eq!(messages, vec![JobMessage::new(job_id, JobKind::Refund)]);
        let stored = store.refund(refund_id).await.unwrap().unwrap();
        assert_eq!(
            (stored.status, stored.amount_minor, stored.reason.as_deref()),
            (RefundStatus::Requested, 250_000, Some("returned"))
        );
        let by_key = store.refund_by_key(p.id, "key-1", "k1").await.unwrap();
        assert_eq!(by_key.map(|r| r.id), Some(refund_id));
        assert!(store
            .refund_by_key(p.id, "key-2", "k1")
            .await
            .unwrap()
            .is_none());
        let (events, jobs) = (event_count(&store, p.id).await, job_total(&store).await);

        // The same key again, or a second live refund: refused, nothing written.
        // (The same key breaks both unique indexes; which one a database
        // names first is its own business, so the API looks the key up on either.)
        let (new, event, job) = ask(&p, Some("k1"));
        assert!(matches!(
            store.request_refund(new, event, job).await,
            Err(StoreError::Taken(
                UniqueKey::RefundIdempotencyKey | UniqueKey::RefundLive
            ))
        ));
        let (new, event, job) = ask(&p, Some("k2"));
        assert!(matches!(
            store.request_refund(new, event, job).await,
            Err(StoreError::Taken(UniqueKey::RefundLive))
        ));
        assert_eq!(event_count(&store, p.id).await, events);
        assert_eq!(job_total(&store).await, jobs);
        assert_eq!(store.refunds_of(p.id).await.unwrap().len(), 1);

        // Carried out: refund, payment, order and events together.
        let claimed = claim(&store, job_id, "worker-a", LONG_LEASE).await;
        let mut succeeded = stored.change(RefundStatus::Succeeded).unwrap();
        succeeded.gateway_ref = Some("987654".into());
        store
            .finish_job(
                &claimed,
                &policies(),
                JobFinish {
                    change: Some(p.change().status(PaymentStatus::Refunded, None).unwrap()),
                    order_status: OrderChange::new(
                        order_id,
                        OrderStatus::Paid,
                        OrderStatus::Cancelled,
                    ),
                    events: vec![NewEvent::new(p.id, EventKind::Refund, "refund succeeded")],
                    refund: Some(succeeded),
                    ..JobFinish::default()
                },
            )
            .await
            .unwrap();
        let done = store.refund(refund_id).await.unwrap().unwrap();
        assert_eq!(done.status, RefundStatus::Succeeded);
        assert_eq!(done.gateway_ref.as_deref(), Some("987654"));
        assert_eq!(payment(&store, p.id).await.status, PaymentStatus::Refunded);
        assert_eq!(
            store.order(order_id).await.unwrap().unwrap().status,
            OrderStatus::Cancelled
        );
        assert_eq!(event_count(&store, p.id).await, events + 1);

        // A refund that moved on is a gate: a stale change lands nothing.
        let stale = stored.change(RefundStatus::Failed).unwrap();
        let late = Changeset::from_api()
            .change_refund(stale)
            .event(NewEvent::new(p.id, EventKind::Refund, "late"));
        assert!(matches!(
            store.commit(&late).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(event_count(&store, p.id).await, events + 1);
        assert_eq!(
            store.refund(refund_id).await.unwrap().unwrap().status,
            RefundStatus::Succeeded
        );

        // A failed refund touches only itself and frees the payment for another.
        let (_, q) = paid(100_000).await;
        let (new, event, job) = ask(&q, None);
        let first = new.id;
        store.request_refund(new, event, job).await.unwrap();
        let r = store.refund(first).await.unwrap().unwrap();
        let mut failed = r.change(RefundStatus::Failed).unwrap();
        failed.failure_reason = Some("gateway_unavailable".into());
        store
            .commit(&Changeset::from_api().change_refund(failed))
            .await
            .unwrap();
        let r = store.refund(first).await.unwrap().unwrap();
        assert_eq!(
            (r.status, r.failure_reason.as_deref()),
            (RefundStatus::Failed, Some("gateway_unavailable"))
        );
        assert_eq!(payment(&store, q.id).await.status, PaymentStatus::Completed);
        let (new, event, job) = ask(&q, None);
        store.request_refund(new, event, job).await.unwrap();
        assert_eq!(store.refunds_of(q.id).await.unwrap().len(), 2);
    }

    pub async fn gateway_transactions_settle_in_one_write(store: Store) {
        use paygate_common::domain::{OrderChange, OrderStatus, PaymentType, ProductName};
        use paygate_common::store::{Changeset, Committed, GatewayTxnWrite, NewOrder};
        listen_for_notifications(&store).await;
        let new = new_payment(Provider::Payme, "", 250_000);
        let (order, p, _) = store
            .create_order(
                &NewOrder {
                    product_name: ProductName::parse("Kitob").unwrap(),
                    amount: Amount::from_minor(250_000).unwrap(),
                    payment_type: PaymentType::Payme,
                },
                new.clone(),
                request_event(new.id),
                None,
            )
            .await
            .expect("create_order");
        let inbound = |key: &str| NewInbound {
            provider: Provider::Payme,
            dedupe_key: key.into(),
            payment_id: Some(p.id),
            method: "POST".into(),
            query: String::new(),
            headers: json!({}),
            body: "{}".into(),
            outcome: "accepted".into(),
        };
        let txn = |state: &str, version: Option<i64>| GatewayTxnWrite {
            provider: Provider::Payme,
            external_id: "5305e3bab097f420a62ced0b".into(),
            payment_id: p.id,
            state: state.into(),
            amount_minor: 250_000,
            external_time_ms: Some(1_700_000_000_000),
            data: json!({"state": state}),
            expected_version: version,
        };
        // Created: the payment moves to processing with the transaction.
        let to_processing = p.change().status(PaymentStatus::Processing, None).unwrap();
        let created = Changeset::from_inbound(inbound("call-1"))
            .gateway_txn(txn("1", None))
            .change_payment(to_processing, &policies());
        let Committed::Applied(applied) = store.commit(&created).await.unwrap() else {
            panic!("expected the call to be applied");
        };
        let txn_id = applied.gateway_txn_id.expect("the new row's id");
        let stored = store
            .gateway_txn(Provider::Payme, "5305e3bab097f420a62ced0b")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (stored.id, stored.state.as_str(), stored.version),
            (txn_id, "1", 0)
        );
        assert_eq!(stored.data, json!({"state": "1"}));
        // The same gateway id again is a conflict, and nothing of that write lands.
        let p1 = payment(&store, p.id).await;
        let again = Changeset::from_inbound(inbound("call-2"))
            .gateway_txn(txn("1", None))
            .change_payment(p1.change(), &policies());
        assert!(matches!(
            store.commit(&again).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(payment(&store, p.id).await.version, p1.version);
        assert_eq!(store.inbound_count(Provider::Payme, None).await.unwrap(), 1);
        // Performed: transaction, payment, order and the order's follow-up together.
        let done = p1.change().status(PaymentStatus::Completed, None).unwrap();
        let performed = Changeset::from_inbound(inbound("call-3"))
            .gateway_txn(txn("2", Some(0)))
            .change_payment(done, &policies())
            .order_status(
                OrderChange::from_pending(order.id, OrderStatus::Paid).unwrap(),
                &policies(),
            );
        let Committed::Applied(applied) = store.commit(&performed).await.unwrap() else {
            panic!("expected the perform to be applied");
        };
        assert_eq!(applied.gateway_txn_id, Some(txn_id));
        // The order update and the merchant's two notifications (payment, order).
        assert_eq!(
            applied.messages.len(),
            3,
            "the order update and notifications follow"
        );
        assert_eq!(payment(&store, p.id).await.status, PaymentStatus::Completed);
        assert_eq!(
            store.order(order.id).await.unwrap().unwrap().status,
            OrderStatus::Paid
        );
        // A stale update (version 0 again) changes nothing.
        let p2 = payment(&store, p.id).await;
        let stale = Changeset::from_inbound(inbound("call-4"))
            .gateway_txn(txn("-2", Some(0)))
            .change_payment(p2.change(), &policies());
        assert!(matches!(
            store.commit(&stale).await,
            Err(StoreError::Conflict)
        ));
        let stored = store
            .gateway_txn(Provider::Payme, "5305e3bab097f420a62ced0b")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((stored.state.as_str(), stored.version), ("2", 1));
        assert_eq!(payment(&store, p.id).await.version, p2.version);
        // Reads by our id and by payment.
        assert_eq!(
            store
                .gateway_txn_by_id(Provider::Payme, txn_id)
                .await
                .unwrap(),
            Some(stored.clone())
        );
        assert_eq!(
            store.gateway_txns_of_payment(p.id).await.unwrap(),
            vec![stored]
        );
    }

    /// An order moves with the attempt that settles its payment, once, and
    /// not at all when the attempt is refused.
    pub async fn finish_job_moves_the_order_once(store: Store) {
        use paygate_common::domain::{OrderChange, OrderStatus, PaymentType, ProductName};
        use paygate_common::store::NewOrder;
        let new = new_payment(Provider::Atmos, "", 250_000);
        let first = new_job(JobKind::CreateInvoice, new.id, 5);
        let job_id = first.id;
        let (order, p, _) = store
            .create_order(
                &NewOrder {
                    product_name: ProductName::parse("Kitob").unwrap(),
                    amount: Amount::from_minor(250_000).unwrap(),
                    payment_type: PaymentType::Atmos,
                },
                new.clone(),
                request_event(new.id),
                Some(first),
            )
            .await
            .expect("create_order");
        assert_eq!(order.status, OrderStatus::Pending);
        let stale = claim(&store, job_id, "worker-a", 1).await;
        sleep_ms(20).await;
        let current = claim(&store, job_id, "worker-b", LONG_LEASE).await;
        let failed = |p: &Payment| JobFinish {
            change: Some(p.change().status(PaymentStatus::Failed, Some("x")).unwrap()),
            order_status: OrderChange::from_pending(order.id, OrderStatus::Failed),
            ..JobFinish::default()
        };
        let err = store
            .finish_job(&stale, &policies(), failed(&p))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::LeaseLost), "{err:?}");
        let unchanged = store.order(order.id).await.unwrap().unwrap();
        assert_eq!(
            unchanged.status,
            OrderStatus::Pending,
            "a lost lease moves nothing"
        );

        store
            .finish_job(&current, &policies(), failed(&p))
            .await
            .unwrap();
        let moved = store.order(order.id).await.unwrap().unwrap();
        assert_eq!(moved.status, OrderStatus::Failed);
        assert_eq!(payment(&store, p.id).await.status, PaymentStatus::Failed);

        // A repeated order update (another job) finds the order already moved.
        let again = new_job(JobKind::UpdateOrder, p.id, 5);
        let again_id = again.id;
        store.enqueue_jobs(&[again]).await.unwrap();
        let c = claim(&store, again_id, "worker-c", LONG_LEASE).await;
        store
            .finish_job(
                &c,
                &policies(),
                JobFinish {
                    order_status: OrderChange::from_pending(order.id, OrderStatus::Paid),
                    ..JobFinish::default()
                },
            )
            .await
            .unwrap();
        let kept = store.order(order.id).await.unwrap().unwrap();
        assert_eq!(
            kept.status,
            OrderStatus::Failed,
            "only a pending order moves"
        );
        assert_eq!(job(&store, again_id).await.status, JobStatus::Succeeded);
    }

    /// Two attempts racing to change one payment from the same version: one
    /// lands; the other changes nothing (its job stays running) and is told
    /// of the conflict. Repeated so the race actually interleaves.
    pub async fn racing_finishes_change_a_payment_once(store: Store) {
        for round in 0..20 {
            let (p, first_job) = create(&store, Provider::Medogram, &format!("race-{round}")).await;
            let other = new_job(JobKind::VerifyPayment, p.id, 5);
            let other_id = other.id;
            store.enqueue_jobs(&[other]).await.unwrap();
            let a = claim(&store, first_job, "worker-a", LONG_LEASE).await;
            let b = claim(&store, other_id, "worker-b", LONG_LEASE).await;
            let finish = |tag: &str| JobFinish {
                change: Some(to_processing(&p, &format!("G-{round}-{tag}"))),
                events: vec![NewEvent::new(p.id, EventKind::Invoice, tag)],
                ..JobFinish::default()
            };
            let (fa, fb) = (finish("a"), finish("b"));
            let pol = policies();
            let (ra, rb) = tokio::join!(
                store.finish_job(&a, &pol, fa),
                store.finish_job(&b, &pol, fb)
            );
            let (won, lost_job) = match (&ra, &rb) {
                (Ok(_), Err(StoreError::Conflict)) => ("a", other_id),
                (Err(StoreError::Conflict), Ok(_)) => ("b", first_job),
                other => panic!("round {round}: expected one winner, got {other:?}"),
            };
            let after = payment(&store, p.id).await;
            assert_eq!(after.version, 1, "round {round}");
            assert_eq!(after.gateway_ref, Some(format!("G-{round}-{won}")));
            let events = store.events(p.id).await.unwrap();
            assert_eq!(events.len(), 2, "round {round}: only the winner's event");
            assert_eq!(events[1].message, won);
            assert_eq!(job(&store, lost_job).await.status, JobStatus::Running);
        }
    }

    /// 5. Status changes apply only to the row they were built from; gateway refs are unique.
    pub async fn state_machine_is_enforced_by_the_store(store: Store) {
        let (p, j1) = create(&store, Provider::Medogram, "u-1").await;
        let c1 = claim(&store, j1, "w", LONG_LEASE).await;
        let verify = new_job(JobKind::VerifyPayment, p.id, 12);
        let verify_id = verify.id;
        let late = new_job(JobKind::VerifyPayment, p.id, 12);
        let late_id = late.id;
        store
            .finish_job(
                &c1,
                &policies(),
                JobFinish {
                    change: Some(to_processing(&p, "G-1")),
                    next_jobs: vec![verify, late],
                    ..JobFinish::default()
                },
            )
            .await
            .unwrap();
        let processing = payment(&store, p.id).await;
        assert_eq!(processing.status, PaymentStatus::Processing);

        // Another writer completes it.
        let c2 = claim(&store, verify_id, "w", LONG_LEASE).await;
        store
            .finish_job(
                &c2,
                &policies(),
                JobFinish {
                    change: Some(
                        processing
                            .change()
                            .status(PaymentStatus::Completed, None)
                            .unwrap()
                            .tracking_code("TRK".into()),
                    ),
                    ..JobFinish::default()
                },
            )
            .await
            .unwrap();
        let completed = payment(&store, p.id).await;
        assert_eq!(completed.status, PaymentStatus::Completed);
        assert_eq!(completed.version, 2);

        // A late message decides from the old "processing" snapshot: refused.
        let c3 = claim(&store, late_id, "w", LONG_LEASE).await;
        let from_stale = processing
            .change()
            .status(PaymentStatus::Failed, Some("late failure"))
            .unwrap();
        let err = store
            .finish_job(
                &c3,
                &policies(),
                JobFinish {
                    change: Some(from_stale),
                    ..JobFinish::default()
                },
            )
            .await
            .expect_err("stale snapshot");
        assert!(matches!(err, StoreError::Conflict), "{err:?}");
        // Even with the current version, the status must match what the row holds.
        let forged = PaymentChange {
            expected_version: completed.version,
            ..processing
                .change()
                .status(PaymentStatus::Failed, Some("forged"))
                .unwrap()
        };
        let err = store
            .finish_job(
                &c3,
                &policies(),
                JobFinish {
                    change: Some(forged),
                    ..JobFinish::default()
                },
            )
            .await
            .expect_err("expected status differs from the row");
        assert!(matches!(err, StoreError::Conflict), "{err:?}");
        assert_eq!(payment(&store, p.id).await, completed);
        assert_eq!(job(&store, late_id).await.status, JobStatus::Running);

        // Lookup by the gateway's id.
        let found = store
            .payment_by_gateway_ref(Provider::Medogram, "G-1")
            .await
            .unwrap()
            .expect("found by gateway ref");
        assert_eq!(found, completed);
        assert!(store
            .payment_by_gateway_ref(Provider::Atmos, "G-1")
            .await
            .unwrap()
            .is_none());
        assert!(store
            .payment_by_gateway_ref(Provider::Medogram, "G-404")
            .await
            .unwrap()
            .is_none());

        // A second payment of the same gateway cannot take the same ref.
        let (q, jq) = create(&store, Provider::Medogram, "u-2").await;
        let cq = claim(&store, jq, "w", LONG_LEASE).await;
        let err = store
            .finish_job(
                &cq,
                &policies(),
                JobFinish {
                    change: Some(to_processing(&q, "G-1")),
                    events: vec![NewEvent::new(q.id, EventKind::Invoice, "dup ref")],
                    ..JobFinish::default()
                },
            )
            .await
            .expect_err("duplicate (provider, gateway_ref)");
        assert!(matches!(err, StoreError::Conflict), "{err:?}");
        assert_eq!(payment(&store, q.id).await, q);
        assert_eq!(event_count(&store, q.id).await, 1);
        assert_eq!(job(&store, jq).await.status, JobStatus::Running);
        // The same worker retries with the ref the gateway really gave it.
        store
            .finish_job(
                &cq,
                &policies(),
                JobFinish {
                    change: Some(to_processing(&q, "G-2")),
                    ..JobFinish::default()
                },
            )
            .await
            .expect("a distinct ref is fine");
        // Another gateway may use the same ref.
        let (r, jr) = create(&store, Provider::Atmos, "u-3").await;
        let cr = claim(&store, jr, "w", LONG_LEASE).await;
        store
            .finish_job(
                &cr,
                &policies(),
                JobFinish {
                    change: Some(to_processing(&r, "G-1")),
                    ..JobFinish::default()
                },
            )
            .await
            .expect("gateway refs are unique per provider");
        assert_eq!(
            store
                .payment_by_gateway_ref(Provider::Atmos, "G-1")
                .await
                .unwrap()
                .map(|x| x.id),
            Some(r.id)
        );
    }

    /// 6. Retries wait for their time; dead jobs can be redriven.
    pub async fn retry_dead_and_redrive(store: Store) {
        let (p, job_id) = create(&store, Provider::Medogram, "u-1").await;
        let c1 = claim(&store, job_id, "w", LONG_LEASE).await;
        let retry_at = now_ms() + 800;
        let messages = store
            .finish_job(
                &c1,
                &policies(),
                JobFinish {
                    result: JobResult::Retry {
                        run_at_ms: retry_at,
                        error: "gateway timeout".into(),
                    },
                    ..JobFinish::default()
                },
            )
            .await
            .unwrap();
        assert!(messages.is_empty());
        let rec = job(&store, job_id).await;
        assert_eq!(rec.status, JobStatus::Queued);
        assert_eq!(rec.run_at_ms, retry_at);
        assert_eq!(rec.attempts, 1);
        assert_eq!(rec.last_error.as_deref(), Some("gateway timeout"));
        assert!(claims_nothing(&store, job_id, "w").await);
        assert!(!ids(&store.take_due_for_dispatch(0, 100).await.unwrap()).contains(&job_id));

        let wait = retry_at + 30 - now_ms();
        sleep_ms(wait.max(0) as u64).await;
        assert_eq!(
            store.take_due_for_dispatch(0, 100).await.unwrap(),
            vec![JobMessage::new(job_id, JobKind::CreateInvoice)]
        );
        let c2 = claim(&store, job_id, "w", LONG_LEASE).await;
        assert_eq!(c2.attempt, 2);

        store
            .finish_job(
                &c2,
                &policies(),
                JobFinish {
                    result: JobResult::Dead {
                        error: "out of attempts".into(),
                    },
                    ..JobFinish::default()
                },
            )
            .await
            .unwrap();
        let rec = job(&store, job_id).await;
        assert_eq!(rec.status, JobStatus::Dead);
        assert_eq!(rec.last_error.as_deref(), Some("out of attempts"));
        let dead = store
            .list_jobs(Some(JobStatus::Dead), None, 10)
            .await
            .unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].id, job_id);
        assert_eq!(
            store
                .list_jobs(Some(JobStatus::Dead), Some(p.id), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(store
            .list_jobs(Some(JobStatus::Dead), Some(PaymentId::new()), 10)
            .await
            .unwrap()
            .is_empty());
        assert!(store
            .list_jobs(Some(JobStatus::Queued), None, 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(store.list_jobs(None, None, 10).await.unwrap().len(), 1);
        assert!(claims_nothing(&store, job_id, "w").await);
        assert!(store
            .take_due_for_dispatch(0, 100)
            .await
            .unwrap()
            .is_empty());

        let redriven = store.redrive_job(job_id).await.unwrap();
        assert_eq!(
            redriven,
            Some(JobMessage::new(job_id, JobKind::CreateInvoice))
        );
        let rec = job(&store, job_id).await;
        // Attempts keep counting (they fence stale claims); the budget grows instead.
        assert_eq!(rec.status, JobStatus::Queued);
        assert!(rec.max_attempts > rec.attempts, "{rec:?}");
        assert!(store
            .list_jobs(Some(JobStatus::Dead), None, 10)
            .await
            .unwrap()
            .is_empty());
        // Redriving a job that is not dead or failed does nothing.
        assert_eq!(store.redrive_job(job_id).await.unwrap(), None);
        let c3 = claim(&store, job_id, "w", LONG_LEASE).await;
        assert_eq!(i64::from(c3.attempt), rec.attempts + 1);
        store
            .finish_job(&c3, &policies(), JobFinish::default())
            .await
            .unwrap();
        assert_eq!(job(&store, job_id).await.status, JobStatus::Succeeded);
        assert_eq!(store.redrive_job(job_id).await.unwrap(), None);
        assert_eq!(job(&store, job_id).await.status, JobStatus::Succeeded);
        assert_eq!(store.redrive_job(Uuid::now_v7()).await.unwrap(), None);

        // Failed jobs can be redriven too.
        let (_, failed_id) = create(&store, Provider::Atmos, "u-2").await;
        let cf = claim(&store, failed_id, "w", LONG_LEASE).await;
        store
            .finish_job(
                &cf,
                &policies(),
                JobFinish {
                    result: JobResult::Failed {
                        error: "refused".into(),
                    },
                    ..JobFinish::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(job(&store, failed_id).await.status, JobStatus::Failed);
        assert!(store.redrive_job(failed_id).await.unwrap().is_some());
        assert_eq!(job(&store, failed_id).await.status, JobStatus::Queued);
    }

    /// 7. The sweeper's view: due, not recently dispatched, never finished.
    pub async fn take_due_for_dispatch_contract(store: Store) {
        // Long enough that no call below is a whole window after the one before.
        const WINDOW: i64 = 300;
        let queued_old = create(&store, Provider::Medogram, "queued_old").await.1;
        let queued_null = create(&store, Provider::Medogram, "queued_null").await.1;
        let queued_future = create(&store, Provider::Medogram, "queued_future").await.1;
        let running_expired = create(&store, Provider::Medogram, "running_expired")
            .await
            .1;
        let running_live = create(&store, Provider::Medogram, "running_live").await.1;
        let succeeded = create(&store, Provider::Medogram, "succeeded").await.1;
        let failed = create(&store, Provider::Medogram, "failed").await.1;
        let dead = create(&store, Provider::Medogram, "dead").await.1;
        // Every new due job counts as dispatched at insert.
        assert!(store
            .take_due_for_dispatch(60_000, 100)
            .await
            .unwrap()
            .is_empty());

        claim(&store, running_expired, "w", 1).await;
        claim(&store, running_live, "w", LONG_LEASE).await;
        for (id, result) in [
            (
                queued_null,
                JobResult::Retry {
                    run_at_ms: now_ms() - 1,
                    error: "retry now".into(),
                },
            ),
            (
                queued_future,
                JobResult::Retry {
                    run_at_ms: now_ms() + 60_000,
                    error: "retry later".into(),
                },
            ),
            (succeeded, JobResult::Succeeded),
            (failed, JobResult::Failed { error: "no".into() }),
            (dead, JobResult::Dead { error: "no".into() }),
        ] {
            let c = claim(&store, id, "w", LONG_LEASE).await;
            store
                .finish_job(
                    &c,
                    &policies(),
                    JobFinish {
                        result,
                        ..JobFinish::default()
                    },
                )
                .await
                .unwrap();
        }
        sleep_ms(WINDOW as u64 + 50).await;

        // Never dispatched since its retry was scheduled, or claimed and its lease
        // ran out (a claim clears the dispatch mark): returned whatever the window.
        let got = store.take_due_for_dispatch(60_000, 100).await.unwrap();
        let expected: BTreeSet<Uuid> = [queued_null, running_expired].into();
        assert_eq!(ids(&got), expected);
        assert!(store
            .take_due_for_dispatch(60_000, 100)
            .await
            .unwrap()
            .is_empty());

        // Dispatched more than WINDOW ago and not claimed.
        let expected: BTreeSet<Uuid> = [queued_old].into();
        let got = store.take_due_for_dispatch(WINDOW, 100).await.unwrap();
        assert_eq!(ids(&got), expected);
        assert_eq!(got.len(), 1, "each job once: {got:?}");
        assert!(got.iter().all(|m| m.kind == JobKind::CreateInvoice));
        // Once per window.
        assert!(store
            .take_due_for_dispatch(WINDOW, 100)
            .await
            .unwrap()
            .is_empty());

        // The next window returns them again (and respects the limit).
        sleep_ms(WINDOW as u64 + 50).await;
        let first = store.take_due_for_dispatch(WINDOW, 1).await.unwrap();
        assert_eq!(first.len(), 1);
        let rest = store.take_due_for_dispatch(WINDOW, 100).await.unwrap();
        let mut all = ids(&first);
        all.extend(ids(&rest));
        assert_eq!(
            all,
            [queued_old, queued_null, running_expired].into(),
            "first {first:?} rest {rest:?}"
        );
        assert_eq!(first.len() + rest.len(), 3);

        // Finished, future and live-leased jobs are never returned.
        sleep_ms(5).await;
        let got = ids(&store.take_due_for_dispatch(0, 1000).await.unwrap());
        for never in [queued_future, running_live, succeeded, failed, dead] {
            assert!(!got.contains(&never), "{never} must not be dispatched");
        }
        for (id, status) in [
            (succeeded, JobStatus::Succeeded),
            (failed, JobStatus::Failed),
            (dead, JobStatus::Dead),
            (running_live, JobStatus::Running),
            (queued_future, JobStatus::Queued),
        ] {
            assert_eq!(job(&store, id).await.status, status);
        }
    }

    fn inbound(provider: Provider, key: &str, payment: Option<PaymentId>) -> NewInbound {
        NewInbound {
            provider,
            dedupe_key: key.to_string(),
            payment_id: payment,
            method: "GET".into(),
            query: "trans_id=1&id_get=2".into(),
            headers: json!({"user-agent": "gateway"}),
            body: String::new(),
            outcome: "accepted".into(),
        }
    }

    /// 8. Dedupe keys make repeated work and repeated messages harmless.
    pub async fn dedupe_of_jobs_and_inbound_messages(store: Store) {
        let (p, job_id) = create(&store, Provider::Medogram, "u-1").await;
        let c = claim(&store, job_id, "w", LONG_LEASE).await;
        let a = new_job(JobKind::VerifyPayment, p.id, 12).dedupe("verify:T1");
        let b = new_job(JobKind::VerifyPayment, p.id, 12).dedupe("verify:T1");
        let (a_id, b_id) = (a.id, b.id);
        let messages = store
            .finish_job(
                &c,
                &policies(),
                JobFinish {
                    next_jobs: vec![a, b],
                    ..JobFinish::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            messages,
            vec![JobMessage::new(a_id, JobKind::VerifyPayment)]
        );
        assert!(store.job(a_id).await.unwrap().is_some());
        assert!(store.job(b_id).await.unwrap().is_none());
        assert_eq!(job_total(&store).await, 2);

        // An inbound message with its follow-up work.
        let events = [NewEvent::new(
            p.id,
            EventKind::Callback,
            "callback received",
        )];
        let again = new_job(JobKind::VerifyPayment, p.id, 12).dedupe("verify:T1");
        let again_id = again.id;
        let fresh = new_job(JobKind::VerifyPayment, p.id, 12).dedupe("verify:T2");
        let fresh_id = fresh.id;
        let first = store
            .record_inbound(
                &inbound(Provider::Medogram, "T2:G-1", Some(p.id)),
                &events,
                &[again, fresh],
            )
            .await
            .unwrap();
        match first {
            InboundOutcome::Recorded(m) => assert_eq!(
                m,
                vec![JobMessage::new(fresh_id, JobKind::VerifyPayment)],
                "the job deduplicated against an earlier transaction is not returned"
            ),
            InboundOutcome::Duplicate => panic!("the first message is not a duplicate"),
        }
        assert!(store.job(again_id).await.unwrap().is_none());
        assert_eq!(job_total(&store).await, 3);
        assert_eq!(event_count(&store, p.id).await, 2);

        // The same gateway event again: nothing is written.
        let repeat_job = new_job(JobKind::VerifyPayment, p.id, 12).dedupe("verify:T3");
        let repeat_job_id = repeat_job.id;
        let mut repeat = inbound(Provider::Medogram, "T2:G-1", Some(p.id));
        repeat.outcome = "other".into();
        let second = store
            .record_inbound(
                &repeat,
                &[NewEvent::new(p.id, EventKind::Callback, "again")],
                &[repeat_job],
            )
            .await
            .unwrap();
        assert!(matches!(second, InboundOutcome::Duplicate), "{second:?}");
        assert!(store.job(repeat_job_id).await.unwrap().is_none());
        assert_eq!(job_total(&store).await, 3);
        assert_eq!(event_count(&store, p.id).await, 2);
        assert_eq!(
            store.inbound_count(Provider::Medogram, None).await.unwrap(),
            1
        );
        assert_eq!(
            store
                .inbound_count(Provider::Medogram, Some("accepted"))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .inbound_count(Provider::Medogram, Some("other"))
                .await
                .unwrap(),
            0
        );
        assert_eq!(store.inbound_count(Provider::Atmos, None).await.unwrap(), 0);

        // Dedupe keys are per provider; a message need not name a payment.
        let other = store
            .record_inbound(&inbound(Provider::Atmos, "T2:G-1", None), &[], &[])
            .await
            .unwrap();
        assert!(
            matches!(other, InboundOutcome::Recorded(ref m) if m.is_empty()),
            "{other:?}"
        );
        assert_eq!(store.inbound_count(Provider::Atmos, None).await.unwrap(), 1);
        assert_eq!(
            store.inbound_count(Provider::Medogram, None).await.unwrap(),
            1
        );
    }

    /// 9. Listing: filters, newest first, total count, pagination.
    pub async fn list_payments_filters_and_paginates(store: Store) {
        let specs = [
            (Provider::Medogram, "user-a"),
            (Provider::Atmos, "user-b"),
            (Provider::Medogram, "user-a"),
            (Provider::Medogram, "user-c"),
            (Provider::Atmos, "user-a"),
        ];
        let mut ps = Vec::new();
        let mut jobs = Vec::new();
        for (provider, r) in specs {
            // Distinct creation milliseconds, so "newest first" is well defined.
            if let Some(prev) = ps.last().map(|p: &Payment| p.created_at.timestamp_millis()) {
                while now_ms() <= prev {
                    sleep_ms(2).await;
                }
            }
            let (p, j) = create(&store, provider, r).await;
            ps.push(p);
            jobs.push(j);
        }
        for i in [2, 4] {
            let c = claim(&store, jobs[i], "w", LONG_LEASE).await;
            store
                .finish_job(
                    &c,
                    &policies(),
                    JobFinish {
                        change: Some(to_processing(&ps[i], &format!("G-{i}"))),
                        ..JobFinish::default()
                    },
                )
                .await
                .unwrap();
        }
        let id = |i: usize| ps[i].id;
        let at = |i: usize| ps[i].created_at.timestamp_millis();
        let list = |f: PaymentFilter| {
            let store = store.clone();
            async move {
                let (total, items) = store.list_payments(&f).await.expect("list_payments");
                (total, items.iter().map(|p| p.id).collect::<Vec<_>>())
            }
        };
        let all = || PaymentFilter {
            limit: 100,
            ..PaymentFilter::default()
        };

        assert_eq!(
            list(all()).await,
            (5, vec![id(4), id(3), id(2), id(1), id(0)])
        );
        let (_, items) = store.list_payments(&all()).await.unwrap();
        assert_eq!(items[0].status, PaymentStatus::Processing);
        assert_eq!(items[0].gateway_ref.as_deref(), Some("G-4"));
        assert_eq!(items[4], ps[0]);

        let by_status = PaymentFilter {
            status: Some(PaymentStatus::Processing),
            ..all()
        };
        assert_eq!(list(by_status).await, (2, vec![id(4), id(2)]));
        let by_provider = PaymentFilter {
            provider: Some(Provider::Medogram),
            ..all()
        };
        assert_eq!(list(by_provider).await, (3, vec![id(3), id(2), id(0)]));
        let by_ref = PaymentFilter {
            merchant_ref: Some("user-a".into()),
            ..all()
        };
        assert_eq!(list(by_ref).await, (3, vec![id(4), id(2), id(0)]));
        let combined = PaymentFilter {
            provider: Some(Provider::Medogram),
            status: Some(PaymentStatus::Pending),
            merchant_ref: Some("user-a".into()),
            ..all()
        };
        assert_eq!(list(combined).await, (1, vec![id(0)]));

        // Created range: from inclusive, to exclusive.
        let range = PaymentFilter {
            created_from_ms: Some(at(1)),
            created_to_ms: Some(at(3)),
            ..all()
        };
        assert_eq!(list(range.clone()).await, (2, vec![id(2), id(1)]));
        let from_only = PaymentFilter {
            created_from_ms: Some(at(3)),
            ..all()
        };
        assert_eq!(list(from_only).await, (2, vec![id(4), id(3)]));
        let to_only = PaymentFilter {
            created_to_ms: Some(at(1)),
            ..all()
        };
        assert_eq!(list(to_only).await, (1, vec![id(0)]));
        let range_and_text = PaymentFilter {
            provider: Some(Provider::Atmos),
            ..range.clone()
        };
        assert_eq!(list(range_and_text).await, (1, vec![id(1)]));
        let everything = PaymentFilter {
            provider: Some(Provider::Medogram),
            status: Some(PaymentStatus::Processing),
            merchant_ref: Some("user-a".into()),
            ..range
        };
        assert_eq!(list(everything).await, (1, vec![id(2)]));
        let nothing = PaymentFilter {
            merchant_ref: Some("nobody".into()),
            ..all()
        };
        assert_eq!(list(nothing).await, (0, vec![]));

        // Pagination keeps the total.
        let page = |limit: i64, offset: i64| PaymentFilter {
            limit,
            offset,
            ..PaymentFilter::default()
        };
        assert_eq!(list(page(2, 0)).await, (5, vec![id(4), id(3)]));
        assert_eq!(list(page(2, 2)).await, (5, vec![id(2), id(1)]));
        assert_eq!(list(page(2, 4)).await, (5, vec![id(0)]));
        assert_eq!(list(page(2, 10)).await, (5, vec![]));
        let page_filtered = PaymentFilter {
            merchant_ref: Some("user-a".into()),
            created_from_ms: Some(at(0)),
            ..page(1, 1)
        };
        assert_eq!(list(page_filtered).await, (3, vec![id(2)]));
    }

    /// 10. API keys: shown once, stored hashed, verified by value.
    pub async fn api_keys_round_trip(store: Store) {
        assert_eq!(store.api_key_count().await.unwrap(), 0);
        let admin = store.create_api_key("ops", true).await.unwrap();
        let shop = store.create_api_key("فروشگاه", false).await.unwrap();
        for k in [&admin, &shop] {
            assert!(k.plaintext.starts_with("pgk_"), "{}", k.plaintext);
            assert!(k.plaintext.len() > 20);
            assert_eq!(k.key.prefix, k.plaintext[..8]);
        }
        assert_ne!(admin.plaintext, shop.plaintext);
        assert_ne!(admin.key.id, shop.key.id);

        let found = store
            .verify_api_key(&admin.plaintext)
            .await
            .unwrap()
            .expect("admin key verifies");
        assert_eq!(found.id, admin.key.id);
        assert_eq!(found.name, "ops");
        assert_eq!(found.prefix, admin.key.prefix);
        assert!(found.is_admin);
        let found = store
            .verify_api_key(&shop.plaintext)
            .await
            .unwrap()
            .expect("shop key verifies");
        assert_eq!(found.id, shop.key.id);
        assert_eq!(found.name, "فروشگاه");
        assert!(!found.is_admin);

        let mut wrong = admin.plaintext.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'a' { 'b' } else { 'a' });
        for bad in [
            wrong.as_str(),
            "pgk_not-a-key",
            "",
            admin.key.prefix.as_str(),
        ] {
            assert!(
                store.verify_api_key(bad).await.unwrap().is_none(),
                "{bad:?} must not verify"
            );
        }
        assert_eq!(store.api_key_count().await.unwrap(), 2);
    }

    /// 11. Events come back in insertion order with their JSON detail intact.
    pub async fn events_keep_order_and_detail(store: Store) {
        let (p, _) = create(&store, Provider::Medogram, "u-1").await;
        let (q, _) = create(&store, Provider::Atmos, "u-2").await;
        let rich = json!({
            "amount": 123_456_789_012_345_i64,
            "big": 9_007_199_254_740_993_u64,
            "negative": -42,
            "ratio": 1.5,
            "ok": true,
            "missing": null,
            "text": "پرداخت \"موفق\" بود\nline 2 \\ 🎉",
            "list": [1, "two", {"three": [3]}],
            "nested": {"deeper": {"deepest": "x"}}
        });
        let e1 = NewEvent {
            detail: rich.clone(),
            ..NewEvent::new(p.id, EventKind::Callback, "بازگشت از درگاه")
        };
        let e2 = NewEvent::new(p.id, EventKind::Webhook, "webhook")
            .detail(json!({"card": "6037991234567890", "status": "paid"}));
        assert_eq!(
            e2.detail,
            json!({"card": "[redacted]", "status": "paid"}),
            "redacted before it is stored"
        );
        let e3 = NewEvent::new(p.id, EventKind::Error, "no detail");
        store
            .append_events(&[e1.clone(), e2.clone(), e3.clone()])
            .await
            .unwrap();
        let other =
            NewEvent::new(q.id, EventKind::Verification, "other payment").detail(json!(["q"]));
        store
            .append_events(std::slice::from_ref(&other))
            .await
            .unwrap();
        let e4 = NewEvent::new(p.id, EventKind::Verification, "verified")
            .detail(json!({"tracking": "TRK-9"}));
        store
            .append_events(std::slice::from_ref(&e4))
            .await
            .unwrap();
        store.append_events(&[]).await.unwrap();

        let events = store.events(p.id).await.unwrap();
        let expected = [request_event(p.id), e1, e2, e3, e4];
        assert_eq!(events.len(), expected.len(), "{events:?}");
        for (got, want) in events.iter().zip(&expected) {
            assert_eq!(got.payment_id, p.id);
            assert_eq!(got.kind, want.kind);
            assert_eq!(got.message, want.message);
            assert_eq!(got.detail, want.detail);
        }
        assert_eq!(
            events[1].detail["big"].as_u64(),
            Some(9_007_199_254_740_993)
        );
        assert!(events.windows(2).all(|w| w[0].id < w[1].id));
        assert!(events
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at));

        let q_events = store.events(q.id).await.unwrap();
        assert_eq!(q_events.len(), 2);
        assert_eq!(q_events[1].kind, EventKind::Verification);
        assert_eq!(q_events[1].detail, json!(["q"]));
        assert!(store.events(PaymentId::new()).await.unwrap().is_empty());
    }

    /// Expiry finds the payments that waited too long (once each), and a
    /// late settlement is written like any change, with its own order update.
    pub async fn expiry_candidates_and_late_settlement(store: Store) {
        let mut shop = new_payment(Provider::Medogram, "09120000001", 150_000);
        shop.order_id = Some(77);
        let (waiting, _) = create_with(&store, shop).await;
        let (elsewhere, _) = create(&store, Provider::Atmos, "7").await;
        let (ended, ended_job) = create(&store, Provider::Medogram, "09120000002").await;
        let c = claim(&store, ended_job, "w1", LONG_LEASE).await;
        let fail = ended
            .change()
            .status(PaymentStatus::Failed, Some("x"))
            .unwrap();
        store
            .finish_job(
                &c,
                &policies(),
                JobFinish {
                    change: Some(fail),
                    ..JobFinish::default()
                },
            )
            .await
            .unwrap();

        let later = now_ms() + 1000;
        let found = |p: Provider, before: i64| {
            let store = store.clone();
            async move { store.expiry_candidates(p, before, 100).await.unwrap() }
        };
        assert_eq!(found(Provider::Medogram, later).await, vec![waiting.id]);
        assert_eq!(found(Provider::Atmos, later).await, vec![elsewhere.id]);
        assert!(found(Provider::Medogram, now_ms() - 60_000)
            .await
            .is_empty());

        // Its expiry job exists: it is not found again.
        let expire = NewJob::once_per_payment(JobPayload::ExpirePayment, waiting.id, &policies());
        let expire_id = expire.id;
        store.enqueue_jobs(&[expire]).await.unwrap();
        assert!(found(Provider::Medogram, later).await.is_empty());

        // The expiry cancels it; the hook queues the order's update.
        let c = claim(&store, expire_id, "w1", LONG_LEASE).await;
        let waiting = payment(&store, waiting.id).await;
        let cancel = waiting
            .change()
            .status(PaymentStatus::Cancelled, Some("expired"))
            .unwrap();
        store
            .finish_job(
                &c,
                &policies(),
                JobFinish {
                    change: Some(cancel),
                    ..JobFinish::default()
                },
            )
            .await
            .unwrap();
        let expired = payment(&store, waiting.id).await;
        assert_eq!(expired.status, PaymentStatus::Cancelled);
        assert_eq!(expired.status_reason.as_deref(), Some("expired"));

        // The gateway confirms later: a late settlement, and a second order update.
        let verify = NewJob::new(verify_payload("555"), Some(waiting.id), &policies());
        let verify_id = verify.id;
        store.enqueue_jobs(&[verify]).await.unwrap();
        let c = claim(&store, verify_id, "w1", LONG_LEASE).await;
        let late = expired
            .change()
            .settle_late()
            .unwrap()
            .gateway_trans_id("555".into());
        store
            .finish_job(
                &c,
                &policies(),
                JobFinish {
                    change: Some(late),
                    ..JobFinish::default()
                },
            )
            .await
            .unwrap();
        let settled = payment(&store, waiting.id).await;
        assert_eq!(settled.status, PaymentStatus::Completed);
        assert_eq!(settled.status_reason.as_deref(), Some("late_settlement"));
        assert_eq!(settled.gateway_trans_id.as_deref(), Some("555"));
        assert!(settled.completed_at.is_some());
        let order_updates = store
            .list_jobs(None, Some(waiting.id), 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.kind == JobKind::UpdateOrder)
            .count();
        assert_eq!(
            order_updates, 2,
            "the late settlement has its own order update"
        );
    }
}

macro_rules! contract_tests {
    ($($(#[$meta:meta])* $contract:ident => $sqlite:ident, $postgres:ident;)*) => {
        $(
            #[tokio::test]
            $(#[$meta])*
            async fn $sqlite() {
                run_sqlite(contracts::$contract).await;
            }

            #[tokio::test]
            $(#[$meta])*
            async fn $postgres() {
                run_postgres(contracts::$contract).await;
            }
        )*
    };
}

contract_tests! {
    a_write_whose_caller_gives_up_is_whole_or_absent =>
        sqlite_a_write_whose_caller_gives_up_is_whole_or_absent,
        postgres_a_write_whose_caller_gives_up_is_whole_or_absent;
    a_stale_change_is_judged_before_a_lost_claim =>
        sqlite_a_stale_change_is_judged_before_a_lost_claim,
        postgres_a_stale_change_is_judged_before_a_lost_claim;
    create_payment_is_atomic =>
        sqlite_create_payment_is_atomic, postgres_create_payment_is_atomic;
    idempotency_key_returns_the_first_payment =>
        sqlite_idempotency_key_returns_the_first_payment,
        postgres_idempotency_key_returns_the_first_payment;
    claim_job_is_fenced_by_its_lease =>
        sqlite_claim_job_is_fenced_by_its_lease, postgres_claim_job_is_fenced_by_its_lease;
    a_lease_is_renewed_only_by_its_holder =>
        sqlite_a_lease_is_renewed_only_by_its_holder,
        postgres_a_lease_is_renewed_only_by_its_holder;
    finish_job_is_all_or_nothing =>
        sqlite_finish_job_is_all_or_nothing, postgres_finish_job_is_all_or_nothing;
    notify_jobs_need_an_enabled_endpoint =>
        sqlite_notify_jobs_need_an_enabled_endpoint,
        postgres_notify_jobs_need_an_enabled_endpoint;
    state_machine_is_enforced_by_the_store =>
        sqlite_state_machine_is_enforced_by_the_store,
        postgres_state_machine_is_enforced_by_the_store;
    retry_dead_and_redrive => sqlite_retry_dead_and_redrive, postgres_retry_dead_and_redrive;
    take_due_for_dispatch_contract =>
        sqlite_take_due_for_dispatch_contract, postgres_take_due_for_dispatch_contract;
    dedupe_of_jobs_and_inbound_messages =>
        sqlite_dedupe_of_jobs_and_inbound_messages,
        postgres_dedupe_of_jobs_and_inbound_messages;
    list_payments_filters_and_paginates =>
        sqlite_list_payments_filters_and_paginates, postgres_list_payments_filters_and_paginates;
    a_finish_claims_the_next_job_for_its_worker =>
        sqlite_a_finish_claims_the_next_job_for_its_worker,
        postgres_a_finish_claims_the_next_job_for_its_worker;
    a_finish_records_the_next_job_it_ran_inside =>
        sqlite_a_finish_records_the_next_job_it_ran_inside,
        postgres_a_finish_records_the_next_job_it_ran_inside;
    a_create_claims_its_first_job_for_the_waiting_process =>
        sqlite_a_create_claims_its_first_job_for_the_waiting_process,
        postgres_a_create_claims_its_first_job_for_the_waiting_process;
    redrive_keeps_old_claims_fenced =>
        sqlite_redrive_keeps_old_claims_fenced, postgres_redrive_keeps_old_claims_fenced;
    api_keys_round_trip => sqlite_api_keys_round_trip, postgres_api_keys_round_trip;
    finish_job_moves_the_order_once =>
        sqlite_finish_job_moves_the_order_once, postgres_finish_job_moves_the_order_once;
    racing_finishes_change_a_payment_once =>
        sqlite_racing_finishes_change_a_payment_once,
        postgres_racing_finishes_change_a_payment_once;
    events_keep_order_and_detail =>
        sqlite_events_keep_order_and_detail, postgres_events_keep_order_and_detail;
    gateway_transactions_settle_in_one_write =>
        sqlite_gateway_transactions_settle_in_one_write,
        postgres_gateway_transactions_settle_in_one_write;
    expiry_candidates_and_late_settlement =>
        sqlite_expiry_candidates_and_late_settlement,
        postgres_expiry_candidates_and_late_settlement;
    refunds_are_written_with_their_effects_in_one_write =>
        sqlite_refunds_are_written_with_their_effects_in_one_write,
        postgres_refunds_are_written_with_their_effects_in_one_write;
}

/// `Idempotency-Key` records (`store/idempotency.rs`).
mod idempotency_contract {
    use paygate_common::store::{Claim, IdempotencyScope, IdempotencyTimes, Store, StoredAnswer};
    use std::time::Duration;

    fn scope(caller: &str, key: &str) -> IdempotencyScope {
        IdempotencyScope {
            caller: caller.into(),
            route: "/v1/payments".into(),
            key: key.into(),
        }
    }

    fn times(ttl_ms: u64, lease_ms: u64) -> IdempotencyTimes {
        IdempotencyTimes {
            ttl: Duration::from_millis(ttl_ms),
            lease: Duration::from_millis(lease_ms),
        }
    }

    async fn run(store: &Store, s: &IdempotencyScope, print: &str, t: IdempotencyTimes) -> i64 {
        match store.claim_idempotency_key(s, print, t).await.unwrap() {
            Claim::Run { generation } => generation,
            other => panic!("expected to run, got {other:?}"),
        }
    }

    pub async fn keys_run_once_then_replay_or_refuse(store: Store) {
        let long = times(60_000, 60_000);
        let claim = |s: IdempotencyScope, print: &'static str, t: IdempotencyTimes| {
            let store = store.clone();
            async move { store.claim_idempotency_key(&s, print, t).await.unwrap() }
        };
        let first = scope("anonymous", "k1");
        let generation = run(&store, &first, "fp1", long).await;
        assert_eq!(claim(first.clone(), "fp1", long).await, Claim::InProgress);
        assert_eq!(claim(first.clone(), "fp2", long).await, Claim::Reused);
        // The same key of another caller is another key.
        run(&store, &scope("key:abc", "k1"), "fp2", long).await;

        let answer = StoredAnswer {
            status: 202,
            headers: vec![("location".into(), "/v1/payments/x".into())],
            body: r#"{"id":"x"}"#.into(),
        };
        store
            .finish_idempotency_key(&first, generation, &answer)
            .await
            .unwrap();
        assert_eq!(
            claim(first.clone(), "fp1", long).await,
            Claim::Replay(answer.clone())
        );
        assert_eq!(claim(first.clone(), "fp2", long).await, Claim::Reused);
        // A finish from a stale generation changes nothing.
        let other = StoredAnswer {
            status: 500,
            ..answer.clone()
        };
        store
            .finish_idempotency_key(&first, generation + 1, &other)
            .await
            .unwrap();
        assert_eq!(
            claim(first.clone(), "fp1", long).await,
            Claim::Replay(answer)
        );

        // Released (an answer not worth keeping): the next repeat runs again,
        // in the same generation (it finds what the first attempt made).
        let released = scope("anonymous", "k2");
        let g = run(&store, &released, "fp", long).await;
        store.release_idempotency_key(&released, g).await.unwrap();
        assert_eq!(
            claim(released.clone(), "fp", long).await,
            Claim::Run { generation: g }
        );
        assert_eq!(claim(released.clone(), "fp", long).await, Claim::InProgress);

        // A holder whose lease ran out (its process died) is taken over, same generation.
        let crashed = scope("anonymous", "k3");
        let g = run(&store, &crashed, "fp", times(60_000, 1)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            claim(crashed.clone(), "fp", long).await,
            Claim::Run { generation: g }
        );
        assert_eq!(claim(crashed.clone(), "fp", long).await, Claim::InProgress);

        // Forgotten after its time: any request runs, in a new generation.
        let old = scope("anonymous", "k4");
        let g = run(&store, &old, "fp", times(1, 60_000)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let fresh = run(&store, &old, "another request", long).await;
        assert_ne!(fresh, g);

        let gone = scope("anonymous", "k5");
        run(&store, &gone, "fp", times(1, 1)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(store.purge_expired_idempotency_keys().await.unwrap() >= 1);
        assert_eq!(
            claim(first, "fp1", long).await,
            Claim::Replay(StoredAnswer {
                status: 202,
                headers: vec![("location".into(), "/v1/payments/x".into())],
                body: r#"{"id":"x"}"#.into(),
            })
        );
    }
}

#[tokio::test]
async fn sqlite_idempotency_keys_run_once_then_replay_or_refuse() {
    run_sqlite(idempotency_contract::keys_run_once_then_replay_or_refuse).await;
}

#[tokio::test]
async fn postgres_idempotency_keys_run_once_then_replay_or_refuse() {
    run_postgres(idempotency_contract::keys_run_once_then_replay_or_refuse).await;
}
