//! The shapes the routes read and answer, for the OpenAPI document. The
//! handlers build their JSON with `serde_json::json!` (the seed's shapes are
//! kept exactly), so these types describe those bodies; the schemathesis run
//! (`scripts/schemathesis.sh`) checks every answer against them.

#![allow(dead_code)] // only read by the `ToSchema` derive

use serde_json::Value;
use utoipa::ToSchema;

/// Every error: `{"error": {"code": "...", "message": "..."}}`, sometimes with
/// more members (the `field` at fault, a `transaction_id`, `reason`, `hint`).
#[derive(ToSchema)]
#[schema(example = json!({"error": {"code": "invalid_field", "message": "amount is required", "field": "amount"}}))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    /// A stable machine code.
    pub code: ErrorCode,
    /// For people; wording may change.
    pub message: String,
    /// The request field at fault (`invalid_field`, `amount_too_small`).
    pub field: Option<String>,
}

/// The stable error codes.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidField,
    InvalidJson,
    InvalidBody,
    InvalidQuery,
    InvalidId,
    InvalidRequest,
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
    IdempotencyKeyInUse,
    AmountTooSmall,
    ProviderNotSupported,
    PaymentTypeNotConfigured,
    PaymentFailed,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    JobNotRedrivable,
    UnsupportedMediaType,
    PayloadTooLarge,
    LengthRequired,
    RequestTimeout,
    RateLimited,
    SourceNotAllowed,
    ServiceUnavailable,
    InternalError,
    // Refunds (`RefundRefusal::code`).
    RefundNotSupported,
    RefundInGatewayCabinet,
    PaymentNotRefundable,
    AmountExceedsRemaining,
    PartialRefundNotSupported,
    InvalidAmount,
    // Webhook endpoints.
    EndpointManagedByConfig,
    MessageNotRedrivable,
}

/// An amount as the seed takes it: a whole number, or a string of digits.
#[derive(ToSchema, serde::Serialize)]
#[serde(untagged)]
#[schema(example = 150000)]
pub enum WholeAmount {
    Integer(i64),
    Digits(String),
}

/// `POST /crazyminer/payment/create/` (the seed's body).
#[derive(ToSchema)]
#[schema(example = json!({"amount": 150000, "description": "Premium plan", "user_identifier": "09123456789"}))]
pub struct SeedPaymentRequest {
    /// Rial, a whole number (at least the gateway's minimum).
    pub amount: WholeAmount,
    pub description: Option<String>,
    /// The payer's id at the main server (the seed's phone format by default).
    pub user_identifier: String,
}

/// `POST /v1/payments`: the seed's body, with an optional provider and currency.
#[derive(ToSchema)]
#[schema(example = json!({"amount": 150000, "description": "Premium plan", "user_identifier": "09123456789", "currency": "IRR"}))]
pub struct PaymentRequest {
    /// Minor units of the currency, a whole number.
    pub amount: WholeAmount,
    pub description: Option<String>,
    pub user_identifier: String,
    /// `medogram` (the default); other providers take payments through orders.
    pub provider: Option<String>,
    /// `IRR` (the default).
    pub currency: Option<String>,
}

/// The seed's created payment.
#[derive(ToSchema)]
#[schema(example = json!({"transaction_id": "0192f0c4-8a53-7cc2-b4c5-2f0d1a1e7e11", "payment_url": "https://gateway.example/pay/abc", "amount": 150000, "status": "processing", "status_display": "در حال پردازش"}))]
pub struct SeedPayment {
    pub transaction_id: String,
    pub payment_url: Option<String>,
    pub amount: i64,
    pub status: String,
    pub status_display: String,
}

/// `GET /crazyminer/payment/status/{id}/`.
#[derive(ToSchema)]
pub struct SeedStatus {
    pub transaction_id: String,
    pub status: String,
    pub status_display: String,
    pub amount: i64,
    pub gateway_tracking_code: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
}

/// One payment of the seed's list.
#[derive(ToSchema)]
pub struct SeedListItem {
    pub transaction_id: String,
    pub status: String,
    pub status_display: String,
    pub amount: i64,
    pub gateway_tracking_code: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
    pub description: String,
    pub user_identifier: String,
    pub payment_url: Option<String>,
    pub status_reason: Option<String>,
}

/// A DRF-style page, newest first.
#[derive(ToSchema)]
pub struct SeedList {
    pub count: i64,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<SeedListItem>,
}

#[derive(ToSchema, serde::Serialize)]
pub struct PaymentLinks {
    #[serde(rename = "self")]
    pub self_: String,
    pub events: String,
}

