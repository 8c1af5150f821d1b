//! Shop orders. An order and the payment that pays it are created together,
//! in one transaction with the payment's first event and job.

use super::jobs::{insert_job, NewJob};
use super::payments::{insert_event, NewPayment};
use super::rows;
use super::{now_ms, Lane, Store, StoreError, StoreResult};
use crate::domain::Amount;
use crate::domain::{
    JobMessage, NewEvent, Order, OrderStatus, Payment, PaymentId, PaymentType, ProductName,
};
use sqlx::any::{Any, AnyRow};
use sqlx::{Row, Transaction};

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
        created_at: rows::time(row.try_get("created_at")?),
        updated_at: rows::time(row.try_get("updated_at")?),
    })
}

const ORDER_COLUMNS: &str =
    "id, product_name, amount_minor, payment_type, status, payment_id, access_token, created_at, updated_at";

impl Store {
    /// Creates the order, its payment (whose merchant reference is the order
    /// id), the payment's first event and first job, atomically. `payment`'s
    /// `merchant_ref` and `order_id` are filled in here.
    pub async fn create_order(
        &self,
        new: &NewOrder,
        mut payment: NewPayment,
        event: NewEvent,
        first_job: NewJob,
    ) -> StoreResult<(Order, Payment, Vec<JobMessage>)> {
        let now = now_ms();
        let writer = self.writer(Lane::Ack).await;
        let mut tx = writer.begin().await?;
        let row = sqlx::query(
            "INSERT INTO orders (product_name, amount_minor, payment_type, status, payment_id, \
             created_at, updated_at, access_token) VALUES ($1, $2, $3, 'pending', $4, $5, $5, $6) \
             RETURNING id",
        )
        .bind(new.product_name.as_str())
        .bind(new.amount.minor())
        .bind(new.payment_type.as_str())
        .bind(payment.id.to_string())
        .bind(now)
        .bind(hex::encode(rand::random::<[u8; 32]>()))
        .fetch_one(&mut *tx)
        .await?;
        let order_id: i64 = row.try_get("id")?;
        payment.merchant_ref = order_id.to_string();
        payment.order_id = Some(order_id);
        super::payments::insert_payment(&mut tx, &payment, now).await?;
        insert_event(&mut tx, &event, now).await?;
        let messages = insert_job(&mut tx, &first_job, now)
            .await?
            .into_iter()
            .collect();
        tx.commit().await?;
        // The re-reads go through the read pool; the writer's turn ends here.
        drop(writer);
        let order = self.order(order_id).await?.ok_or(StoreError::NotFound)?;
        let payment = self
            .payment(payment.id)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok((order, payment, messages))
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

/// Moves a pending order to `to`. A second application (a repeated job) finds
/// the order already moved and changes nothing.
pub(crate) async fn apply_order_status(
    tx: &mut Transaction<'_, Any>,
    order_id: i64,
    to: OrderStatus,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = 'pending'",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(order_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
