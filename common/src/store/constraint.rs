//! Unique-constraint violations, told apart by name. A violation of one
//! constraint means something specific (a lost idempotency race, a gateway id
//! already taken); any other database error must not be mistaken for it.

/// The unique constraints whose violation callers act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueKey {
    /// `payments_idempotency_key`: another create with the same key won.
    PaymentIdempotencyKey,
    /// `payments_gateway_ref`: another payment holds this gateway id.
    PaymentGatewayRef,
    /// `gateway_transactions_external`: this gateway transaction exists already.
    GatewayTransaction,
    /// `refunds_idempotency`: this caller asked for a refund of this payment
    /// with this key before.
    RefundIdempotencyKey,
    /// `refunds_live`: the payment has a refund that is not failed.
    RefundLive,
}

impl UniqueKey {
    /// PostgreSQL's constraint (index) name, and SQLite's "table.column, …"
    /// list from its message ("UNIQUE constraint failed: payments.idempotency_key").
    const NAMES: [(UniqueKey, &'static str, &'static str); 5] = [
        (
            UniqueKey::PaymentIdempotencyKey,
            "payments_idempotency_key",
            "payments.idempotency_key",
        ),
        (
            UniqueKey::PaymentGatewayRef,
            "payments_gateway_ref",
            "payments.provider, payments.gateway_ref",
        ),
        (
            UniqueKey::GatewayTransaction,
            "gateway_transactions_external",
            "gateway_transactions.provider, gateway_transactions.external_id",
        ),
        (
            UniqueKey::RefundIdempotencyKey,
            "refunds_idempotency",
            "refunds.payment_id, refunds.caller, refunds.idempotency_key",
        ),
        (UniqueKey::RefundLive, "refunds_live", "refunds.payment_id"),
    ];
}

/// Which known unique constraint `e` violated, if it is such a violation.
pub(crate) fn violated(e: &sqlx::Error) -> Option<UniqueKey> {
    let db = e.as_database_error()?;
    if !db.is_unique_violation() {
        return None;
    }
    let constraint = db.constraint();
    let message = db.message();
    UniqueKey::NAMES
        .iter()
        .find(|(_, pg, sqlite)| {
            constraint == Some(*pg)
                || message
                    .strip_prefix("UNIQUE constraint failed: ")
                    .is_some_and(|cols| cols == *sqlite)
        })
        .map(|(key, _, _)| *key)
}
