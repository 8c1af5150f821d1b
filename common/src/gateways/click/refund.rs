//! Click refunds: the Merchant API's payment reversal
//! (`DELETE …/payment/reversal/{service_id}/{click_paydoc_id}`), which returns
//! the whole payment.

use super::merchant_api::ClickMerchantApi;
use crate::domain::Provider;
use crate::gateways::{GatewayError, RefundReceipt, RefundRequest, Refunder};
use async_trait::async_trait;

/// Refunds Click payments through the Merchant API client.
#[derive(Debug)]
pub struct ClickRefunder {
    pub api: ClickMerchantApi,
}

#[async_trait]
impl Refunder for ClickRefunder {
    fn provider(&self) -> Provider {
        Provider::Click
    }

    async fn refund(&self, req: &RefundRequest) -> Result<RefundReceipt, GatewayError> {
        // Complete stored `click_paydoc_id`, the Merchant API's `payment_id`,
        // as the payment's tracking code (docs/gateways/click.md).
        let paydoc = req
            .tracking_code
            .as_deref()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .ok_or_else(|| {
                GatewayError::permanent(
                    "missing_gateway_reference",
                    "the payment has no click_paydoc_id to reverse",
                )
            })?;
        // Click's simulator (and, as far as its docs say, Click) answers 0
        // again for a payment already reversed, so a repeat is a success.
        self.api.reverse_payment(paydoc).await?;
        Ok(RefundReceipt {
            gateway_ref: Some(paydoc.to_string()),
        })
    }
}
