//! Atmos refunds: `/merchant/pay/reverse` (docs/gateways/atmos.md, 'Refunds'),
//! which returns the whole payment.

use super::client::AtmosGateway;
use crate::domain::Provider;
use crate::gateways::{GatewayError, RefundReceipt, RefundRequest, Refunder};
use async_trait::async_trait;

#[async_trait]
impl Refunder for AtmosGateway {
    fn provider(&self) -> Provider {
        Provider::Atmos
    }

    async fn refund(&self, req: &RefundRequest) -> Result<RefundReceipt, GatewayError> {
        let gateway_ref = req.gateway_ref.as_deref().unwrap_or_default();
        let success_trans_id = req.gateway_trans_id.as_deref().unwrap_or_default();
        if gateway_ref.is_empty() && success_trans_id.is_empty() {
            return Err(GatewayError::permanent(
                "missing_gateway_reference",
                "the payment has no Atmos transaction to reverse",
            ));
        }
        self.reverse(gateway_ref, success_trans_id, &req.reason)
            .await?;
        let reversed = if success_trans_id.is_empty() {
            gateway_ref
        } else {
            success_trans_id
        };
        Ok(RefundReceipt {
            gateway_ref: Some(reversed.to_string()),
        })
    }
}
