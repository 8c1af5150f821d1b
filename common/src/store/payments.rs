//! Payments and their activity log.

use super::changeset::{Changeset, Committed, NextClaim};
use super::jobs::ClaimedJob;
use super::rows::{self, payment_columns};
use super::{now_ms, Lane, Store, StoreError, StoreResult, UniqueKey};
use crate::domain::{
    Amount, Currency, Description, JobMessage, NewEvent, NewJob, Payment, PaymentEvent, PaymentId,
    PaymentStatus, Provider,
};
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct NewPayment {
    pub id: PaymentId,
    pub provider: Provider,
    pub merchant_ref: String,
    pub amount: Amount,
    pub currency: Currency,
    pub description: Description,
    pub idempotency_key: Option<String>,
    pub order_id: Option<i64>,
}

#[derive(Debug)]
pub enum CreateOutcome {
    /// Persisted together with its first event and job; dispatch these messages.
    Created(Payment, Vec<JobMessage>),
    /// The idempotency key was used before: this is the payment it created.
    Existing(Payment),
}

#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub provider: Option<Provider>,
    pub status: Option<PaymentStatus>,
    pub created_from_ms: Option<i64>,
    pub created_to_ms: Option<i64>,
    pub merchant_ref: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

impl Store {
    /// Writes the payment, its `request` event and its first job in one
    /// changeset: either all of it is durable, or none of it. A repeated
    /// idempotency key returns the payment it created.
    pub async fn create_payment(
        &self,
        new: &NewPayment,
        event: NewEvent,
        first_job: NewJob,
    ) -> StoreResult<CreateOutcome> {
        Ok(self.create(new, event, first_job, None).await?.0)
    }

    /// [`Store::create_payment`], with the first job inserted already claimed
    /// by `claimant` (attempt 1, leased for `lease_ms`) instead of queued:
    /// the caller runs it itself (docs/priority.md, "The waited job runs
    /// where its client waits"). The claim comes back when the payment is
    /// new; a repeated idempotency key gives the existing payment and none.
    pub async fn create_payment_claiming_first(
        &self,
        new: &NewPayment,
        event: NewEvent,
        first_job: NewJob,
        claimant: &str,
        lease_ms: i64,
    ) -> StoreResult<(CreateOutcome, Option<ClaimedJob>)> {
        let created_at_ms = now_ms();
        let job = first_job.clone();
        let claim = NextClaim {
            job_id: job.id,
            lease_until_ms: created_at_ms + lease_ms,
        };
        let (outcome, claimed) = self
            .create(new, event, first_job, Some((claimant, claim)))
            .await?;
        let claimed = match (&outcome, claimed) {
            (CreateOutcome::Created(payment, _), Some(id)) if id == job.id => Some(ClaimedJob {
                id,
                kind: job.kind(),
                payment_id: job.payment_id,
                payment: Some(payment.clone()),
                payload: Ok(job.payload),
                attempt: 1,
                max_attempts: job.max_attempts,
                worker: claimant.to_string(),
                created_at_ms,
            }),
            _ => None,
        };
        Ok((outcome, claimed))
    }

    async fn create(
        &self,
        new: &NewPayment,
        event: NewEvent,
        first_job: NewJob,
        claim: Option<(&str, NextClaim)>,
    ) -> StoreResult<(CreateOutcome, Option<uuid::Uuid>)> {
        if let Some(key) = &new.idempotency_key {
            if let Some(existing) = self.payment_by_idempotency_key(key).await? {
                return Ok((CreateOutcome::Existing(existing), None));
            }
        }
        let mut cs = Changeset::from_api()
            .create_payment(new.clone())
            .event(event)
            .job(first_job);
        if let Some((claimant, claim)) = claim {
            cs = cs.claimed_by(claimant, claim);
        }
        match self.commit_in(&cs, Lane::Ack).await {
            Ok(Committed::Applied(applied)) => {
                let payment = applied.payment.ok_or(StoreError::NotFound)?;
                Ok((
                    CreateOutcome::Created(payment, applied.messages),
                    applied.claimed_next,
                ))
            }
            Ok(Committed::Duplicate) => Err(StoreError::Corrupt(
                "an API changeset cannot be a duplicate".into(),
            )),
            Err(StoreError::Taken(UniqueKey::PaymentIdempotencyKey)) => {
                // Lost a race with the same idempotency key.
                let key = new.idempotency_key.as_deref().unwrap_or_default();
                self.payment_by_idempotency_key(key)
                    .await?
                    .map(|p| (CreateOutcome::Existing(p), None))
                    .ok_or(StoreError::Taken(UniqueKey::PaymentIdempotencyKey))
            }
            Err(e) => Err(e),
        }
    }

