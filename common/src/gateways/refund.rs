//! Refunds through a gateway's API: the [`Refunder`] trait, separate from
//! [`super::Gateway`] because refunding and taking payments are different
//! clients for some gateways (Click takes payments through its SHOP-API
//! calls to us, and refunds through its Merchant API, which needs its own
//! credentials). Which gateways refund at all is the domain's decision
//! (`domain::refund::mode`); this is only how.

use super::GatewayError;
use crate::domain::{PaymentId, Provider};
use async_trait::async_trait;

/// What a gateway needs to return a payment's money.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    pub payment_id: PaymentId,
    /// Our refund's id (gateways that take a request id get it, so a repeat
    /// after a lost answer is recognisable).
    pub refund_id: uuid::Uuid,
    /// Minor units; every refund paygate sends today is the whole payment.
    pub amount_minor: i64,
    /// The payment's gateway references as stored: the invoice or transaction
    /// id (`gateway_ref`), the processing id (`gateway_trans_id`: Atmos
    /// `success_trans_id`) and the payer-visible number (`tracking_code`:
    /// Click `click_paydoc_id`).
    pub gateway_ref: Option<String>,
    pub gateway_trans_id: Option<String>,
    pub tracking_code: Option<String>,
    pub reason: String,
}

/// The gateway's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReceipt {
    /// The gateway's id of what it reversed, kept on the refund.
    pub gateway_ref: Option<String>,
}

#[async_trait]
pub trait Refunder: Send + Sync + 'static {
    fn provider(&self) -> Provider;
    /// Returns the money. Must be safe to repeat: a refund that the gateway
    /// already carried out (an answer lost on the way back) is a success.
    async fn refund(&self, req: &RefundRequest) -> Result<RefundReceipt, GatewayError>;
}
