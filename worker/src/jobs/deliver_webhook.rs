//! `deliver_webhook`: one attempt to deliver one message to one endpoint,
//! signed as Standard Webhooks specifies. The retry schedule is the webhook
//! settings' (Svix-like, about a day), not the job's back-off: each failed
//! attempt writes the next attempt as a new job due at the schedule's time,
//! in the same commit that ends this one. 2xx delivers; 410 disables the
//! endpoint; a message whose schedule is spent fails, and disables its
//! endpoint when nothing reached it meanwhile.

use super::{wrong_payload, Effects, JobHandler, Step};
use crate::Engine;
use async_trait::async_trait;
use paygate_common::domain::{DeliverArgs, JobPayload, NewJob, Payment};
use paygate_common::store::{
    AttemptEffect, MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage,
};
use paygate_common::webhooks::{signing::signature_header, truncate_response, RESPONSE_KEPT_BYTES};
use std::time::Instant;

pub struct DeliverWebhook;

#[async_trait]
impl JobHandler for DeliverWebhook {
    async fn run(&self, engine: &Engine, _: Option<&Payment>, payload: &JobPayload) -> Step {
        match payload {
            JobPayload::DeliverWebhook(args) => run(engine, args).await,
            other => wrong_payload(other),
        }
    }
    fn exhausted_reason(&self) -> &'static str {
        "webhook_lane_unavailable"
    }
    /// Owns no payment: giving up changes nothing but the job (redrivable).
    fn give_up(&self, _: Option<&Payment>, _: &str, _: &str) -> Effects {
        Effects::default()
    }
}

/// What the merchant's endpoint did with one attempt.
struct Answer {
    status_code: Option<u16>,
    error: Option<String>,
    response: String,
}

/// How the attempt is classified, for the record and the metric.
fn outcome(
    answer: &Answer,
    round_attempt: usize,
    schedule_len: usize,
) -> (&'static str, Option<usize>) {
    match answer.status_code {
        Some(code) if (200..300).contains(&code) => ("delivered", None),
        Some(410) => ("gone", None),
        // The n-th attempt of a round failed: the schedule's n-th delay, if any.
        _ if round_attempt <= schedule_len => ("failed", Some(round_attempt - 1)),
        _ => ("exhausted", None),
    }
}

async fn post(engine: &Engine, endpoint: &WebhookEndpoint, msg: &WebhookMessage) -> Answer {
    let now = chrono::Utc::now();
    let timestamp = now.timestamp();
    let signature = signature_header(
        &endpoint.signing_secrets(now.timestamp_millis()),
        &msg.id,
        timestamp,
        msg.body.as_bytes(),
    );
    let sent = engine
        .webhooks
        .client
        .post(&endpoint.url)
        .header("content-type", "application/json")
        .header("webhook-id", &msg.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(msg.body.clone())
        .send()
        .await;
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => {
            return Answer {
                status_code: None,
                // reqwest's errors name the URL, which the admin set; no secret is in it.
                error: Some(describe(e)),
                response: String::new(),
            };
        }
    };
    let status = resp.status().as_u16();
    // Keep the start of the answer only; never read an unbounded body.
    let mut kept = Vec::new();
    let mut error = None;
    while kept.len() < RESPONSE_KEPT_BYTES {
        match resp.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                error = Some(describe(e));
                break;
            }
        }
    }
    Answer {
        status_code: Some(status),
        error: error.or_else(|| (!(200..300).contains(&status)).then(|| format!("HTTP {status}"))),
        response: truncate_response(&kept),
    }
}

fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // Without the URL: an endpoint's URL may carry a token in its query.
    format!("{kind}: {}", e.without_url())
}

