//! Creating payments and waiting for the worker: the application logic shared
//! by the seed routes and /v1. Handlers parse; this module persists, dispatches
//! and waits.

use crate::error::{ApiError, ApiResult};
use crate::extract::Fields;
use crate::state::AppState;
use crate::waited_jobs::Ran;
use paygate_common::domain::Checkout;
use paygate_common::domain::{
    Amount, Description, EventKind, MoneyError, NewEvent, Order, Payment, PaymentId, PaymentStatus,
    PaymentType, ProductName, Provider, UserIdentifier,
};
use paygate_common::domain::{JobMessage, JobPayload, NewJob};
use paygate_common::gateways::{InvoiceRequest, Payer};
use paygate_common::payment_watch::Waiter;
use paygate_common::queue::dispatch_all;
use paygate_common::store::{Changeset, CreateOutcome, NewOrder, NewPayment, StoreError};
use std::time::{Duration, Instant};

/// A validated request to pay through medogram (the CrazyMiner flow).
#[derive(Debug, Clone)]
pub struct CrazyMinerPaymentInput {
    pub amount: Amount,
    pub description: Description,
    pub user_identifier: UserIdentifier,
}

impl CrazyMinerPaymentInput {
    /// Validates the seed's body: `amount` (rial, integer), `description`,
    /// `user_identifier`. Nothing is written when this fails.
    pub fn parse(f: &Fields<'_>) -> ApiResult<Self> {
        let amount = f.integer("amount")?;
        let amount = Amount::from_minor(amount).map_err(|e| match e {
            MoneyError::NotPositive => {
                ApiError::invalid_field("amount", "amount must be greater than zero")
            }
            _ => ApiError::invalid_field("amount", e.to_string()),
        })?;
        let min = Provider::Medogram.min_amount();
        if amount.minor() < min {
            return Err(ApiError::bad_request(
                "amount_too_small",
                format!("the gateway accepts at least {min} rial"),
            )
            .with("field", "amount"));
        }
        let description =
            Description::parse(&f.optional_string("description")?.unwrap_or_default())
                .map_err(|e| ApiError::invalid_field("description", e.to_string()))?;
        let user_identifier = UserIdentifier::parse(&f.string("user_identifier")?)
            .map_err(|e| ApiError::invalid_field("user_identifier", e.to_string()))?;
        Ok(CrazyMinerPaymentInput {
            amount,
            description,
            user_identifier,
        })
    }
}

/// A payment a request created (or found by its idempotency key), and how
/// that request follows it when it is going to wait.
pub struct Started {
    pub payment: Payment,
    /// False when the idempotency key was seen before.
    pub created: bool,
    follow: Option<Follow>,
}

/// How a request follows the payment it created, from before the create
/// committed: nothing that changes it afterwards is missed, so the wait
/// needs no first read (docs/priority.md, "The finish hands on the payment").
struct Follow {
    /// Registered with the watch hub before the create.
    waiter: Waiter,
    /// The run of its first jobs in this process, when it runs here.
    ran: Option<Ran>,
}

impl Started {
    /// Waits up to `bound` for the payment URL or a terminal status, as
    /// [`wait_for_payment_url`] does, without reading what the create or the
    /// jobs run here handed over.
    pub async fn wait(self, state: &AppState, bound: Duration) -> ApiResult<Payment> {
        wait_following(state, self.payment, self.follow, bound).await
    }
}