/// A payment (`/v1`).
#[derive(ToSchema)]
#[schema(example = json!({"id": "0192f0c4-8a53-7cc2-b4c5-2f0d1a1e7e11", "provider": "medogram", "status": "pending", "status_display": "Pending", "status_reason": null, "amount": 150000, "currency": "IRR", "description": "Premium plan", "payment_url": null, "tracking_code": null, "created_at": "2026-01-31T10:00:00.000Z", "updated_at": "2026-01-31T10:00:00.000Z", "completed_at": null, "links": {"self": "/v1/payments/0192f0c4-8a53-7cc2-b4c5-2f0d1a1e7e11", "events": "/v1/payments/0192f0c4-8a53-7cc2-b4c5-2f0d1a1e7e11/events"}}))]
pub struct Payment {
    pub id: String,
    pub provider: String,
    pub status: String,
    pub status_display: String,
    pub status_reason: Option<String>,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    pub description: String,
    pub payment_url: Option<String>,
    pub tracking_code: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub completed_at: Option<String>,
    pub links: PaymentLinks,
}

/// A payment's activity log.
#[derive(ToSchema)]
pub struct PaymentEvents {
    pub payment_id: String,
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
}

/// The job ledger (admin).
#[derive(ToSchema)]
pub struct Jobs {
    #[schema(value_type = Vec<Object>)]
    pub jobs: Vec<Value>,
}

/// A job put back in the queue.
#[derive(ToSchema)]
pub struct Redriven {
    pub job_id: String,
    pub status: String,
}

/// A decimal amount: `"50.00"` or a JSON number with at most two decimals.
#[derive(ToSchema, serde::Serialize)]
#[serde(untagged)]
#[schema(example = "50.00")]
pub enum DecimalAmount {
    Text(String),
    Number(f64),
}

/// `POST /api/orders/create`, `POST /v1/orders` (the shop seed's body).
#[derive(ToSchema)]
#[schema(example = json!({"product_name": "Tea", "amount": "50.00", "payment_type": "atmos"}))]
pub struct OrderRequest {
    pub product_name: String,
    /// So'm, at most two decimals.
    pub amount: DecimalAmount,
    /// `atmos`, `payme` or `click` (as configured).
    pub payment_type: String,
}

/// The shop seed's created order.
#[derive(ToSchema)]
pub struct SeedOrder {
    pub order_id: i64,
    pub payment_url: Option<String>,
    pub payment_type: String,
    pub amount: String,
    pub status: String,
    /// Read the order with `?token=` (shown once, here).
    pub order_token: Option<String>,
}

/// An order.
#[derive(ToSchema)]
pub struct Order {
    pub order_id: i64,
    pub product_name: String,
    pub amount: String,
    pub amount_tiyin: i64,
    pub payment_type: String,
    pub status: String,
    pub payment_url: Option<String>,
    pub payment: Option<Payment>,
    pub created_at: String,
    pub updated_at: String,
    /// Only in the answer that created the order.
    pub order_token: Option<String>,
}

#[derive(ToSchema)]
pub struct Health {
    pub status: String,
}

#[derive(ToSchema)]
pub struct ReadinessChecks {
    pub database: String,
    pub queue: String,
}

#[derive(ToSchema)]
pub struct Readiness {
    pub status: String,
    pub checks: ReadinessChecks,
    pub queue_backend: String,
}

/// `POST /v1/payments/{id}/refunds`: both members optional; no body at all
/// refunds what is left of the payment.
#[derive(ToSchema)]
#[schema(example = json!({"amount": 5000, "reason": "damaged on arrival"}))]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// Minor units, greater than zero; absent: all that is left to refund.
    #[schema(minimum = 1)]
    pub amount: Option<i64>,
    /// At most 255 characters, no control characters.
    #[schema(max_length = 255)]
    pub reason: Option<String>,
}

#[derive(ToSchema)]
pub struct RefundLinks {
    pub payment: String,
    pub refunds: String,
}

/// A refund.
#[derive(ToSchema)]
#[schema(example = json!({"id": "0192f0c4-9b10-7cc2-b4c5-2f0d1a1e7e12", "payment_id": "0192f0c4-8a53-7cc2-b4c5-2f0d1a1e7e11", "amount": 5000, "currency": "UZS", "status": "requested", "reason": "damaged on arrival", "failure_reason": null, "gateway_ref": null, "created_at": "2026-01-31T10:00:00.000Z", "updated_at": "2026-01-31T10:00:00.000Z", "links": {"payment": "/v1/payments/0192f0c4-8a53-7cc2-b4c5-2f0d1a1e7e11", "refunds": "/v1/payments/0192f0c4-8a53-7cc2-b4c5-2f0d1a1e7e11/refunds"}}))]
pub struct Refund {
    pub id: String,
    pub payment_id: String,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    /// `requested`, `succeeded` or `failed`.
    pub status: String,
    pub reason: Option<String>,
    pub failure_reason: Option<String>,
    /// The gateway's reference for the reversal, once it answered.
    pub gateway_ref: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub links: RefundLinks,
}