    pub async fn payment(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
        let sql = concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments WHERE id = $1"
        );
        let row = sqlx::query(sql)
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(rows::payment).transpose()
    }

    pub async fn payment_by_idempotency_key(&self, key: &str) -> StoreResult<Option<Payment>> {
        let sql = concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments WHERE idempotency_key = $1"
        );
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(rows::payment).transpose()
    }

    /// Finds the payment a gateway callback talks about by the gateway's id.
    pub async fn payment_by_gateway_ref(
        &self,
        provider: Provider,
        gateway_ref: &str,
    ) -> StoreResult<Option<Payment>> {
        let sql = concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments WHERE provider = $1 AND gateway_ref = $2"
        );
        let row = sqlx::query(sql)
            .bind(provider.as_str())
            .bind(gateway_ref)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(rows::payment).transpose()
    }

    /// Newest first, with the total count for pagination.
    pub async fn list_payments(&self, f: &PaymentFilter) -> StoreResult<(i64, Vec<Payment>)> {
        // Placeholders are numbered in the order conditions are added.
        let mut conds: Vec<String> = Vec::new();
        let mut texts: Vec<String> = Vec::new();
        let mut ints: Vec<(usize, i64)> = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if let Some(p) = f.provider {
            let i = next();
            conds.push(format!("provider = ${i}"));
            texts.push(p.as_str().to_string());
        }
        if let Some(s) = f.status {
            let i = next();
            conds.push(format!("status = ${i}"));
            texts.push(s.as_str().to_string());
        }
        if let Some(r) = &f.merchant_ref {
            let i = next();
            conds.push(format!("merchant_ref = ${i}"));
            texts.push(r.clone());
        }
        let text_count = texts.len();
        if let Some(from) = f.created_from_ms {
            let i = next();
            conds.push(format!("created_at >= ${i}"));
            ints.push((i, from));
        }
        if let Some(to) = f.created_to_ms {
            let i = next();
            conds.push(format!("created_at < ${i}"));
            ints.push((i, to));
        }
        let where_sql = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        debug_assert_eq!(text_count, texts.len());
        let count_sql = format!("SELECT COUNT(*) AS n FROM payments {where_sql}");
        // Built only from fixed fragments above; values are bound, never spliced.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(count_sql));
        for t in &texts {
            q = q.bind(t.clone());
        }
        for (_, v) in &ints {
            q = q.bind(*v);
        }
        let total: i64 = q.fetch_one(self.pool()).await?.try_get("n")?;

        let limit_i = ints.len() + texts.len() + 1;
        let list_sql = format!(
            "SELECT {} FROM payments {where_sql} \
             ORDER BY created_at DESC, id DESC LIMIT ${limit_i} OFFSET ${}",
            payment_columns!(),
            limit_i + 1
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(list_sql));
        for t in &texts {
            q = q.bind(t.clone());
        }
        for (_, v) in &ints {
            q = q.bind(*v);
        }
        let rows = q
            .bind(f.limit.clamp(1, 500))
            .bind(f.offset.max(0))
            .fetch_all(self.pool())
            .await?;
        let payments = rows.iter().map(rows::payment).collect::<Result<_, _>>()?;
        Ok((total, payments))
    }

    pub async fn events(&self, id: PaymentId) -> StoreResult<Vec<PaymentEvent>> {
        let rows = sqlx::query(
            "SELECT id, payment_id, kind, message, detail, created_at FROM payment_events \
             WHERE payment_id = $1 ORDER BY id",
        )
        .bind(id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(rows::event).collect()
    }

    /// Appends events outside of any state change (e.g. a refused callback).
    pub async fn append_events(&self, events: &[NewEvent]) -> StoreResult<()> {
        let cs = Changeset::from_api().events(events.iter().cloned());
        self.commit_in(&cs, Lane::Ack).await.map(|_| ())
    }
}
