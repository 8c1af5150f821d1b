//! Payme's JSON-RPC calls (`POST /payme/`), on the generic inbound path.
//!
//! Each call: authenticate (`-32504`), parse (`-32700`, `-32600`, `-32601`,
//! …), read the facts its method needs (the transaction with its Payme id,
//! the order and its active transaction, the statement window), decide with
//! the pure [`rules`], and write the decision as ONE changeset: the call
//! stored verbatim, the transaction row, the payment's change, the order's
//! change and an event in the payment's activity log. Every call is answered
//! HTTP 200 with the request's `id`.
//!
//! How a Payme transaction moves paygate's payment and order (decided here,
//! documented in docs/gateways/payme.md, "What paygate decided"):
//! - created (state 1): the payment `pending → processing`;
//! - performed (2): payment `completed`, order `paid`, in the same write;
//! - cancelled before perform (-1, including the 12-hour timeout): the
//!   payment stays `processing` and the order `pending`, so the payer can try
//!   again (Payme then creates a new transaction for the same order);
//! - cancelled after perform (-2, a refund from Payme's cabinet): payment
//!   `refunded`, order `cancelled`.
//!
//! Every write also bumps the payment's version, so two calls about the same
//! order never both land from the same reading: the loser is decided again
//! from fresh state, and a repeat then gets the answer the stored state
//! gives — identical to the winner's.

use super::auth::authorize;
use super::protocol::{
    answer_body, parse_request, request_id, Answer, Command, FiscalKind, RpcError,
};
use super::rules::{self, Effect, Facts, OrderFacts, Outcome, PaymeTransaction};
use super::settings::PaymeSettings;
use crate::domain::{
    EventKind, NewEvent, OrderChange, OrderStatus, Payment, PaymentStatus, PaymentType, Provider,
};
use crate::gateways::inbound::{
    refusal_key, Decision, InboundAdapter, InboundContext, InboundReply, InboundRequest,
    InboundRoute,
};
use crate::store::{Changeset, GatewayTxn, GatewayTxnWrite, NewInbound, Store, StoreError};
use async_trait::async_trait;
use serde_json::{json, Value};

/// The largest statement answered (Payme asks for windows of hours).
const STATEMENT_LIMIT: i64 = 10_000;

pub struct PaymeRpc {
    pub settings: PaymeSettings,
}

/// A stored transaction with the row version its next update must name and
/// the row's data (which also keeps the receipts of SetFiscalData).
struct Stored {
    txn: PaymeTransaction,
    version: i64,
    data: Value,
}

fn stored(row: GatewayTxn) -> Result<Stored, StoreError> {
    let txn = serde_json::from_value(row.data.clone())
        .map_err(|e| StoreError::Corrupt(format!("Payme transaction {}: {e}", row.external_id)))?;
    Ok(Stored {
        txn,
        version: row.version,
        data: row.data,
    })
}

/// What the decision reads, and the payment it may change.
struct Loaded {
    facts: Facts,
    payment: Option<Payment>,
    order_id: Option<i64>,
    /// Stored rows by Payme id (version and data), for the decision's updates.
    rows: Vec<(String, i64, Value)>,
}