/// Persists the payment with its first event and job in one transaction, then
/// hands the job on: to this process when the request is going to wait `wait`
/// for it and a waited-job slot is free (the create claims it;
/// `crate::waited_jobs`), to the workers' queue otherwise.
pub async fn create_crazyminer_payment(
    state: &AppState,
    input: CrazyMinerPaymentInput,
    idempotency_key: Option<String>,
    wait: Duration,
) -> ApiResult<Started> {
    let id = PaymentId::new();
    // Registered before the create, so a change committed at any time after
    // it wakes this request (a waiter registered later would need a read).
    let waiter = (!wait.is_zero()).then(|| state.watch.watch(id));
    let new = NewPayment {
        id,
        provider: Provider::Medogram,
        merchant_ref: input.user_identifier.as_str().to_string(),
        amount: input.amount,
        currency: Provider::Medogram.currency(),
        description: input.description,
        idempotency_key,
        order_id: None,
    };
    let event =
        NewEvent::new(id, EventKind::Request, "payment requested").detail(serde_json::json!({
            "amount": input.amount.minor(),
            "currency": new.currency.code(),
        }));
    let job = NewJob::once_per_payment(JobPayload::FetchUser, id, &state.settings.retry);
    let mut slot = match &state.waited_jobs {
        Some(jobs) if !wait.is_zero() => jobs.slot(),
        _ => None,
    };
    if let Some(slot) = &mut slot {
        slot.head_start(&new, &job);
    }
    let (outcome, claimed) = match &slot {
        Some(slot) => {
            state
                .store
                .create_payment_claiming_first(&new, event, job, slot.claimant(), slot.lease_ms())
                .await?
        }
        None => (state.store.create_payment(&new, event, job).await?, None),
    };
    match outcome {
        CreateOutcome::Created(payment, messages) => {
            crate::middleware::note_payment(payment.id);
            metrics::counter!("paygate_payments_created_total", "provider" => "medogram")
                .increment(1);
            tracing::info!(payment_id = %payment.id, "payment created");
            dispatch_all(state.queue.as_ref(), &prioritised(messages, wait)).await;
            if !wait.is_zero() {
                let runs_in = if claimed.is_some() {
                    "this_process"
                } else {
                    "workers"
                };
                metrics::counter!("paygate_waited_first_jobs_total", "runs_in" => runs_in)
                    .increment(1);
            }
            let ran = match (slot, claimed) {
                (Some(slot), Some(claim)) => Some(slot.start(claim)),
                _ => None,
            };
            Ok(Started {
                payment,
                created: true,
                follow: waiter.map(|waiter| Follow { waiter, ran }),
            })
        }
        // Another payment than the one `waiter` follows: waiting reads it.
        CreateOutcome::Existing(payment) => Ok(Started {
            payment,
            created: false,
            follow: None,
        }),
    }
}

/// A create's first jobs, marked as work a client waits on when the request
/// is going to wait `wait` for their outcome (docs/priority.md).
fn prioritised(messages: Vec<JobMessage>, wait: Duration) -> Vec<JobMessage> {
    if wait.is_zero() {
        return messages;
    }
    messages.into_iter().map(JobMessage::waited_on).collect()
}

/// How often a waiting request re-reads its payment when no wake-up came: the
/// safety net for an announcement that was lost (a crash right after a
/// commit, Redis restarting). Wake-ups, not this, make the usual answer fast.
pub const SAFETY_REREAD: Duration = Duration::from_millis(500);

/// Waits until the payment has a payment URL or a terminal status, or the
/// bound passes; returns the latest state either way. Woken by the payment's
/// announced changes (`paygate_common::payment_watch`), re-reading every
/// [`SAFETY_REREAD`] without one.
pub async fn wait_for_payment_url(
    state: &AppState,
    payment: Payment,
    bound: Duration,
) -> ApiResult<Payment> {
    wait_following(state, payment, None, bound).await
}

