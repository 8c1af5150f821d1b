//! Turning rows into domain values. A row that does not parse is reported as
//! corrupt rather than silently defaulted.

use super::StoreError;
use crate::domain::{
    Amount, Currency, Description, EventKind, JobKind, JobStatus, Payment, PaymentEvent, PaymentId,
    PaymentStatus, Provider,
};
use chrono::{DateTime, TimeZone, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;

/// The payment columns, as a macro so queries stay `&'static str` (sqlx only
/// accepts dynamic SQL through an explicit audit marker).
macro_rules! payment_columns {
    () => {
        "id, provider, merchant_ref, amount_minor, currency, description, status, status_reason, \
         payment_url, gateway_ref, gateway_trans_id, tracking_code, encrypted_user_data, \
         idempotency_key, order_id, created_at, updated_at, completed_at, version"
    };
}
pub(crate) use payment_columns;

/// A stored millisecond timestamp; one chrono cannot represent is a corrupt
/// row, never a stand-in date that would sort and age wrongly.
pub(crate) fn time(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| corrupt("timestamp", &ms.to_string()))
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what}: {value:?}"))
}

pub(crate) fn payment(row: &AnyRow) -> Result<Payment, StoreError> {
    let id: String = row.try_get("id")?;
    let provider: String = row.try_get("provider")?;
    let currency: String = row.try_get("currency")?;
    let status: String = row.try_get("status")?;
    let description: String = row.try_get("description")?;
    let amount: i64 = row.try_get("amount_minor")?;
    Ok(Payment {
        id: PaymentId::parse(&id).ok_or_else(|| corrupt("payment id", &id))?,
        provider: Provider::parse(&provider).ok_or_else(|| corrupt("provider", &provider))?,
        merchant_ref: row.try_get("merchant_ref")?,
        amount: Amount::from_minor(amount).map_err(|_| corrupt("amount", &amount.to_string()))?,
        currency: Currency::parse(&currency).map_err(|_| corrupt("currency", &currency))?,
        description: Description::parse(&description)
            .map_err(|_| corrupt("description", &description))?,
        status: PaymentStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        status_reason: row.try_get("status_reason")?,
        payment_url: row.try_get("payment_url")?,
        gateway_ref: row.try_get("gateway_ref")?,
        gateway_trans_id: row.try_get("gateway_trans_id")?,
        tracking_code: row.try_get("tracking_code")?,
        encrypted_user_data: row.try_get("encrypted_user_data")?,
        idempotency_key: row.try_get("idempotency_key")?,
        order_id: row.try_get("order_id")?,
        created_at: time(row.try_get("created_at")?)?,
        updated_at: time(row.try_get("updated_at")?)?,
        completed_at: row
            .try_get::<Option<i64>, _>("completed_at")?
            .map(time)
            .transpose()?,
        version: row.try_get("version")?,
    })
}

pub(crate) fn event(row: &AnyRow) -> Result<PaymentEvent, StoreError> {
    let payment_id: String = row.try_get("payment_id")?;
    let kind: String = row.try_get("kind")?;
    let detail: String = row.try_get("detail")?;
    Ok(PaymentEvent {
        id: row.try_get("id")?,
        payment_id: PaymentId::parse(&payment_id)
            .ok_or_else(|| corrupt("event payment id", &payment_id))?,
        kind: EventKind::parse(&kind).ok_or_else(|| corrupt("event kind", &kind))?,
        message: row.try_get("message")?,
        detail: serde_json::from_str(&detail).map_err(|_| corrupt("event detail", &detail))?,
        created_at: time(row.try_get("created_at")?)?,
    })
}

pub(crate) fn job_kind(s: &str) -> Result<JobKind, StoreError> {
    JobKind::parse(s).ok_or_else(|| corrupt("job kind", s))
}

pub(crate) fn job_status(s: &str) -> Result<JobStatus, StoreError> {
    JobStatus::parse(s).ok_or_else(|| corrupt("job status", s))
}

/// A job id column.
pub(crate) fn job_id(id: &str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::parse_str(id).map_err(|_| corrupt("job id", id))
}

/// The queue message of a job row, from its id and kind columns.
pub(crate) fn job_message(id: &str, kind: &str) -> Result<crate::domain::JobMessage, StoreError> {
    Ok(crate::domain::JobMessage::new(job_id(id)?, job_kind(kind)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unrepresentable_timestamp_is_corrupt_not_a_stand_in_date() {
        assert!(matches!(time(i64::MAX), Err(StoreError::Corrupt(_))));
        assert!(matches!(time(i64::MIN), Err(StoreError::Corrupt(_))));
        assert_eq!(
            time(1_700_000_000_123).unwrap().timestamp_millis(),
            1_700_000_000_123
        );
    }
}
