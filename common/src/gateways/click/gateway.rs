//! Click as a [`Gateway`]: the pay link, built locally (docs/gateways/click.md,
//! "Payment link"). Nothing is called. Click tells us about the payment
//! itself, inside its Prepare and Complete calls (see [`super::inbound`]), so
//! there is nothing to verify afterwards.

use super::checkout::pay_url;
use super::settings::ClickSettings;
use crate::domain::Provider;
use crate::gateways::{
    Gateway, GatewayError, Invoice, InvoiceRequest, Verification, VerifyRequest,
};
use async_trait::async_trait;

/// The pay link of an order: `transaction_param` is the order id (the
/// payment's merchant reference), which Click sends back as
/// `merchant_trans_id`.
pub struct ClickCheckout {
    pub settings: ClickSettings,
}

#[async_trait]
impl Gateway for ClickCheckout {
    fn provider(&self) -> Provider {
        Provider::Click
    }

    async fn create_invoice(&self, req: &InvoiceRequest) -> Result<Invoice, GatewayError> {
        if req.account.is_empty() {
            // Without the order id Click's calls could name no order.
            return Err(GatewayError::permanent(
                "no_order",
                "a Click pay link needs the order id",
            ));
        }
        Ok(Invoice {
            gateway_ref: None,
            payment_url: pay_url(
                &self.settings,
                &req.account,
                req.amount.minor(),
                Some(req.callback_url.as_str()).filter(|u| !u.is_empty()),
            ),
        })
    }

    /// Click settles inside Complete; there is no invoice to ask about.
    async fn verify(&self, _req: &VerifyRequest) -> Result<Verification, GatewayError> {
        Err(GatewayError::permanent(
            "not_supported",
            "Click settles inside its Complete call; there is nothing to verify",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Amount, PaymentId};
    use crate::gateways::Payer;

    fn checkout() -> ClickCheckout {
        let vars = |k: &str| match k {
            "CLICK_SERVICE_ID" => Some("12345".to_string()),
            "CLICK_MERCHANT_ID" => Some("678".to_string()),
            "CLICK_SECRET_KEY" => Some("s".to_string()),
            _ => None,
        };
        ClickCheckout {
            settings: ClickSettings::from_lookup(&vars, None).unwrap().unwrap(),
        }
    }

    fn request(account: &str) -> InvoiceRequest {
        InvoiceRequest {
            payment_id: PaymentId::new(),
            amount: Amount::from_minor(5000).unwrap(),
            description: "Test Product".into(),
            payer: Payer::default(),
            callback_url: "https://shop.example/api/orders/197/result/".into(),
            account: account.into(),
        }
    }

    #[tokio::test]
    async fn the_link_names_the_order_and_the_return_page() {
        let invoice = checkout().create_invoice(&request("197")).await.unwrap();
        assert_eq!(invoice.gateway_ref, None);
        assert_eq!(
            invoice.payment_url,
            "https://my.click.uz/services/pay?service_id=12345&merchant_id=678&amount=50.00\
&transaction_param=197&return_url=https%3A%2F%2Fshop.example%2Fapi%2Forders%2F197%2Fresult%2F"
        );
        let err = checkout().create_invoice(&request("")).await.unwrap_err();
        assert!(matches!(err, GatewayError::Permanent { ref reason, .. } if reason == "no_order"));
    }

    #[tokio::test]
    async fn there_is_nothing_to_verify() {
        let err = checkout()
            .verify(&VerifyRequest {
                payment_id: PaymentId::new(),
                gateway_ref: String::new(),
                trans_id: None,
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, GatewayError::Permanent { ref reason, .. } if reason == "not_supported")
        );
    }
}
