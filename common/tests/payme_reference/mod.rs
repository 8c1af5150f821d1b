//! A reference Payme merchant for tests: paygate's Payme protocol, auth and
//! rules over an in-memory map, served over real HTTP on 127.0.0.1. One lock
//! around decide-and-apply makes every call atomic, which is what the real
//! store must provide. A `Fault` breaks one rule on purpose, to show that the
//! merchant test run notices.
#![allow(dead_code)] // each test binary uses a different subset

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use paygate_common::domain::OrderStatus;
use paygate_common::gateways::payme::auth;
use paygate_common::gateways::payme::protocol::{
    answer_body, error_body, parse_request, request_id, Command, PaymeId, State as TxState,
};
use paygate_common::gateways::payme::rules::{
    self, Effect, Facts, OrderFacts, Outcome, PaymeTransaction,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// PerformTransaction performs a transaction cancelled before perform.
    PerformsCancelled,
    /// GetStatement filters on our create_time instead of Payme's time.
    StatementOnCreateTime,
}

#[derive(Debug, Clone, Copy)]
pub struct Order {
    pub amount_tiyin: i64,
    pub status: OrderStatus,
}

#[derive(Default)]
struct World {
    orders: HashMap<String, Order>,
    transactions: HashMap<PaymeId, PaymeTransaction>,
    next_order: u64,
    next_transaction: u64,
}

struct Shared {
    key: String,
    field: String,
    fault: Fault,
    world: Mutex<World>,
}

#[derive(Clone)]
pub struct Reference {
    /// The Payme endpoint, `http://127.0.0.1:PORT/payme/`.
    pub url: String,
    /// `POST` here with the shop seed's body makes an order.
    pub create_order_url: String,
    shared: Arc<Shared>,
}

impl Reference {
    pub async fn start(key: &str, field: &str, fault: Fault) -> Self {
        let shared = Arc::new(Shared {
            key: key.to_owned(),
            field: field.to_owned(),
            fault,
            world: Mutex::new(World::default()),
        });
        let app = Router::new()
            .route("/payme/", post(rpc))
            .route("/orders", post(create_order))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url: format!("http://{addr}/payme/"),
            create_order_url: format!("http://{addr}/orders"),
            shared,
        }
    }

    pub fn add_order(&self, amount_tiyin: i64) -> String {
        add_order(&self.shared, amount_tiyin)
    }

    pub fn order(&self, order_id: &str) -> Option<Order> {
        self.shared
            .world
            .lock()
            .unwrap()
            .orders
            .get(order_id)
            .copied()
    }

    pub fn transactions_of(&self, order_id: &str) -> Vec<PaymeTransaction> {
        let world = self.shared.world.lock().unwrap();
        let mut all: Vec<PaymeTransaction> = world
            .transactions
            .values()
            .filter(|t| t.order_id == order_id)
            .cloned()
            .collect();
        all.sort_by_key(|t| t.create_time_ms);
        all
    }
}

fn add_order(shared: &Shared, amount_tiyin: i64) -> String {
    let mut world = shared.world.lock().unwrap();
    world.next_order += 1;
    let id = world.next_order.to_string();
    world.orders.insert(
        id.clone(),
        Order {
            amount_tiyin,
            status: OrderStatus::Pending,
        },
    );
    id
}

/// The shop seed's `{"amount": "500.00"}` in tiyin (test input only).
fn tiyin(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, "0"));
    let frac = format!("{frac:0<2}");
    Some(whole.parse::<i64>().ok()? * 100 + frac.get(..2)?.parse::<i64>().ok()?)
}

async fn create_order(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Json<Value> {
    let amount = body["amount"].as_str().and_then(tiyin).unwrap_or(0);
    let id = add_order(&shared, amount);
    Json(
        json!({"order_id": id.parse::<u64>().unwrap(), "amount": body["amount"], "status": "pending"}),
    )
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

async fn rpc(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Err(e) = auth::authorize(header, &[&shared.key]) {
        return Json(error_body(&request_id(&body), &e));
    }
    let request = match parse_request(&body, &shared.field) {
        Ok(r) => r,
        Err(rejection) => return Json(error_body(&rejection.id, &rejection.error)),
    };
    let mut world = shared.world.lock().unwrap();
    let facts = world.facts(&request.command, now_ms());
    let decision = match (shared.fault, &request.command, &facts.transaction) {
        (Fault::PerformsCancelled, Command::PerformTransaction { .. }, Some(t))
            if t.state == TxState::CancelledBeforePerform =>
        {
            let revived = PaymeTransaction {
                state: TxState::Created,
                ..t.clone()
            };
            let order = facts.order.clone().map(|o| OrderFacts {
                status: OrderStatus::Pending,
                ..o
            });
            rules::perform_transaction(Some(&revived), order.as_ref(), facts.now_ms)
        }
        (Fault::StatementOnCreateTime, Command::GetStatement { from_ms, to_ms }, _) => {
            let by_create_time: Vec<PaymeTransaction> = facts
                .statement
                .iter()
                .map(|t| PaymeTransaction {
                    payme_time_ms: t.create_time_ms,
                    ..t.clone()
                })
                .collect();
            rules::get_statement(*from_ms, *to_ms, &by_create_time, &shared.field)
        }
        _ => rules::decide(&request.command, &facts, &shared.field),
    };
    world.apply(&decision.effects);
    Json(answer_body(&request.id, &decision.answer))
}

impl World {
    fn facts(&mut self, command: &Command, now_ms: i64) -> Facts {
        let transaction = command
            .payme_id()
            .and_then(|id| self.transactions.get(id))
            .cloned();
        let order_id = command
            .order_id()
            .map(str::to_owned)
            .or_else(|| transaction.as_ref().map(|t| t.order_id.clone()));
        let order = order_id
            .as_ref()
            .and_then(|id| self.orders.get(id))
            .map(|o| OrderFacts {
                amount_tiyin: o.amount_tiyin,
                status: o.status,
                fulfilled: false,
            });
        let active = order_id.as_ref().and_then(|id| {
            self.transactions
                .values()
                .find(|t| &t.order_id == id && t.is_active())
                .cloned()
        });
        let statement = match command {
            Command::GetStatement { .. } => self.transactions.values().cloned().collect(),
            _ => Vec::new(),
        };
        self.next_transaction += 1;
        Facts {
            now_ms,
            transaction,
            order,
            active,
            statement,
            new_transaction_id: self.next_transaction.to_string(),
        }
    }

    fn apply(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::Create(t) => {
                    self.transactions.insert(t.payme_id.clone(), t.clone());
                }
                // Decided under the lock, so `from` still holds (a broken
                // merchant's forced update is applied all the same).
                Effect::Update { to, outcome, .. } => {
                    self.transactions.insert(to.payme_id.clone(), to.clone());
                    let status = match outcome {
                        Outcome::Paid => Some(OrderStatus::Paid),
                        Outcome::Refunded { .. } => Some(OrderStatus::Cancelled),
                        Outcome::Cancelled { .. } => None,
                    };
                    if let (Some(status), Some(order)) = (status, self.orders.get_mut(&to.order_id))
                    {
                        order.status = status;
                    }
                }
                Effect::StoreFiscalData { .. } => {}
            }
        }
    }
}