async fn run(engine: &Engine, args: &DeliverArgs) -> Step {
    let store = &engine.store;
    let msg = match store.webhook_message(&args.message_id).await {
        Ok(Some(m)) if m.status == MessageStatus::Pending => m,
        // Delivered, failed (a redrive writes a new job), or deleted with its endpoint.
        Ok(_) => return Step::nothing(),
        Err(e) => return Step::retry(format!("loading the webhook message failed: {e}")),
    };
    let endpoint = match store.webhook_endpoint(&msg.endpoint_id).await {
        Ok(Some(e)) => e,
        Ok(None) => return Step::nothing(),
        Err(e) => return Step::retry(format!("loading the webhook endpoint failed: {e}")),
    };
    if !endpoint.enabled {
        return match store
            .fail_webhook_message(&msg.id, "the endpoint is disabled")
            .await
        {
            Ok(()) => Step::nothing(),
            Err(e) => Step::retry(format!("recording the skipped message failed: {e}")),
        };
    }
    let Some(_permit) = engine.webhooks.permit().await else {
        metrics::counter!("paygate_webhook_deliveries_total", "outcome" => "deferred").increment(1);
        return Step::retry("the webhook delivery lane is full");
    };
    let started = Instant::now();
    let answer = post(engine, &endpoint, &msg).await;
    let latency = started.elapsed();
    metrics::histogram!("paygate_webhook_delivery_seconds").record(latency.as_secs_f64());

    let schedule = &engine.webhooks.settings.retry_schedule;
    let round_attempt = msg.round_attempts as usize + 1;
    let (label, next_delay) = outcome(&answer, round_attempt, schedule.len());
    let now_ms = chrono::Utc::now().timestamp_millis();
    let effect = match (label, next_delay) {
        ("delivered", _) => AttemptEffect::Delivered,
        (_, Some(i)) => AttemptEffect::RetryAt(now_ms + schedule[i].as_millis() as i64),
        _ => AttemptEffect::Failed,
    };
    let attempt = WebhookAttempt {
        message_id: msg.id.clone(),
        attempt: msg.attempts + 1,
        outcome: label.to_string(),
        status_code: answer.status_code.map(i64::from),
        error: answer.error.clone(),
        response: answer.response,
        latency_ms: latency.as_millis() as i64,
        created_at_ms: now_ms,
    };
    match store.record_webhook_attempt(&msg, &attempt, &effect).await {
        Ok(true) => {}
        // Another run of the same delivery recorded first: it owns what follows.
        Ok(false) => return Step::nothing(),
        Err(e) => {
            // Sent but not recorded: the next run sends again (at least once,
            // same webhook-id, so the merchant can tell).
            return Step::retry(format!("recording the webhook attempt failed: {e}"));
        }
    }
    metrics::counter!("paygate_webhook_deliveries_total", "outcome" => label).increment(1);
    let disable = match label {
        "gone" => Some(("gone", "the endpoint answered 410 Gone".to_string())),
        // Failing for the whole schedule, with nothing delivered since this
        // message was written: the endpoint is dead, stop sending to it.
        "exhausted"
            if endpoint
                .last_success_at_ms
                .is_none_or(|t| t < msg.created_at_ms) =>
        {
            Some((
                "failing",
                format!(
                    "every attempt failed for the whole retry schedule ({} attempts)",
                    round_attempt
                ),
            ))
        }
        _ => None,
    };
    if let Some((reason, text)) = disable {
        match store.disable_webhook_endpoint(&endpoint.id, &text).await {
            Ok(true) => {
                metrics::counter!("paygate_webhook_endpoints_disabled_total", "reason" => reason)
                    .increment(1);
                tracing::warn!(endpoint_id = %endpoint.id, reason, "webhook endpoint disabled");
            }
            Ok(false) => {}
            Err(e) => return Step::retry(format!("disabling the webhook endpoint failed: {e}")),
        }
    }
    let next = match effect {
        AttemptEffect::RetryAt(at) => vec![NewJob::new(
            JobPayload::DeliverWebhook(args.clone()),
            None,
            &engine.retry,
        )
        .dedupe(format!("deliver:{}:{}", msg.id, msg.attempts + 1))
        .run_at(at)],
        _ => Vec::new(),
    };
    Step::Done(Effects {
        next,
        ..Effects::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: Option<u16>) -> Answer {
        Answer {
            status_code: code,
            error: None,
            response: String::new(),
        }
    }

    #[test]
    fn attempts_follow_the_schedule_then_fail() {
        // Two delays: attempts 1 and 2 are retried, attempt 3 is the last.
        assert_eq!(outcome(&answer(Some(200)), 1, 2), ("delivered", None));
        assert_eq!(outcome(&answer(Some(204)), 3, 2), ("delivered", None));
        assert_eq!(outcome(&answer(Some(503)), 1, 2), ("failed", Some(0)));
        assert_eq!(outcome(&answer(None), 2, 2), ("failed", Some(1)));
        assert_eq!(outcome(&answer(Some(500)), 3, 2), ("exhausted", None));
        assert_eq!(outcome(&answer(Some(410)), 1, 2), ("gone", None));
        // A redirect is not a delivery.
        assert_eq!(outcome(&answer(Some(302)), 1, 2), ("failed", Some(0)));
    }
}
