//! `create_invoice`: ask the payment's gateway for an invoice and a payment URL.

use super::{missing_payment, Effects, JobHandler, Step};
use crate::Engine;
use async_trait::async_trait;
use paygate_common::crypto::Cipher;
use paygate_common::domain::{JobPayload, Payment, PaymentStatus};
use paygate_common::gateways::{InvoiceRequest, Payer};
use paygate_common::userdir::payer_from_profile;

pub struct CreateInvoice;

#[async_trait]
impl JobHandler for CreateInvoice {
    async fn run(&self, engine: &Engine, payment: Option<&Payment>, _: &JobPayload) -> Step {
        match payment {
            Some(p) => run(engine, p).await,
            None => missing_payment(),
        }
    }
    fn exhausted_reason(&self) -> &'static str {
        "gateway_unavailable"
    }
}

/// The payment's failure reason when its stored payer profile cannot be read.
pub const PAYER_DATA_UNREADABLE: &str = "payer_data_unreadable";

/// Why a stored payer profile cannot be read. Invoicing an anonymous payer
/// instead would hide the fault (a lost `SECRET_KEY`, a corrupt row) and send
/// the gateway less than the merchant stored, so the job fails.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayerUnreadable {
    #[error("stored payer data does not decrypt with SECRET_KEY or its fallbacks")]
    DoesNotDecrypt,
    #[error("stored payer data decrypts but is not a JSON object")]
    NotAProfile,
}

/// The payer for the gateway's form; no stored profile means no payer details.
fn read_payer(cipher: &Cipher, stored: Option<&str>) -> Result<Payer, PayerUnreadable> {
    let Some(token) = stored else {
        return Ok(Payer::default());
    };
    let bytes = cipher
        .decrypt(token)
        .map_err(|_| PayerUnreadable::DoesNotDecrypt)?;
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(profile) if profile.is_object() => Ok(payer_from_profile(&profile)),
        _ => Err(PayerUnreadable::NotAProfile),
    }
}

async fn run(engine: &Engine, payment: &Payment) -> Step {
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
    let payer = match read_payer(&engine.cipher, payment.encrypted_user_data.as_deref()) {
        Ok(payer) => payer,
        Err(e) => {
            return Step::Fail {
                reason: PAYER_DATA_UNREADABLE.into(),
                error: e.to_string(),
            }
        }
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
    match payment.invoiced(invoice.payment_url, invoice.gateway_ref) {
        Ok((change, events)) => Step::Done(Effects {
            order_status: None,
            change: Some(change),
            events,
            next: Vec::new(),
            refund: None,
        }),
        // Unreachable while the guard above holds; refuse rather than guess.
        Err(e) => Step::Fail {
            reason: "illegal_transition".into(),
            error: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(secret: &str) -> Cipher {
        Cipher::from_secrets(secret, &[]).expect("cipher")
    }

    #[test]
    fn a_profile_that_cannot_be_read_is_an_error_not_an_anonymous_payer() {
        let ours = cipher("the-secret");
        let not_json = ours.encrypt(b"not a profile");
        assert_eq!(
            read_payer(&ours, Some(&not_json)).unwrap_err(),
            PayerUnreadable::NotAProfile
        );
        let a_list = ours.encrypt(b"[]");
        assert_eq!(
            read_payer(&ours, Some(&a_list)).unwrap_err(),
            PayerUnreadable::NotAProfile
        );
        let theirs = cipher("another-secret").encrypt(br#"{"email":"a@b.example"}"#);
        assert_eq!(
            read_payer(&ours, Some(&theirs)).unwrap_err(),
            PayerUnreadable::DoesNotDecrypt
        );
    }

    #[test]
    fn a_readable_profile_or_none_gives_the_payer() {
        let ours = cipher("the-secret");
        let token = ours.encrypt(br#"{"first_name":"Ali","email":"a@b.example"}"#);
        let payer = read_payer(&ours, Some(&token)).unwrap();
        assert_eq!(payer.name.as_deref(), Some("Ali"));
        assert_eq!(payer.email.as_deref(), Some("a@b.example"));
        let none = read_payer(&ours, None).unwrap();
        assert!(none.name.is_none() && none.email.is_none() && none.phone.is_none());
    }
}