/// A payment's refunds, oldest first.
#[derive(ToSchema)]
pub struct Refunds {
    pub payment_id: String,
    pub refunds: Vec<Refund>,
}

/// `POST /v1/webhook-endpoints`.
#[derive(ToSchema)]
#[schema(example = json!({"url": "https://shop.example/hooks/paygate", "description": "orders service", "event_types": ["payment.completed", "payment.refunded"]}))]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointRequest {
    /// http:// or https://, with a host, without credentials; at most 2000 characters.
    #[schema(max_length = 2000)]
    pub url: String,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// The events to send; empty or absent: every event.
    pub event_types: Option<Vec<WebhookEventType>>,
}

/// `PATCH /v1/webhook-endpoints/{id}`: only the members given change.
#[derive(ToSchema)]
#[schema(example = json!({"enabled": false}))]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointPatch {
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// Empty: every event.
    pub event_types: Option<Vec<WebhookEventType>>,
    /// `false` stops deliveries; `true` resumes them (and clears `disabled_reason`).
    pub enabled: Option<bool>,
}

/// The events a merchant may be sent (`EventType`).
#[derive(ToSchema)]
pub enum WebhookEventType {
    #[schema(rename = "payment.processing")]
    PaymentProcessing,
    #[schema(rename = "payment.completed")]
    PaymentCompleted,
    #[schema(rename = "payment.failed")]
    PaymentFailed,
    #[schema(rename = "payment.cancelled")]
    PaymentCancelled,
    #[schema(rename = "payment.refunded")]
    PaymentRefunded,
    #[schema(rename = "order.paid")]
    OrderPaid,
    #[schema(rename = "order.cancelled")]
    OrderCancelled,
}

/// A webhook endpoint, without its secret (listings, show, patch).
#[derive(ToSchema)]
pub struct WebhookEndpoint {
    /// `ep_…`, or `ep_config` for the endpoint `PAYGATE_WEBHOOK_URL` configures.
    pub id: String,
    pub url: String,
    pub description: String,
    /// Empty: every event.
    pub event_types: Vec<WebhookEventType>,
    /// `enabled` or `disabled`.
    pub status: String,
    pub disabled_reason: Option<String>,
    /// Changed only through the environment, not through this API.
    pub managed_by_config: bool,
    pub last_success_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A webhook endpoint with its signing secret: only the answers of create
/// and rotate-secret carry it; keep it, it is not shown again.
#[derive(ToSchema)]
pub struct WebhookEndpointWithSecret {
    #[schema(inline)]
    #[serde(flatten)]
    pub endpoint: WebhookEndpoint,
    /// The signing secret (`whsec_…`).
    pub secret: String,
    /// After a rotation: until when deliveries are also signed with the old secret.
    pub previous_secret_expires_at: Option<String>,
}

#[derive(ToSchema)]
pub struct WebhookEndpoints {
    pub endpoints: Vec<WebhookEndpoint>,
}

/// One delivery attempt.
#[derive(ToSchema)]
pub struct WebhookAttempt {
    pub message_id: String,
    /// 1 for the first attempt of a message.
    pub attempt: i64,
    /// `delivered`, `failed`, `exhausted`, `gone` or `error`.
    pub outcome: String,
    /// The merchant's HTTP status, when it answered.
    pub status_code: Option<i64>,
    pub error: Option<String>,
    /// The start of the merchant's answer (at most 1 KiB).
    pub response: String,
    pub latency_ms: i64,
    pub created_at: String,
}

/// An endpoint's delivery attempts, newest first.
#[derive(ToSchema)]
pub struct WebhookAttempts {
    pub endpoint_id: String,
    pub attempts: Vec<WebhookAttempt>,
}

/// `POST /v1/webhook-endpoints/{id}/redrive`.
#[derive(ToSchema)]
#[schema(example = json!({"since": "2026-01-31T00:00:00Z"}))]
#[serde(deny_unknown_fields)]
pub struct WebhookRedriveRequest {
    /// RFC 3339: the failed messages created since then are sent again.
    #[schema(format = DateTime)]
    pub since: String,
}

/// Messages queued for delivery again.
#[derive(ToSchema)]
pub struct WebhookRedriven {
    pub redriven: i64,
    pub message_ids: Vec<String>,
}