async fn wait_following(
    state: &AppState,
    mut payment: Payment,
    follow: Option<Follow>,
    bound: Duration,
) -> ApiResult<Payment> {
    let awaited = |p: &Payment| p.payment_url.is_some() || p.status.is_terminal();
    if awaited(&payment) || bound.is_zero() {
        return Ok(payment);
    }
    let deadline = Instant::now() + bound;
    // `current`: `payment` is known to be the newest state, so no read.
    let (mut waiter, mut ran, mut current) = match follow {
        // Followed since before the create committed.
        Some(f) => (f.waiter, f.ran, true),
        // Registered before the read: a change committed after `payment` was
        // read, even before this line, is seen by the read or wakes the waiter.
        None => (state.watch.watch(payment.id), None, false),
    };
    loop {
        if !current {
            payment = reload_payment(state, payment.id).await?;
        }
        current = false;
        let now = Instant::now();
        if awaited(&payment) || now >= deadline {
            return Ok(payment);
        }
        match ran.as_mut() {
            // Its jobs run here: their end brings the payment, and until then
            // every wake-up is their own announcement (read for nothing).
            Some(run) => {
                tokio::select! {
                    left = run => {
                        ran = None;
                        if let Ok(Some(p)) = left {
                            if p.id == payment.id && p.version >= payment.version {
                                payment = p;
                                current = true;
                            }
                        }
                    }
                    _ = tokio::time::sleep(deadline - now) => {}
                }
            }
            None => {
                let pause = SAFETY_REREAD.min(deadline - now);
                tokio::select! {
                    _ = waiter.changed() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
}

/// The answer of a seed route whose payment failed while it waited, if it did.
pub fn failed_to_start(p: &Payment) -> Option<ApiError> {
    if !matches!(p.status, PaymentStatus::Failed | PaymentStatus::Cancelled) {
        return None;
    }
    let reason = p.status_reason.clone().unwrap_or_else(|| "failed".into());
    Some(
        ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "payment_failed",
            format!("the payment could not be started: {reason}"),
        )
        .with("reason", reason),
    )
}

/// Parses a payment id from a path; anything that is not a UUID is a 400.
pub fn parse_payment_id(raw: &str) -> ApiResult<PaymentId> {
    PaymentId::parse(raw.trim_end_matches('/'))
        .ok_or_else(|| ApiError::bad_request("invalid_id", "the payment id must be a UUID"))
}

/// The payment's current row, by an id already checked.
pub async fn reload_payment(state: &AppState, id: PaymentId) -> ApiResult<Payment> {
    state
        .store
        .payment(id)
        .await?
        .ok_or_else(|| ApiError::not_found("payment"))
}

pub async fn load_payment(state: &AppState, raw_id: &str) -> ApiResult<Payment> {
    let id = parse_payment_id(raw_id)?;
    crate::middleware::note_payment(id);
    reload_payment(state, id).await
}

/// A validated shop order (the Atmos seed's body).
#[derive(Debug, Clone)]
pub struct OrderInput {
    pub product_name: ProductName,
    pub amount: Amount,
    pub payment_type: PaymentType,
}

impl OrderInput {
    /// `product_name`, `amount` (a decimal in so'm, at most two decimals; a
    /// string like "50.00" or a JSON number), `payment_type`.
    pub fn parse(f: &Fields<'_>) -> ApiResult<Self> {
        let product_name = ProductName::parse(&f.string("product_name")?)
            .map_err(|e| ApiError::invalid_field("product_name", e.to_string()))?;
        let amount_text = match f.0.get("amount") {
            None | Some(serde_json::Value::Null) => {
                return Err(ApiError::invalid_field("amount", "amount is required"))
            }
            Some(serde_json::Value::String(s)) => s.clone(),
            // A JSON number's shortest text is the number the client wrote.
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "amount",
                    "amount must be a decimal such as \"50.00\"",
                ))
            }
        };
        let amount = Amount::parse_decimal(&amount_text, Provider::Atmos.currency())
            .map_err(|e| ApiError::invalid_field("amount", e.to_string()))?;
        let min = Provider::Atmos.min_amount();
        if amount.minor() < min {
            return Err(ApiError::bad_request(
                "amount_too_small",
                format!(
                    "the smallest order is {} so'm",
                    Amount::from_minor(min)
                        .map(|a| a.to_decimal_string(Provider::Atmos.currency()))
                        .unwrap_or_default()
                ),
            )
            .with("field", "amount"));
        }
        let raw_type = f.string("payment_type")?;
        let payment_type = PaymentType::parse(&raw_type).ok_or_else(|| {
            ApiError::invalid_field(
                "payment_type",
                "payment_type must be one of: atmos, payme, click",
            )
        })?;
        Ok(OrderInput {
            product_name,
            amount,
            payment_type,
        })
    }
}

