//! Shop orders. An order and the payment that pays it are created together,
//! in one transaction with the payment's first event and job.

use super::changeset::{Changeset, Committed};
use super::rows;
use super::{Lane, Store, StoreError, StoreResult};
use crate::domain::Amount;
use crate::domain::{
    JobMessage, NewEvent, NewJob, Order, OrderStatus, Payment, PaymentId, PaymentType, ProductName,
};
use crate::store::NewPayment;
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct NewOrder {
    pub product_name: ProductName,
    pub amount: Amount,
    pub payment_type: PaymentType,
}

fn order(row: &AnyRow) -> StoreResult<Order> {
    let corrupt = |what: &str, v: &str| StoreError::Corrupt(format!("{what}: {v:?}"));
    let name: String = row.try_get("product_name")?;
    let amount: i64 = row.try_get("amount_minor")?;
    let ptype: String = row.try_get("payment_type")?;
    let status: String = row.try_get("status")?;
    let payment_id: Option<String> = row.try_get::<Option<String>, _>("payment_id")?;
    Ok(Order {
        id: row.try_get("id")?,
        product_name: ProductName::parse(&name).map_err(|_| corrupt("product name", &name))?,
        amount: Amount::from_minor(amount)
            .map_err(|_| corrupt("order amount", &amount.to_string()))?,
        payment_type: PaymentType::parse(&ptype).ok_or_else(|| corrupt("payment type", &ptype))?,
        status: OrderStatus::parse(&status).ok_or_else(|| corrupt("order status", &status))?,
        payment_id: payment_id
            .map(|p: String| PaymentId::parse(&p).ok_or_else(|| corrupt("order payment id", &p)))
            .transpose()?,
        access_token: row.try_get::<Option<String>, _>("access_token")?,
        created_at: rows::time(row.try_get("created_at")?)?,
        updated_at: rows::time(row.try_get("updated_at")?)?,
    })
}

/// An order's read token: 256 random bits, hex. Reading an order needs it
/// (or an API key), so orders cannot be read by counting their ids.
pub(crate) fn new_access_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

const ORDER_COLUMNS: &str =
    "id, product_name, amount_minor, payment_type, status, payment_id, access_token, created_at, updated_at";

impl Store {
    /// Creates the order, its payment (whose merchant reference is the order
    /// id), the payment's first event and its first job (if it needs one),
    /// atomically.
    pub async fn create_order(
        &self,
        new: &NewOrder,
        payment: NewPayment,
        event: NewEvent,
        first_job: Option<NewJob>,
    ) -> StoreResult<(Order, Payment, Vec<JobMessage>)> {
        let cs = Changeset::from_api()
            .create_order(new.clone(), payment)
            .event(event)
            .jobs(first_job);
        match self.commit_in(&cs, Lane::Ack).await? {
            Committed::Applied(a) => Ok((
                a.order.ok_or(StoreError::NotFound)?,
                a.payment.ok_or(StoreError::NotFound)?,
                a.messages,
            )),
            Committed::Duplicate => Err(StoreError::Corrupt(
                "an API changeset cannot be a duplicate".into(),
            )),
        }
    }

    pub async fn order(&self, id: i64) -> StoreResult<Option<Order>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(order).transpose()
    }
}

impl Store {
    /// The order (and its payment) whose payment was created with this
    /// payment-level idempotency key, if any.
    pub async fn order_by_idempotency_key(
        &self,
        key: &str,
    ) -> StoreResult<Option<(Order, Payment)>> {
        let Some(payment) = self.payment_by_idempotency_key(key).await? else {
            return Ok(None);
        };
        let Some(order_id) = payment.order_id else {
            return Ok(None);
        };
        Ok(self.order(order_id).await?.map(|o| (o, payment)))
    }
}
