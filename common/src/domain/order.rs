//! A shop order (the Atmos seed's `Order`) and its own small state machine.
//! An order is paid by exactly one payment; its status follows that payment.

use super::money::Amount;
use super::payment::{FieldError, PaymentId, Provider};
use super::status::PaymentStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Pending,
    Paid,
    Failed,
    Cancelled,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 4] = [
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::Failed,
        OrderStatus::Cancelled,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Failed => "failed",
            OrderStatus::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
    /// A pending order moves once; a paid order whose payment was refunded
    /// becomes cancelled (the seed's statuses have no "refunded").
    pub fn can_become(self, to: OrderStatus) -> bool {
        match self {
            OrderStatus::Pending => to != OrderStatus::Pending,
            OrderStatus::Paid => to == OrderStatus::Cancelled,
            OrderStatus::Failed | OrderStatus::Cancelled => false,
        }
    }
    /// The order status a settled payment implies (`None` while it is unsettled).
    pub fn for_payment(status: PaymentStatus) -> Option<OrderStatus> {
        match status {
            PaymentStatus::Completed => Some(OrderStatus::Paid),
            PaymentStatus::Failed => Some(OrderStatus::Failed),
            PaymentStatus::Cancelled | PaymentStatus::Refunded => Some(OrderStatus::Cancelled),
            PaymentStatus::Pending | PaymentStatus::Processing => None,
        }
    }
}

/// An order's move, applied only while the order is still `from` (a repeat
/// finds it moved and changes nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderChange {
    pub id: i64,
    pub from: OrderStatus,
    pub to: OrderStatus,
}

impl OrderChange {
    /// The move from `from` to `to`, if the order's state machine allows it.
    pub fn new(id: i64, from: OrderStatus, to: OrderStatus) -> Option<Self> {
        from.can_become(to).then_some(OrderChange { id, from, to })
    }
    /// A pending order moving to `to`.
    pub fn from_pending(id: i64, to: OrderStatus) -> Option<Self> {
        Self::new(id, OrderStatus::Pending, to)
    }
    /// A `failed` or `cancelled` order becoming `paid` because its payment
    /// was settled late (the gateway confirmed the money after the payment
    /// had ended). Outside [`OrderStatus::can_become`] on purpose: only the
    /// order update that follows a late-settled payment takes it.
    pub fn paid_late(id: i64, from: OrderStatus) -> Option<Self> {
        matches!(from, OrderStatus::Failed | OrderStatus::Cancelled).then_some(OrderChange {
            id,
            from,
            to: OrderStatus::Paid,
        })
    }
}

/// The seed's `payment_type` choices. Only configured ones can take orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentType {
    Atmos,
    Payme,
    Click,
}

impl PaymentType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "atmos" => Some(PaymentType::Atmos),
            "payme" => Some(PaymentType::Payme),
            "click" => Some(PaymentType::Click),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentType::Atmos => "atmos",
            PaymentType::Payme => "payme",
            PaymentType::Click => "click",
        }
    }
    /// The gateway that serves this payment type (the provider of the same
    /// name), if paygate has one.
    pub fn provider(self) -> Option<Provider> {
        Provider::parse(self.as_str())
    }
}

/// What is being bought, as shown to the payer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProductName(String);

impl ProductName {
    pub const MAX_LEN: usize = 255;
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let field = "product_name";
        let s = s.trim();
        if s.is_empty() {
            return Err(FieldError::Required { field });
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(FieldError::TooLong {
                field,
                max: Self::MAX_LEN,
            });
        }
        if s.chars().any(char::is_control) {
            return Err(FieldError::BadCharacters { field });
        }
        Ok(ProductName(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: i64,
    pub product_name: ProductName,
    /// In tiyin.
    pub amount: Amount,
    pub payment_type: PaymentType,
    pub status: OrderStatus,
    pub payment_id: Option<PaymentId>,
    /// The capability that lets a payer read this order without an API key
    /// (`None` for orders made before tokens existed).
    pub access_token: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_move_once_from_pending() {
        for to in OrderStatus::ALL {
            assert_eq!(
                OrderStatus::Pending.can_become(to),
                to != OrderStatus::Pending
            );
            for from in [OrderStatus::Failed, OrderStatus::Cancelled] {
                assert!(!from.can_become(to));
            }
            assert_eq!(
                OrderStatus::Paid.can_become(to),
                to == OrderStatus::Cancelled
            );
        }
        assert_eq!(
            OrderStatus::for_payment(PaymentStatus::Completed),
            Some(OrderStatus::Paid)
        );
        assert_eq!(OrderStatus::for_payment(PaymentStatus::Processing), None);
    }

    #[test]
    fn only_failed_or_cancelled_orders_are_paid_late() {
        for from in OrderStatus::ALL {
            let late = OrderChange::paid_late(7, from);
            match from {
                OrderStatus::Failed | OrderStatus::Cancelled => {
                    assert_eq!(
                        late.map(|c| (c.from, c.to)),
                        Some((from, OrderStatus::Paid))
                    );
                    // The ordinary table still refuses it.
                    assert!(OrderChange::new(7, from, OrderStatus::Paid).is_none());
                }
                _ => assert!(late.is_none(), "{from:?}"),
            }
        }
    }

    #[test]
    fn payment_types() {
        assert_eq!(
            PaymentType::parse("atmos").and_then(|p| p.provider()),
            Some(Provider::Atmos)
        );
        assert_eq!(
            PaymentType::parse("payme").and_then(|p| p.provider()),
            Some(Provider::Payme)
        );
        assert_eq!(
            PaymentType::parse("click").and_then(|p| p.provider()),
            Some(Provider::Click)
        );
        assert_eq!(PaymentType::parse("paypal"), None);
    }

    #[test]
    fn product_names() {
        assert!(ProductName::parse("Test Product").is_ok());
        assert!(ProductName::parse("  ").is_err());
        assert!(ProductName::parse(&"x".repeat(256)).is_err());
    }
}