/// Creates the order and its payment, atomically with the first job
/// (`create_invoice`), and dispatches it. With a payment-level idempotency
/// key (see `crate::idempotency`), an order created with it before is
/// returned instead.
pub async fn create_order(
    state: &AppState,
    input: OrderInput,
    idempotency_key: Option<String>,
    wait: Duration,
) -> ApiResult<(Order, Payment)> {
    let provider = match input.payment_type.provider() {
        Some(p) if state.gateways.has(p) => p,
        _ => {
            return Err(ApiError::bad_request(
                "payment_type_not_configured",
                format!(
                    "payment_type {} is not configured on this paygate",
                    input.payment_type.as_str()
                ),
            )
            .with("field", "payment_type"))
        }
    };
    if let Some(key) = &idempotency_key {
        if let Some(existing) = state.store.order_by_idempotency_key(key).await? {
            return Ok(existing);
        }
    }
    let id = PaymentId::new();
    let payment = NewPayment {
        id,
        provider,
        merchant_ref: String::new(),
        amount: input.amount,
        currency: provider.currency(),
        description: Description::parse(input.product_name.as_str()).unwrap_or_default(),
        idempotency_key: idempotency_key.clone(),
        order_id: None,
    };
    let event = NewEvent::new(id, EventKind::Request, "order payment requested").detail(
        serde_json::json!({
            "amount": input.amount.minor(),
            "currency": provider.currency().code(),
            "payment_type": input.payment_type.as_str(),
        }),
    );
    let job = NewJob::once_per_payment(JobPayload::CreateInvoice, id, &state.settings.retry);
    let order = NewOrder {
        product_name: input.product_name,
        amount: input.amount,
        payment_type: input.payment_type,
    };
    let created = state
        .store
        .create_order(&order, payment, event, Some(job))
        .await;
    let (order, payment, messages) = match (created, idempotency_key) {
        (Err(StoreError::Taken(_)), Some(key)) => {
            // Lost a race with the same key: the winner's order is the answer.
            return state
                .store
                .order_by_idempotency_key(&key)
                .await?
                .ok_or_else(|| ApiError::from(StoreError::NotFound));
        }
        (created, _) => created?,
    };
    crate::middleware::note_payment(payment.id);
    metrics::counter!("paygate_payments_created_total", "provider" => provider.as_str())
        .increment(1);
    tracing::info!(payment_id = %payment.id, order_id = order.id, "order created");
    dispatch_all(state.queue.as_ref(), &prioritised(messages, wait)).await;
    let payment = match provider.descriptor().checkout {
        Checkout::Link => checkout_link_now(state, payment, order.access_token.as_deref()).await?,
        Checkout::Invoice => payment,
    };
    Ok((order, payment))
}

/// For gateways whose checkout link is built locally (Payme, Click), builds it
/// now, so the order is answered with its link at once. The order's
/// `create_invoice` job, committed with it, does the same if this process
/// stops first (whichever commits first wins; the other finds the payment
/// moved on). A failure here is logged and left to that job.
async fn checkout_link_now(
    state: &AppState,
    payment: Payment,
    order_token: Option<&str>,
) -> ApiResult<Payment> {
    let Some(gateway) = state.gateways.get(payment.provider) else {
        return Ok(payment);
    };
    let request = InvoiceRequest {
        payment_id: payment.id,
        amount: payment.amount,
        description: payment.description.as_str().to_string(),
        payer: Payer::default(),
        callback_url: state.return_urls.for_payment(&payment, order_token),
        account: payment.merchant_ref.clone(),
    };
    let invoice = match gateway.create_invoice(&request).await {
        Ok(invoice) => invoice,
        Err(e) => {
            tracing::warn!(payment_id = %payment.id, error = %e, "checkout link not built; the invoice job will retry");
            return Ok(payment);
        }
    };
    let Ok((change, events)) = payment.invoiced(invoice.payment_url, invoice.gateway_ref) else {
        return Ok(payment);
    };
    let write = Changeset::from_api()
        .change_payment(change, &state.settings.retry)
        .events(events);
    match state.store.commit(&write).await {
        Ok(_) => state.announcer.changed(payment.id),
        Err(StoreError::Conflict) => {}
        Err(e) => {
            tracing::warn!(payment_id = %payment.id, error = %e, "checkout link not stored; the invoice job will retry");
            return Ok(payment);
        }
    }
    state
        .store
        .payment(payment.id)
        .await?
        .ok_or_else(|| ApiError::not_found("payment"))
}
