//! `fetch_user`: GET the payer's profile from the main server, encrypt it,
//! store it, and queue the invoice.

use super::{missing_payment, Effects, JobHandler, Step};
use crate::Engine;
use async_trait::async_trait;
use paygate_common::domain::{EventKind, JobPayload, NewEvent, NewJob, Payment, PaymentStatus};

pub struct FetchUser;

#[async_trait]
impl JobHandler for FetchUser {
    async fn run(&self, engine: &Engine, payment: Option<&Payment>, _: &JobPayload) -> Step {
        match payment {
            Some(p) => run(engine, p).await,
            None => missing_payment(),
        }
    }
    fn exhausted_reason(&self) -> &'static str {
        "user_server_unavailable"
    }
}

pub fn next_job(engine: &Engine, payment: &Payment) -> NewJob {
    NewJob::once_per_payment(JobPayload::CreateInvoice, payment.id, &engine.retry)
}

async fn run(engine: &Engine, payment: &Payment) -> Step {
    if payment.status != PaymentStatus::Pending {
        // The payment moved on (or was cancelled) since this job was queued.
        return Step::nothing();
    }
    if payment.encrypted_user_data.is_some() {
        // A previous attempt stored the profile; only the follow-up may be missing.
        return Step::Done(Effects {
            order_status: None,
            change: None,
            events: Vec::new(),
            next: vec![next_job(engine, payment)],
            refund: None,
        });
    }
    // Takes up the fetch the create started ahead when it ran in this process.
    let profile = match engine
        .users
        .fetch_for(payment.id, &payment.merchant_ref)
        .await
    {
        Ok(Some(profile)) => profile,
        Ok(None) => {
            return Step::Fail {
                reason: "user_not_found".into(),
                error: "the main server does not know this user".into(),
            }
        }
        Err(e) => return e.into(),
    };
    // The profile is personal data: it leaves this function only encrypted,
    // and the event records which fields arrived, never their values.
    let fields: Vec<String> = profile
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let encrypted = engine.cipher.encrypt(profile.to_string().as_bytes());
    Step::Done(Effects {
        order_status: None,
        change: Some(payment.change().encrypted_user_data(encrypted)),
        events: vec![NewEvent::new(
            payment.id,
            EventKind::UserFetch,
            "user data fetched and encrypted",
        )
        .detail(serde_json::json!({ "fields": fields }))],
        next: vec![next_job(engine, payment)],
        refund: None,
    })
}
