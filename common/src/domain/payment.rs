//! A payment and the values it is made of. Each value type can only hold a
//! valid value, so code past the HTTP edge never re-validates.

use super::money::{Amount, Currency};
pub use super::provider::Provider;
use super::status::{IllegalTransition, PaymentStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PaymentId(Uuid);

impl PaymentId {
    pub fn new() -> Self {
        // v7 ids sort by creation time, which keeps index inserts local.
        PaymentId(Uuid::now_v7())
    }
    pub fn parse(s: &str) -> Option<Self> {
        Uuid::parse_str(s).ok().map(PaymentId)
    }
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for PaymentId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("{field} is required")]
    Required { field: &'static str },
    #[error("{field} must be at most {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} contains characters that are not allowed")]
    BadCharacters { field: &'static str },
}

/// Who pays, as the CrazyMiner main server knows them (a phone number or a
/// username). It ends up in a URL path, so only URL-safe characters are allowed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserIdentifier(String);

impl UserIdentifier {
    pub const MAX_LEN: usize = 64;
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let s = s.trim();
        let field = "user_identifier";
        if s.is_empty() {
            return Err(FieldError::Required { field });
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(FieldError::TooLong {
                field,
                max: Self::MAX_LEN,
            });
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@._+-".contains(c))
        {
            return Err(FieldError::BadCharacters { field });
        }
        // `.` and `..` would be dot segments in the main server's user URL.
        if s.bytes().all(|b| b == b'.') {
            return Err(FieldError::BadCharacters { field });
        }
        Ok(UserIdentifier(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text shown to the payer; control characters are refused so it cannot
/// forge log lines or break the gateway's form encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Description(String);

impl Description {
    pub const MAX_LEN: usize = 255;
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let field = "description";
        let s = s.trim();
        if s.chars().count() > Self::MAX_LEN {
            return Err(FieldError::TooLong {
                field,
                max: Self::MAX_LEN,
            });
        }
        if s.chars().any(|c| c.is_control()) {
            return Err(FieldError::BadCharacters { field });
        }
        Ok(Description(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A payment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub provider: Provider,
    /// The user identifier (CrazyMiner) or the order id (shop).
    pub merchant_ref: String,
    pub amount: Amount,
    pub currency: Currency,
    pub description: Description,
    pub status: PaymentStatus,
    pub status_reason: Option<String>,
    pub payment_url: Option<String>,
    /// The gateway's id for our invoice: medogram `id_get`, Atmos `transaction_id`.
    pub gateway_ref: Option<String>,
    /// The gateway's id of the money movement: medogram `trans_id`, Atmos `success_trans_id`.
    pub gateway_trans_id: Option<String>,
    pub tracking_code: Option<String>,
    pub encrypted_user_data: Option<String>,
    pub idempotency_key: Option<String>,
    pub order_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Optimistic-lock counter: every write must name the version it read.
    pub version: i64,
}

/// The reason a late-settled payment carries (it replaces `expired`,
/// `not_paid`, … so the record says why a failed payment is completed).
pub const LATE_SETTLEMENT: &str = "late_settlement";

/// The reason a payment that waited for its payer past its time to live
/// carries when it is cancelled.
pub const EXPIRED: &str = "expired";

/// What a write to a payment changes. Built only through [`Payment::change`],
/// which checks the state machine; the store applies it only if the row still
/// has the version and status it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentChange {
    pub id: PaymentId,
    pub expected_version: i64,
    pub expected_status: PaymentStatus,
    pub new_status: Option<PaymentStatus>,
    pub status_reason: Option<String>,
    pub payment_url: Option<String>,
    pub gateway_ref: Option<String>,
    pub gateway_trans_id: Option<String>,
    pub tracking_code: Option<String>,
    pub encrypted_user_data: Option<String>,
    /// The shop order the payment pays (read from the payment, never
    /// changed): the status-change hook needs it to move the order along.
    pub order_id: Option<i64>,
    /// True only for a late settlement (failed/cancelled → completed on a
    /// gateway's confirmation), built by [`PaymentChange::settle_late`].
    pub late_settlement: bool,
}

impl Payment {
    /// The gateway's checkout is ready: pending → processing with its URL
    /// (and the gateway's id for it, when it has one), and the events that
    /// say so. Used by the invoice job and by the API for checkout links it
    /// builds itself.
    pub fn invoiced(
        &self,
        payment_url: String,
        gateway_ref: Option<String>,
    ) -> Result<(PaymentChange, Vec<super::NewEvent>), IllegalTransition> {
        use super::{EventKind, NewEvent};
        let mut change = self
            .change()
            .status(PaymentStatus::Processing, None)?
            .payment_url(payment_url);
        let detail = serde_json::json!({ "gateway_ref": gateway_ref });
        if let Some(r) = gateway_ref {
            change = change.gateway_ref(r);
        }
        let events = vec![
            NewEvent::new(self.id, EventKind::Invoice, "gateway invoice created").detail(detail),
            NewEvent::new(self.id, EventKind::StatusChange, "pending → processing"),
        ];
        Ok((change, events))
    }

    /// The payment as the store leaves it once `change` applies: each field
    /// `change` sets replaces the stored one, the version moves on by one,
    /// as both appliers write it. A job that runs inside the attempt that
    /// made `change`, before that attempt's one write, starts from this
    /// (docs/priority.md, "The invoice runs inside the user fetch"). `now`
    /// stands for the write's time.
    pub fn after(&self, change: &PaymentChange, now: DateTime<Utc>) -> Payment {
        let mut p = self.clone();
        if let Some(status) = change.new_status {
            p.status = status;
        }
        if change.completes() {
            p.completed_at = Some(now);
        }
        fn set(field: &mut Option<String>, to: &Option<String>) {
            if let Some(v) = to {
                *field = Some(v.clone());
            }
        }
        set(&mut p.status_reason, &change.status_reason);
        set(&mut p.payment_url, &change.payment_url);
        set(&mut p.gateway_ref, &change.gateway_ref);
        set(&mut p.gateway_trans_id, &change.gateway_trans_id);
        set(&mut p.tracking_code, &change.tracking_code);
        set(&mut p.encrypted_user_data, &change.encrypted_user_data);
        p.updated_at = now;
        p.version += 1;
        p
    }

    pub fn change(&self) -> PaymentChange {
        PaymentChange {
            id: self.id,
            expected_version: self.version,
            expected_status: self.status,
            new_status: None,
            status_reason: None,
            payment_url: None,
            gateway_ref: None,
            gateway_trans_id: None,
            tracking_code: None,
            encrypted_user_data: None,
            order_id: self.order_id,
            late_settlement: false,
        }
    }
}

impl PaymentChange {
    /// True when this change completes the payment (its `completed_at` is set).
    pub fn completes(&self) -> bool {
        self.new_status == Some(PaymentStatus::Completed)
    }
    pub fn status(
        mut self,
        to: PaymentStatus,
        reason: Option<&str>,
    ) -> Result<Self, IllegalTransition> {
        self.expected_status.check_transition(to)?;
        self.new_status = Some(to);
        self.status_reason = reason.map(str::to_string);
        Ok(self)
    }
    /// Completes a `failed` or `cancelled` payment because its gateway
    /// confirmed the money moved (right invoice, right amount): the one way
    /// out of those statuses, and a distinct, typed path so that an ordinary
    /// job's `status(…)` can never take it. The caller must hold that
    /// confirmation; the change is marked so the status-change hook and the
    /// metrics know it is late.
    pub fn settle_late(mut self) -> Result<Self, IllegalTransition> {
        if !self.expected_status.can_settle_late() {
            return Err(IllegalTransition {
                from: self.expected_status,
                to: PaymentStatus::Completed,
            });
        }
        self.new_status = Some(PaymentStatus::Completed);
        self.status_reason = Some(LATE_SETTLEMENT.to_string());
        self.late_settlement = true;
        Ok(self)
    }
    /// This change and `next` as one write from this change's version:
    /// `next` was built from the payment as this change leaves it
    /// ([`Payment::after`]), and its fields go over this one's. `None` when
    /// they cannot be one write: another payment, `next` not built on this
    /// change's result, or this change moves the status (a write records
    /// one move, and the follow-ups it brings are that move's; folding two
    /// moves into one would skip the first's).
    pub fn then(self, next: PaymentChange) -> Option<PaymentChange> {
        let builds_on_this = next.id == self.id
            && next.expected_version == self.expected_version + 1
            && next.expected_status == self.expected_status;
        if !builds_on_this || self.new_status.is_some() {
            return None;
        }
        Some(PaymentChange {
            expected_version: self.expected_version,
            status_reason: next.status_reason.or(self.status_reason),
            payment_url: next.payment_url.or(self.payment_url),
            gateway_ref: next.gateway_ref.or(self.gateway_ref),
            gateway_trans_id: next.gateway_trans_id.or(self.gateway_trans_id),
            tracking_code: next.tracking_code.or(self.tracking_code),
            encrypted_user_data: next.encrypted_user_data.or(self.encrypted_user_data),
            ..next
        })
    }
    pub fn payment_url(mut self, url: String) -> Self {
        self.payment_url = Some(url);
        self
    }
    pub fn gateway_ref(mut self, r: String) -> Self {
        self.gateway_ref = Some(r);
        self
    }
    pub fn gateway_trans_id(mut self, t: String) -> Self {
        self.gateway_trans_id = Some(t);
        self
    }
    pub fn tracking_code(mut self, t: String) -> Self {
        self.tracking_code = Some(t);
        self
    }
    pub fn encrypted_user_data(mut self, d: String) -> Self {
        self.encrypted_user_data = Some(d);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_identifier_rules() {
        assert_eq!(
            UserIdentifier::parse(" 09123456789 ").unwrap().as_str(),
            "09123456789"
        );
        assert!(UserIdentifier::parse("user.name+1@example.com").is_ok());
        assert!(matches!(
            UserIdentifier::parse(""),
            Err(FieldError::Required { .. })
        ));
        assert!(matches!(
            UserIdentifier::parse("../../etc"),
            Err(FieldError::BadCharacters { .. })
        ));
        for dots in [".", "..", "..."] {
            assert!(matches!(
                UserIdentifier::parse(dots),
                Err(FieldError::BadCharacters { .. })
            ));
        }
        assert!(matches!(
            UserIdentifier::parse("a b"),
            Err(FieldError::BadCharacters { .. })
        ));
        assert!(matches!(
            UserIdentifier::parse(&"9".repeat(65)),
            Err(FieldError::TooLong { .. })
        ));
    }

    #[test]
    fn description_rules() {
        assert_eq!(
            Description::parse("خرید اشتراک").unwrap().as_str(),
            "خرید اشتراک"
        );
        assert!(Description::parse(&"ش".repeat(255)).is_ok());
        assert!(Description::parse(&"ش".repeat(256)).is_err());
        assert!(Description::parse("line\nbreak").is_err());
    }

    #[test]
    fn change_refuses_illegal_transitions() {
        let now = Utc::now();
        let p = Payment {
            status: PaymentStatus::Completed,
            completed_at: Some(now),
            version: 3,
            ..pending()
        };
        assert!(p.change().status(PaymentStatus::Failed, None).is_err());
        let ok = Payment {
            status: PaymentStatus::Processing,
            ..p
        };
        let c = ok
            .change()
            .status(PaymentStatus::Completed, None)
            .unwrap()
            .tracking_code("T1".into());
        assert_eq!(c.expected_version, 3);
        assert_eq!(c.new_status, Some(PaymentStatus::Completed));
        assert!(!c.late_settlement);
    }

    #[test]
    fn late_settlement_is_its_own_path_from_failed_or_cancelled_only() {
        let p = |status| Payment {
            status,
            status_reason: Some(EXPIRED.into()),
            version: 5,
            ..pending()
        };
        for st in [PaymentStatus::Failed, PaymentStatus::Cancelled] {
            // The ordinary path refuses …
            assert!(p(st)
                .change()
                .status(PaymentStatus::Completed, None)
                .is_err());
            // … the late one takes it, marked.
            let c = p(st).change().settle_late().unwrap();
            assert!(c.late_settlement && c.completes());
            assert_eq!(c.status_reason.as_deref(), Some(LATE_SETTLEMENT));
            assert_eq!(c.expected_status, st);
        }
        for st in [
            PaymentStatus::Pending,
            PaymentStatus::Processing,
            PaymentStatus::Completed,
            PaymentStatus::Refunded,
        ] {
            assert!(p(st).change().settle_late().is_err(), "{st}");
        }
    }

    fn pending() -> Payment {
        let now = Utc::now();
        Payment {
            id: PaymentId::new(),
            provider: Provider::Medogram,
            merchant_ref: "09123456789".into(),
            amount: Amount::from_minor(100000).unwrap(),
            currency: Currency::Irr,
            description: Description::default(),
            status: PaymentStatus::Pending,
            status_reason: None,
            payment_url: None,
            gateway_ref: None,
            gateway_trans_id: None,
            tracking_code: None,
            encrypted_user_data: None,
            idempotency_key: None,
            order_id: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
            version: 2,
        }
    }

    #[test]
    fn after_applies_the_change_as_the_store_writes_it() {
        let p = Payment {
            tracking_code: Some("kept".into()),
            ..pending()
        };
        let now = Utc::now();
        let change = p.change().encrypted_user_data("token".into());
        let after = p.after(&change, now);
        assert_eq!(after.encrypted_user_data.as_deref(), Some("token"));
        assert_eq!(
            after.tracking_code.as_deref(),
            Some("kept"),
            "unset fields stay"
        );
        assert_eq!((after.version, after.status), (3, PaymentStatus::Pending));
        assert_eq!(after.updated_at, now);
        let (invoice, _) = after
            .invoiced("https://pay/1".into(), Some("G-1".into()))
            .unwrap();
        let done = after.after(&invoice, now);
        assert_eq!(done.status, PaymentStatus::Processing);
        assert_eq!(done.payment_url.as_deref(), Some("https://pay/1"));
        assert_eq!(done.completed_at, None);
        let processing = Payment {
            status: PaymentStatus::Processing,
            ..pending()
        };
        let completes = processing
            .change()
            .status(PaymentStatus::Completed, None)
            .unwrap();
        assert_eq!(processing.after(&completes, now).completed_at, Some(now));
    }

    #[test]
    fn a_change_and_the_one_built_on_it_are_one_write() {
        let p = pending();
        let now = Utc::now();
        let first = p.change().encrypted_user_data("token".into());
        let (second, _) = p
            .after(&first, now)
            .invoiced("https://pay/1".into(), Some("G-1".into()))
            .unwrap();
        let both = first.clone().then(second.clone()).expect("one write");
        assert_eq!(both.expected_version, p.version, "from the first's version");
        assert_eq!(both.expected_status, PaymentStatus::Pending);
        assert_eq!(both.new_status, Some(PaymentStatus::Processing));
        assert_eq!(both.encrypted_user_data.as_deref(), Some("token"));
        assert_eq!(both.gateway_ref.as_deref(), Some("G-1"));
        // Writing both at once leaves what writing them one after the other does.
        let one = p.after(&both, now);
        let two = p.after(&first, now).after(&second, now);
        assert_eq!(
            one,
            Payment {
                version: two.version - 1,
                ..two
            }
        );

        // Not built on the first's result: another version, another payment.
        let (stale, _) = p.invoiced("https://pay/2".into(), None).unwrap();
        assert!(first.clone().then(stale).is_none());
        let other = pending();
        let (theirs, _) = other
            .after(&other.change(), now)
            .invoiced("https://pay/3".into(), None)
            .unwrap();
        assert!(first.then(theirs).is_none());
        // A first change that moves the status is not folded.
        let processing = Payment {
            status: PaymentStatus::Processing,
            ..pending()
        };
        let moves = processing
            .change()
            .status(PaymentStatus::Completed, None)
            .unwrap();
        let after = processing.after(&moves, now);
        assert!(moves
            .then(after.change().tracking_code("T".into()))
            .is_none());
    }
}
