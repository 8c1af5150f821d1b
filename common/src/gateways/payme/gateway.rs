//! Payme's side of [`Gateway`]: we never call Payme. The "invoice" is the
//! checkout link, built locally from the cashbox id, the order and the
//! amount (docs/gateways/payme.md, "Checkout URL"); Payme then calls our
//! endpoint ([`super::inbound`]) and settles inside those calls.

use super::checkout::{checkout_url, Lang};
use super::settings::PaymeSettings;
use crate::domain::Provider;
use crate::gateways::{
    Gateway, GatewayError, Invoice, InvoiceRequest, Verification, VerifyRequest,
};
use async_trait::async_trait;

pub struct PaymeCheckout {
    pub settings: PaymeSettings,
    pub lang: Lang,
}

#[async_trait]
impl Gateway for PaymeCheckout {
    fn provider(&self) -> Provider {
        Provider::Payme
    }

    /// The link for the order in `req.account`; the payer returns to
    /// `req.callback_url`.
    async fn create_invoice(&self, req: &InvoiceRequest) -> Result<Invoice, GatewayError> {
        let url = checkout_url(
            &self.settings,
            &req.account,
            req.amount.minor(),
            Some(&req.callback_url),
            self.lang,
        )
        .map_err(|e| GatewayError::permanent("payme_checkout_link", e.to_string()))?;
        Ok(Invoice {
            gateway_ref: None,
            payment_url: url,
        })
    }

    /// Payme has no status call for merchants: it tells us everything through
    /// its calls to our endpoint, so there is nothing to ask.
    async fn verify(&self, _req: &VerifyRequest) -> Result<Verification, GatewayError> {
        Err(GatewayError::permanent(
            "not_supported",
            "Payme settles through its calls to paygate; it cannot be asked",
        ))
    }
}
