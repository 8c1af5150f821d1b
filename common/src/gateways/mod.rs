//! Payment gateways. Each gateway is one folder (its client where we call
//! it, its inbound adapter where it calls us, its signing and settings),
//! behind two traits: [`Gateway`] (outbound: invoices, verification) and
//! [`inbound::InboundAdapter`] (a gateway calls us). Each maps its wire
//! protocol onto these provider-neutral types; the worker and the core decide
//! what the answers mean for a payment. `registry.rs` builds the configured
//! ones.

pub mod atmos;
pub mod click;
pub mod http;
pub mod inbound;
pub mod medogram;
pub mod payme;
pub mod refund;
pub mod registry;

use crate::domain::{Amount, PaymentId, Provider};
use async_trait::async_trait;
use std::time::Duration;

/// Who pays, as far as a gateway form wants to know (decrypted only in memory).
#[derive(Debug, Clone, Default)]
pub struct Payer {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
}

#[derive(Debug, Clone)]
pub struct InvoiceRequest {
    pub payment_id: PaymentId,
    pub amount: Amount,
    pub description: String,
    pub payer: Payer,
    /// Where the gateway sends the payer (and/or its callback) afterwards.
    pub callback_url: String,
    /// The merchant-side reference the gateway echoes (Atmos `account`).
    pub account: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// The gateway's id for the invoice (medogram `id_get`, Atmos transaction
    /// id); `None` for gateways whose checkout link is built locally (Payme,
    /// Click), which name their transaction only when they call us.
    pub gateway_ref: Option<String>,
    pub payment_url: String,
}

#[derive(Debug, Clone)]
pub struct VerifyRequest {
    pub payment_id: PaymentId,
    pub gateway_ref: String,
    /// The gateway's transaction id from the callback, when the protocol has one.
    pub trans_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The gateway says the money moved. `amount` is what it says moved, in
    /// minor units; the caller compares it with the payment's own amount.
    Paid {
        amount: i64,
        trans_id: Option<String>,
        /// True when the gateway reports it had confirmed this before (bitpay's 11).
        repeated: bool,
    },
    /// The gateway has not decided yet (Atmos before confirmation).
    Pending,
    /// The payer did not pay, cancelled, or the transaction was closed: an
    /// answer about the invoice itself, which ends the payment.
    NotPaid { reason: String },
    /// The gateway did not confirm the transaction a caller named (a
    /// callback's `trans_id`), and its answer cannot tell a genuine unpaid
    /// transaction from one it never issued for this invoice (medogram's -4
    /// and -2). It says nothing about the invoice, which the payer may still
    /// pay: the payment stays payable until it is paid or expires.
    Unconfirmed { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Worth trying again later: timeouts, connection errors, 5xx, 429, and
    /// protocol codes that mean "try again".
    #[error("{message}")]
    Retryable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help: a 4xx, or a protocol code that refuses the request.
    /// `reason` is a stable snake_case code that becomes the payment's reason.
    #[error("{reason}: {message}")]
    Permanent { reason: String, message: String },
}

impl GatewayError {
    pub fn retryable(message: impl Into<String>) -> Self {
        GatewayError::Retryable {
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn permanent(reason: impl Into<String>, message: impl Into<String>) -> Self {
        GatewayError::Permanent {
            reason: reason.into(),
            message: message.into(),
        }
    }
}

#[async_trait]
pub trait Gateway: Send + Sync + 'static {
    fn provider(&self) -> Provider;
    /// Creates the invoice. Calls carry our payment id, so a repeat after a
    /// lost reply is recognisable on the gateway's side.
    async fn create_invoice(&self, req: &InvoiceRequest) -> Result<Invoice, GatewayError>;
    /// Asks the gateway, server to server, whether the payment really happened.
    async fn verify(&self, req: &VerifyRequest) -> Result<Verification, GatewayError>;
}

pub use refund::{RefundReceipt, RefundRequest, Refunder};
pub use registry::GatewayRegistry;

/// Where each gateway sends the payer back after the checkout.
#[derive(Debug, Clone)]
pub struct ReturnUrls {
    /// medogram: our callback route, which verifies and then redirects the payer.
    pub medogram: String,
    /// Shop gateways (Atmos, Payme, Click): a page for the payer; `{order_id}`
    /// and `{order_token}` are replaced. (They tell us about the payment server to server, not
    /// through this redirect.)
    pub shop_template: String,
}

impl ReturnUrls {
    /// `order_token`: the order's read token, carried by the payer's link
    /// back to the order page.
    pub fn for_payment(
        &self,
        payment: &crate::domain::Payment,
        order_token: Option<&str>,
    ) -> String {
        match payment.provider {
            Provider::Medogram => self.medogram.clone(),
            Provider::Atmos | Provider::Payme | Provider::Click => self
                .shop_template
                .replace("{order_id}", &payment.merchant_ref)
                .replace("{order_token}", order_token.unwrap_or_default()),
        }
    }
}