/// Reads the facts. The order's payment is read before its transactions:
/// every Payme write names the payment's version, so a transaction written
/// after that read makes our write conflict and the call is decided again —
/// the facts are one consistent reading.
async fn load(store: &Store, command: &Command, now_ms: i64) -> Result<Loaded, StoreError> {
    let mut rows = Vec::new();
    // A first look by Payme id, to find the order of Perform/Cancel/Check.
    let mut transaction = match command.payme_id() {
        Some(id) => match store.gateway_txn(Provider::Payme, id.as_str()).await? {
            Some(row) => {
                let s = stored(row)?;
                rows.push((s.txn.payme_id.as_str().to_string(), s.version, s.data));
                Some(s.txn)
            }
            None => None,
        },
        None => None,
    };
    let order_text = command
        .order_id()
        .map(str::to_string)
        .or_else(|| transaction.as_ref().map(|t| t.order_id.clone()));
    // Only orders paid through Payme are Payme's to see.
    let order = match order_text.as_deref().and_then(|t| t.parse::<i64>().ok()) {
        Some(id) => store
            .order(id)
            .await?
            .filter(|o| o.payment_type == PaymentType::Payme),
        None => None,
    };
    let payment = match order.as_ref().and_then(|o| o.payment_id) {
        Some(id) => store.payment(id).await?,
        None => None,
    };
    let mut active = None;
    if let Some(p) = &payment {
        // The consistent reading (after the payment's): it replaces the first look.
        for row in store.gateway_txns_of_payment(p.id).await? {
            let s = stored(row)?;
            let id = s.txn.payme_id.as_str().to_string();
            if command.payme_id().is_some_and(|c| c.as_str() == id) {
                transaction = Some(s.txn.clone());
            }
            rows.retain(|(known, _, _)| known != &id);
            if s.txn.is_active() {
                active = Some(s.txn.clone());
            }
            rows.push((id, s.version, s.data));
        }
    }
    let statement = match command {
        Command::GetStatement { from_ms, to_ms } => store
            .gateway_txns_between(Provider::Payme, *from_ms, *to_ms, STATEMENT_LIMIT)
            .await?
            .into_iter()
            .map(|row| stored(row).map(|s| s.txn))
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    Ok(Loaded {
        facts: Facts {
            now_ms,
            transaction,
            order: order.as_ref().map(|o| OrderFacts {
                amount_tiyin: o.amount.minor(),
                status: payable_status(o.status, payment.as_ref().map(|p| p.status)),
                fulfilled: false,
            }),
            active,
            statement,
            new_transaction_id: uuid::Uuid::now_v7().to_string(),
        },
        payment,
        order_id: order.map(|o| o.id),
        rows,
    })
}

/// The order's status as the rules must see it: a pending order whose
/// payment has ended (expired, say) is no longer payable, even in the moment
/// before its order update lands (docs/expiry.md).
fn payable_status(order: OrderStatus, payment: Option<PaymentStatus>) -> OrderStatus {
    match (order, payment) {
        (OrderStatus::Pending, Some(PaymentStatus::Failed | PaymentStatus::Cancelled)) => {
            OrderStatus::Cancelled
        }
        (status, _) => status,
    }
}

fn txn_write(
    t: &PaymeTransaction,
    payment: &Payment,
    version: Option<i64>,
) -> Result<GatewayTxnWrite, StoreError> {
    let data = serde_json::to_value(t)
        .map_err(|e| StoreError::Corrupt(format!("Payme transaction {}: {e}", t.payme_id)))?;
    Ok(GatewayTxnWrite {
        provider: Provider::Payme,
        external_id: t.payme_id.as_str().to_string(),
        payment_id: payment.id,
        state: t.state.number().to_string(),
        amount_minor: t.amount_tiyin,
        external_time_ms: Some(t.payme_time_ms),
        data,
        expected_version: version,
    })
}

/// The decision's effects as one changeset on top of the stored call.
fn write(
    message: NewInbound,
    loaded: &Loaded,
    decision: &rules::Decision,
    ctx: &InboundContext<'_>,
) -> Result<Changeset, StoreError> {
    let mut cs = Changeset::from_inbound(message);
    let Some(payment) = &loaded.payment else {
        // Nothing to change without the order's payment (the rules refused).
        return Ok(cs);
    };
    let row_of = |id: &str| {
        loaded
            .rows
            .iter()
            .find(|(known, _, _)| known == id)
            .map(|(_, v, data)| (*v, data))
            .ok_or_else(|| StoreError::Corrupt(format!("Payme transaction {id} was not read")))
    };
    let mut status: Option<(PaymentStatus, Option<String>)> = None;
    let mut order: Option<OrderChange> = None;
    let mut notes = Vec::new();
    for effect in &decision.effects {
        match effect {
            Effect::Create(t) => {
                cs = cs.gateway_txn(txn_write(t, payment, None)?);
                if payment.status == PaymentStatus::Pending {
                    status = Some((PaymentStatus::Processing, None));
                }
                notes.push(format!("Payme transaction {} created", t.payme_id));
            }
            Effect::Update { to, outcome, .. } => {
                let (version, old) = row_of(to.payme_id.as_str())?;
                let mut w = txn_write(to, payment, Some(version))?;
                // Keep the receipts SetFiscalData stored with the transaction.
                if let Some(fiscal) = old.get("fiscal") {
                    w.data["fiscal"] = fiscal.clone();
                }
                cs = cs.gateway_txn(w);
                match outcome {
                    Outcome::Paid => {
                        status = Some((PaymentStatus::Completed, None));
                        order = loaded
                            .order_id
                            .and_then(|id| OrderChange::from_pending(id, OrderStatus::Paid));
                        notes.push(format!("Payme transaction {} performed", to.payme_id));
                    }
                    Outcome::Cancelled { reason } => notes.push(format!(
                        "Payme transaction {} cancelled before perform (reason {reason}); the order stays payable",
                        to.payme_id
                    )),
                    Outcome::Refunded { reason } => {
                        status = Some((PaymentStatus::Refunded, Some(format!("payme_reason_{reason}"))));
                        order = loaded.order_id.and_then(|id| {
                            OrderChange::new(id, OrderStatus::Paid, OrderStatus::Cancelled)
                        });
                        notes.push(format!(
                            "Payme transaction {} cancelled after perform (reason {reason}): refunded",
                            to.payme_id
                        ));
                    }
                }
            }
            Effect::StoreFiscalData {
                payme_id,
                kind,
                fiscal_data,
            } => {
                let (version, old) = row_of(payme_id.as_str())?;
                let Some(t) = loaded.facts.transaction.as_ref() else {
                    continue;
                };
                let mut w = txn_write(t, payment, Some(version))?;
                let mut fiscal = old.get("fiscal").cloned().unwrap_or_else(|| json!({}));
                let kind = match kind {
                    FiscalKind::Perform => "perform",
                    FiscalKind::Cancel => "cancel",
                };
                fiscal[kind] = Value::Object(fiscal_data.clone());
                w.data["fiscal"] = fiscal;
                cs = cs.gateway_txn(w);
                notes.push(format!("Payme fiscal data stored for {payme_id}"));
            }
        }
    }
    if decision.effects.is_empty() {
        // A reading or a refusal: only the call is stored.
        return Ok(cs);
    }
    // Every write names the payment's version (see the module docs).
    let mut change = payment.change();
    if let Some((to, reason)) = status.filter(|(to, _)| *to != payment.status) {
        change = change
            .status(to, reason.as_deref())
            .map_err(|e| StoreError::Corrupt(format!("Payme decision: {e}")))?;
        if to == PaymentStatus::Completed {
            if let Some(t) = loaded.facts.transaction.as_ref() {
                change = change
                    .gateway_trans_id(t.payme_id.as_str().to_string())
                    .tracking_code(t.transaction.clone());
            }
        }
        notes.push(format!("{} → {}", payment.status, to));
    }
    cs = cs.change_payment(change, ctx.retry);
    if let Some(o) = order {
        cs = cs.order_status(o, ctx.retry);
    }
    Ok(cs.events(
        notes
            .into_iter()
            .map(|n| NewEvent::new(payment.id, EventKind::Webhook, n)),
    ))
}

fn message(req: &InboundRequest, payment: Option<&Payment>, outcome: &str) -> NewInbound {
    NewInbound {
        provider: Provider::Payme,
        // Every call is kept: repeats are recognised by the transaction's
        // state, not by the call.
        dedupe_key: refusal_key("call"),
        payment_id: payment.map(|p| p.id),
        method: req.method.clone(),
        query: req.query.clone(),
        headers: req.headers.clone(),
        body: req.body_text(),
        outcome: outcome.to_string(),
    }
}

fn reply(id: &Value, answer: &Answer) -> InboundReply {
    InboundReply::ok(answer_body(id, answer))
}

#[async_trait]
impl InboundAdapter for PaymeRpc {
    fn provider(&self) -> Provider {
        Provider::Payme
    }

    fn routes(&self) -> &'static [InboundRoute] {
        &[InboundRoute {
            path: "/payme/",
            get: false,
            post: true,
        }]
    }

    async fn decide(
        &self,
        ctx: &InboundContext<'_>,
        req: &InboundRequest,
    ) -> Result<Decision, StoreError> {
        if let Err(e) = authorize(req.authorization.as_deref(), &self.settings.keys()) {
            let write = Changeset::from_inbound(message(req, None, "refused:unauthorized"));
            return Ok(Decision::refuse(
                Some(write),
                "unauthorized",
                reply(&request_id(&req.body), &Err(e)),
                None,
            ));
        }
        let request = match parse_request(&req.body, &self.settings.account_field) {
            Ok(r) => r,
            Err(rejection) => {
                let outcome = format!("refused:{}", rejection.error.code);
                let write = Changeset::from_inbound(message(req, None, &outcome));
                return Ok(Decision::refuse(
                    Some(write),
                    "invalid",
                    reply(&rejection.id, &Err(rejection.error)),
                    None,
                ));
            }
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        let loaded = load(ctx.store, &request.command, now_ms).await?;
        let decision = rules::decide(
            &request.command,
            &loaded.facts,
            &self.settings.account_field,
        );
        let (label, outcome) = match &decision.answer {
            Ok(_) => ("accepted", "accepted".to_string()),
            Err(e) => ("refused", format!("refused:{}", e.code)),
        };
        let payment = loaded.payment.as_ref();
        let write = write(message(req, payment, &outcome), &loaded, &decision, ctx)?;
        let answer = reply(&request.id, &decision.answer);
        Ok(Decision {
            write: Some(write),
            on_duplicate: answer.clone(),
            reply: answer,
            outcome: label,
            payment_id: payment.map(|p| p.id),
        })
    }

    /// `-32400`: our database could not be read or written; Payme retries.
    fn unavailable(&self, req: &InboundRequest) -> InboundReply {
        reply(&request_id(&req.body), &Err(RpcError::system_error()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_order_whose_payment_ended_is_not_payable() {
        use OrderStatus as O;
        use PaymentStatus as P;
        for (order, payment, seen) in [
            (O::Pending, Some(P::Processing), O::Pending),
            (O::Pending, Some(P::Pending), O::Pending),
            (O::Pending, None, O::Pending),
            (O::Pending, Some(P::Cancelled), O::Cancelled),
            (O::Pending, Some(P::Failed), O::Cancelled),
            (O::Paid, Some(P::Completed), O::Paid),
            (O::Cancelled, Some(P::Refunded), O::Cancelled),
        ] {
            assert_eq!(
                payable_status(order, payment),
                seen,
                "{order:?} {payment:?}"
            );
        }
    }
}
