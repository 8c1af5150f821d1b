//! `create_invoice`: ask the payment's gateway for an invoice and a payment URL.

use super::{Effects, Step};
use crate::Engine;
use paygate_common::domain::{EventKind, NewEvent, Payment, PaymentStatus};
use paygate_common::gateways::{InvoiceRequest, Payer};
use paygate_common::userdir::payer_from_profile;

pub async fn run(engine: &Engine, payment: &Payment) -> Step {
    if payment.status != PaymentStatus::Pending || payment.gateway_ref.is_some() {
        // Already invoiced (a duplicate delivery) or no longer payable.
        return Step::nothing();
    }
    let Some(gateway) = engine.gateways.get(payment.provider) else {
        return Step::Fail {
            reason: "gateway_not_configured".into(),
            error: format!("no {} gateway is configured", payment.provider),
        };
    };
    let payer = match &payment.encrypted_user_data {
        None => Payer::default(),
        Some(token) => match engine.cipher.decrypt(token) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(|profile| payer_from_profile(&profile))
                .unwrap_or_default(),
            Err(_) => {
                return Step::Fail {
                    reason: "user_data_unreadable".into(),
                    error: "stored user data does not decrypt with SECRET_KEY or its fallbacks"
                        .into(),
                }
            }
        },
    };
    // The payer's return page needs the order's read token in its link.
    let order_token = match payment.order_id {
        Some(id) => match engine.store.order(id).await {
            Ok(order) => order.and_then(|o| o.access_token),
            Err(e) => {
                return Step::Retry {
                    error: format!("reading the order: {e}"),
                    retry_after: None,
                    exhausted_reason: None,
                }
            }
        },
        None => None,
    };
    let request = InvoiceRequest {
        payment_id: payment.id,
        amount: payment.amount,
        description: payment.description.as_str().to_string(),
        payer,
        callback_url: engine
            .return_urls
            .for_payment(payment, order_token.as_deref()),
        account: payment.merchant_ref.clone(),
    };
    let invoice = match gateway.create_invoice(&request).await {
        Ok(invoice) => invoice,
        Err(e) => return e.into(),
    };
    let change = match payment.change().status(PaymentStatus::Processing, None) {
        Ok(c) => c
            .payment_url(invoice.payment_url.clone())
            .gateway_ref(invoice.gateway_ref.clone()),
        // Unreachable while the guard above holds; refuse rather than guess.
        Err(e) => {
            return Step::Fail {
                reason: "illegal_transition".into(),
                error: e.to_string(),
            }
        }
    };
    Step::Done(Effects {
        order_status: None,
        change: Some(change),
        events: vec![
            NewEvent::new(payment.id, EventKind::Invoice, "gateway invoice created")
                .detail(serde_json::json!({ "gateway_ref": invoice.gateway_ref })),
            NewEvent::new(payment.id, EventKind::StatusChange, "pending → processing"),
        ],
        next: Vec::new(),
    })
}
