//! The one payment state machine. Every status change in paygate is checked
//! here first and then applied by the store with a conditional update, so a
//! late or duplicated message can never move a payment backwards.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    /// Accepted and persisted; no gateway invoice yet.
    Pending,
    /// The gateway has an invoice and the payer can pay it.
    Processing,
    Completed,
    Failed,
    Cancelled,
    /// The money went back to the payer after completion (a gateway-side
    /// refund, e.g. Payme's CancelTransaction on a performed transaction).
    Refunded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a payment cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: PaymentStatus,
    pub to: PaymentStatus,
}

impl PaymentStatus {
    pub const ALL: [PaymentStatus; 6] = [
        PaymentStatus::Pending,
        PaymentStatus::Processing,
        PaymentStatus::Completed,
        PaymentStatus::Failed,
        PaymentStatus::Cancelled,
        PaymentStatus::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Processing => "processing",
            PaymentStatus::Completed => "completed",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Cancelled => "cancelled",
            PaymentStatus::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            PaymentStatus::Completed
                | PaymentStatus::Failed
                | PaymentStatus::Cancelled
                | PaymentStatus::Refunded
        )
    }

    /// pending → processing → completed | failed; pending/processing → cancelled;
    /// pending → failed (the invoice could never be created); completed →
    /// refunded (the one move out of a settled status: the money went back).
    /// Nothing else leaves a terminal status, and staying put is not a
    /// transition.
    pub fn can_become(self, to: PaymentStatus) -> bool {
        use PaymentStatus::*;
        matches!(
            (self, to),
            (Pending, Processing)
                | (Pending, Failed)
                | (Pending, Cancelled)
                | (Processing, Completed)
                | (Processing, Failed)
                | (Processing, Cancelled)
                | (Completed, Refunded)
        )
    }

    /// A late settlement: the gateway confirmed, with the right invoice and
    /// amount, money for a payment we had already ended as `failed` or
    /// `cancelled` (expired included). The money moved, so the payment
    /// completes after all. This is not in [`can_become`](Self::can_become):
    /// only [`PaymentChange::settle_late`](super::PaymentChange::settle_late),
    /// which a gateway's confirmation alone calls, may take it, so no
    /// ordinary job can move a terminal payment.
    pub fn can_settle_late(self) -> bool {
        matches!(self, PaymentStatus::Failed | PaymentStatus::Cancelled)
    }

    pub fn check_transition(self, to: PaymentStatus) -> Result<(), IllegalTransition> {
        if self.can_become(to) {
            Ok(())
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// The label shown to people, in the seed's Persian by default.
    pub fn display(self, lang: Lang) -> &'static str {
        use PaymentStatus::*;
        match (lang, self) {
            (Lang::Fa, Pending) => "در انتظار",
            (Lang::Fa, Processing) => "در حال پردازش",
            (Lang::Fa, Completed) => "تکمیل شده",
            (Lang::Fa, Failed) => "ناموفق",
            (Lang::Fa, Cancelled) => "لغو شده",
            (Lang::Fa, Refunded) => "بازپرداخت شده",
            (Lang::En, Pending) => "Pending",
            (Lang::En, Processing) => "Processing",
            (Lang::En, Completed) => "Completed",
            (Lang::En, Failed) => "Failed",
            (Lang::En, Cancelled) => "Cancelled",
            (Lang::En, Refunded) => "Refunded",
            (Lang::Ru, Pending) => "Ожидает",
            (Lang::Ru, Processing) => "В обработке",
            (Lang::Ru, Completed) => "Завершён",
            (Lang::Ru, Failed) => "Ошибка",
            (Lang::Ru, Cancelled) => "Отменён",
            (Lang::Ru, Refunded) => "Возвращён",
            (Lang::Uz, Pending) => "Kutilmoqda",
            (Lang::Uz, Processing) => "Jarayonda",
            (Lang::Uz, Completed) => "Yakunlandi",
            (Lang::Uz, Failed) => "Muvaffaqiyatsiz",
            (Lang::Uz, Cancelled) => "Bekor qilindi",
            (Lang::Uz, Refunded) => "Qaytarildi",
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Languages status labels are offered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Fa,
    En,
    Ru,
    Uz,
}

impl Lang {
    /// Picks the first supported language of an `Accept-Language` header.
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        header
            .split(',')
            .map(|part| {
                part.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .find_map(|tag| match tag.split('-').next().unwrap_or("") {
                "fa" => Some(Lang::Fa),
                "en" => Some(Lang::En),
                "ru" => Some(Lang::Ru),
                "uz" => Some(Lang::Uz),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::PaymentStatus::*;
    use super::*;

    #[test]
    fn the_transition_table_is_exactly_the_documented_one() {
        let allowed = [
            (Pending, Processing),
            (Pending, Failed),
            (Pending, Cancelled),
            (Processing, Completed),
            (Processing, Failed),
            (Processing, Cancelled),
            (Completed, Refunded),
        ];
        for from in PaymentStatus::ALL {
            for to in PaymentStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn terminal_statuses_never_move_but_a_completed_one_may_be_refunded() {
        for from in [Completed, Failed, Cancelled, Refunded] {
            assert!(from.is_terminal());
            for to in PaymentStatus::ALL {
                let refund = (from, to) == (Completed, Refunded);
                assert_eq!(from.check_transition(to).is_ok(), refund, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn only_failed_and_cancelled_payments_may_settle_late() {
        for st in PaymentStatus::ALL {
            assert_eq!(
                st.can_settle_late(),
                matches!(st, Failed | Cancelled),
                "{st}"
            );
            // The ordinary table never allows it.
            if st.can_settle_late() {
                assert!(!st.can_become(Completed));
            }
        }
    }

    #[test]
    fn names_round_trip_and_labels_exist() {
        for st in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(st.as_str()), Some(st));
            for lang in [Lang::Fa, Lang::En, Lang::Ru, Lang::Uz] {
                assert!(!st.display(lang).is_empty());
            }
        }
        assert_eq!(Processing.display(Lang::Fa), "در حال پردازش");
        assert_eq!(PaymentStatus::parse("paid"), None);
    }

    #[test]
    fn accept_language_picks_first_supported() {
        assert_eq!(
            Lang::from_accept_language("de, ru-RU;q=0.9"),
            Some(Lang::Ru)
        );
        assert_eq!(Lang::from_accept_language("uz"), Some(Lang::Uz));
        assert_eq!(Lang::from_accept_language("de"), None);
    }
}
