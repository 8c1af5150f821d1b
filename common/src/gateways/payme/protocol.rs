//! The Payme Merchant API envelope: JSON-RPC requests parsed into typed
//! commands, and the exact answer bodies (docs/gateways/payme.md, "Envelope",
//! "Data types", "Methods" and "Errors").
//!
//! Every answer is HTTP 200 and echoes the request's `id` (whatever JSON value
//! it was; `null` when the body had none or could not be read). A success is
//! `{"id", "result"}`, a refusal `{"id", "error": {"code", "message": {"ru",
//! "uz", "en"}, "data"}}`. Times are 13-digit milliseconds with `0` where a
//! time does not apply; `transaction` (our id) is always a string.
//!
//! How request fields are judged:
//! - not JSON: -32700; not an object, no `method` string, `params` not an
//!   object, a required field missing or of the wrong JSON type: -32600 with
//!   `data` naming the field; an unknown method: -32601 with `data` = method.
//! - `amount`: a JSON number that is a positive integer of tiyin; any other
//!   number (0, negative, fractional, too large) is -31001 (wrong amount).
//! - `account`: an object; our field (`PAYME_ACCOUNT_FIELD`, default
//!   `order_id`) missing, empty or not a string/integer is -31050 with
//!   `data` = the field name.
//! - `id` (Payme's transaction id): 24 ASCII letters or digits (a Payme
//!   Business object id). On CreateTransaction another shape is -32600; on
//!   the methods that look a transaction up it is -31003 (no transaction can
//!   have that id).
//! - `time`: a 13-digit integer of milliseconds. `from`/`to` of GetStatement:
//!   integers from 0 to 9 999 999 999 999 (a window may start at 0).
//! - `reason` of CancelTransaction: an integer (stored as sent; Payme's
//!   documented reasons are 1–5 and 10).
//! - SetFiscalData's `type` (PERFORM or CANCEL) and `fiscal_data` (object):
//!   -32602 when wrong, as the sources on that method say.
//!
//! ChangePassword (optional, legacy) is not offered: it answers -32601, and a
//! new key is configured with `PAYME_KEY` instead.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::fmt;

/// The account field Payme cabinets are usually set up with.
pub const DEFAULT_ACCOUNT_FIELD: &str = "order_id";

/// Error codes (docs/gateways/payme.md, "Errors").
pub mod code {
    pub const METHOD_NOT_POST: i32 = -32300;
    pub const PARSE_ERROR: i32 = -32700;
    pub const INVALID_REQUEST: i32 = -32600;
    pub const METHOD_NOT_FOUND: i32 = -32601;
    pub const INVALID_PARAMS: i32 = -32602;
    pub const INSUFFICIENT_PRIVILEGES: i32 = -32504;
    pub const SYSTEM_ERROR: i32 = -32400;
    pub const WRONG_AMOUNT: i32 = -31001;
    pub const TRANSACTION_NOT_FOUND: i32 = -31003;
    pub const CANNOT_CANCEL: i32 = -31007;
    pub const CANNOT_PERFORM: i32 = -31008;
    /// The order named by the account does not exist.
    pub const ORDER_NOT_FOUND: i32 = -31050;
    /// The order exists but no longer waits for payment (paid, cancelled, failed).
    pub const ORDER_NOT_PAYABLE: i32 = -31051;
    /// Another Payme transaction is active or completed for this order.
    pub const ORDER_BUSY: i32 = -31052;
    /// The account-error range; every code in it needs a localized message
    /// and `data` naming the account field.
    pub const ACCOUNT_ERRORS: std::ops::RangeInclusive<i32> = -31099..=-31050;
}

/// A message in the three languages Payme shows its payers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Localized {
    pub ru: &'static str,
    pub uz: &'static str,
    pub en: &'static str,
}

const fn text(ru: &'static str, uz: &'static str, en: &'static str) -> Localized {
    Localized { ru, uz, en }
}

/// A refusal in Payme's format. `data` names the offending field (account
/// errors: the account field; -32601: the method).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RpcError {
    pub code: i32,
    pub message: Localized,
    pub data: Option<String>,
}

impl RpcError {
    fn new(code: i32, message: Localized, data: Option<&str>) -> Self {
        Self {
            code,
            message,
            data: data.map(str::to_owned),
        }
    }

    pub fn method_not_post() -> Self {
        Self::new(
            code::METHOD_NOT_POST,
            text(
                "Метод запроса должен быть POST",
                "So'rov usuli POST bo'lishi kerak",
                "The request method must be POST",
            ),
            None,
        )
    }

    pub fn parse_error() -> Self {
        Self::new(
            code::PARSE_ERROR,
            text(
                "Ошибка парсинга JSON",
                "JSON tahlil qilishda xatolik",
                "The request body is not valid JSON",
            ),
            None,
        )
    }

    pub fn invalid_request(field: &str) -> Self {
        Self::new(
            code::INVALID_REQUEST,
            text(
                "Отсутствуют обязательные поля или неверный тип поля",
                "Majburiy maydonlar yo'q yoki maydon turi noto'g'ri",
                "A required field is missing or has the wrong type",
            ),
            Some(field),
        )
    }

    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            code::METHOD_NOT_FOUND,
            text("Метод не найден", "Usul topilmadi", "Method not found"),
            Some(method),
        )
    }

    pub fn invalid_params(field: &str) -> Self {
        Self::new(
            code::INVALID_PARAMS,
            text(
                "Неверные параметры",
                "Noto'g'ri parametrlar",
                "Invalid parameters",
            ),
            Some(field),
        )
    }

    pub fn insufficient_privileges() -> Self {
        Self::new(
            code::INSUFFICIENT_PRIVILEGES,
            text(
                "Недостаточно привилегий для выполнения метода",
                "Usulni bajarish uchun huquqlar yetarli emas",
                "Insufficient privileges to perform this method",
            ),
            None,
        )
    }

    /// Our side cannot answer now (database down): never a false success.
    pub fn system_error() -> Self {
        Self::new(
            code::SYSTEM_ERROR,
            text(
                "Системная ошибка, повторите позже",
                "Tizim xatosi, keyinroq qayta urinib ko'ring",
                "System error, try again later",
            ),
            None,
        )
    }

    pub fn wrong_amount() -> Self {
        Self::new(
            code::WRONG_AMOUNT,
            text("Неверная сумма", "Noto'g'ri summa", "Wrong amount"),
            None,
        )
    }

    pub fn transaction_not_found() -> Self {
        Self::new(
            code::TRANSACTION_NOT_FOUND,
            text(
                "Транзакция не найдена",
                "Tranzaksiya topilmadi",
                "Transaction not found",
            ),
            None,
        )
    }

    pub fn cannot_cancel() -> Self {
        Self::new(
            code::CANNOT_CANCEL,
            text(
                "Заказ выполнен, транзакцию нельзя отменить",
                "Buyurtma bajarilgan, tranzaksiyani bekor qilib bo'lmaydi",
                "The order is fulfilled; the transaction cannot be cancelled",
            ),
            None,
        )
    }

    pub fn cannot_perform() -> Self {
        Self::new(
            code::CANNOT_PERFORM,
            text(
                "Невозможно выполнить операцию в текущем состоянии транзакции",
                "Tranzaksiyaning joriy holatida amalni bajarib bo'lmaydi",
                "The operation cannot be performed in the transaction's current state",
            ),
            None,
        )
    }

    /// -31008 for a transaction cancelled (or refused) by the 12-hour timeout.
    pub fn expired() -> Self {
        Self::new(
            code::CANNOT_PERFORM,
            text(
                "Истекло время ожидания транзакции",
                "Tranzaksiya kutish vaqti tugadi",
                "The transaction has expired",
            ),
            None,
        )
    }

    /// -31008 when the order no longer waits for this payment.
    pub fn order_cannot_be_paid() -> Self {
        Self::new(
            code::CANNOT_PERFORM,
            text(
                "Заказ не ожидает оплаты",
                "Buyurtma to'lovni kutmayapti",
                "The order no longer waits for payment",
            ),
            None,
        )
    }

    pub fn order_not_found(account_field: &str) -> Self {
        Self::new(
            code::ORDER_NOT_FOUND,
            text("Заказ не найден", "Buyurtma topilmadi", "Order not found"),
            Some(account_field),
        )
    }

    pub fn order_not_payable(account_field: &str) -> Self {
        Self::new(
            code::ORDER_NOT_PAYABLE,
            text(
                "Заказ уже оплачен или отменён",
                "Buyurtma allaqachon to'langan yoki bekor qilingan",
                "The order is already paid or cancelled",
            ),
            Some(account_field),
        )
    }

    pub fn order_busy(account_field: &str) -> Self {
        Self::new(
            code::ORDER_BUSY,
            text(
                "Для этого заказа уже есть другая транзакция",
                "Ushbu buyurtma uchun boshqa tranzaksiya mavjud",
                "Another transaction is active or completed for this order",
            ),
            Some(account_field),
        )
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "payme error {}: {}", self.code, self.message.en)
    }
}

impl std::error::Error for RpcError {}

/// Payme's transaction id: a 24-character Payme Business object id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PaymeId(String);

impl PaymeId {
    pub const LEN: usize = 24;

    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == Self::LEN && s.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PaymeId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| format!("not a {}-character Payme id", Self::LEN))
    }
}

impl From<PaymeId> for String {
    fn from(id: PaymeId) -> String {
        id.0
    }
}

impl fmt::Display for PaymeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A transaction's state as Payme numbers it (docs/gateways/payme.md,
/// "States and reasons"); serialized as that number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "i8", try_from = "i8")]
pub enum State {
    /// 1: created, waiting for PerformTransaction.
    Created,
    /// 2: performed (paid).
    Performed,
    /// -1: cancelled before perform.
    CancelledBeforePerform,
    /// -2: cancelled after perform (refunded).
    CancelledAfterPerform,
}

impl State {
    pub fn number(self) -> i8 {
        match self {
            State::Created => 1,
            State::Performed => 2,
            State::CancelledBeforePerform => -1,
            State::CancelledAfterPerform => -2,
        }
    }

    pub fn from_number(n: i8) -> Option<Self> {
        match n {
            1 => Some(State::Created),
            2 => Some(State::Performed),
            -1 => Some(State::CancelledBeforePerform),
            -2 => Some(State::CancelledAfterPerform),
            _ => None,
        }
    }

    pub fn is_cancelled(self) -> bool {
        matches!(
            self,
            State::CancelledBeforePerform | State::CancelledAfterPerform
        )
    }
}

impl From<State> for i8 {
    fn from(s: State) -> i8 {
        s.number()
    }
}

impl TryFrom<i8> for State {
    type Error = String;
    fn try_from(n: i8) -> Result<Self, String> {
        Self::from_number(n).ok_or_else(|| format!("{n} is not a Payme transaction state"))
    }
}

/// SetFiscalData's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FiscalKind {
    Perform,
    Cancel,
}

/// One Payme call, its fields already checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    CheckPerformTransaction {
        amount_tiyin: i64,
        order_id: String,
    },
    CreateTransaction {
        id: PaymeId,
        time_ms: i64,
        amount_tiyin: i64,
        order_id: String,
    },
    PerformTransaction {
        id: PaymeId,
    },
    CancelTransaction {
        id: PaymeId,
        reason: i32,
    },
    CheckTransaction {
        id: PaymeId,
    },
    GetStatement {
        from_ms: i64,
        to_ms: i64,
    },
    SetFiscalData {
        id: PaymeId,
        kind: FiscalKind,
        fiscal_data: Map<String, Value>,
    },
}

impl Command {
    pub fn method(&self) -> &'static str {
        match self {
            Command::CheckPerformTransaction { .. } => "CheckPerformTransaction",
            Command::CreateTransaction { .. } => "CreateTransaction",
            Command::PerformTransaction { .. } => "PerformTransaction",
            Command::CancelTransaction { .. } => "CancelTransaction",
            Command::CheckTransaction { .. } => "CheckTransaction",
            Command::GetStatement { .. } => "GetStatement",
            Command::SetFiscalData { .. } => "SetFiscalData",
        }
    }

    /// The Payme transaction id the command is about, if any.
    pub fn payme_id(&self) -> Option<&PaymeId> {
        match self {
            Command::CreateTransaction { id, .. }
            | Command::PerformTransaction { id }
            | Command::CancelTransaction { id, .. }
            | Command::CheckTransaction { id }
            | Command::SetFiscalData { id, .. } => Some(id),
            Command::CheckPerformTransaction { .. } | Command::GetStatement { .. } => None,
        }
    }

    /// The order named by the command's account, if it has one.
    pub fn order_id(&self) -> Option<&str> {
        match self {
            Command::CheckPerformTransaction { order_id, .. }
            | Command::CreateTransaction { order_id, .. } => Some(order_id),
            _ => None,
        }
    }
}

/// A parsed request: the `id` to echo and the command.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub id: Value,
    pub command: Command,
}

/// A request refused before any rule ran; answer it with [`error_body`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    pub id: Value,
    pub error: RpcError,
}

/// The request's `id` if the body is a JSON object that has one, else `null`;
/// for answers given before parsing (authentication failures).
pub fn request_id(body: &[u8]) -> Value {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(Value::Null)
}

/// Parses a request body. `account_field` is the account key the cashbox
/// is set up with (`PAYME_ACCOUNT_FIELD`).
pub fn parse_request(body: &[u8], account_field: &str) -> Result<Request, Rejection> {
    let value: Value = serde_json::from_slice(body).map_err(|_| Rejection {
        id: Value::Null,
        error: RpcError::parse_error(),
    })?;
    let Value::Object(envelope) = value else {
        return Err(Rejection {
            id: Value::Null,
            error: RpcError::invalid_request("request"),
        });
    };
    let id = envelope.get("id").cloned().unwrap_or(Value::Null);
    let reject = |error: RpcError| Rejection {
        id: id.clone(),
        error,
    };
    let method = match envelope.get("method") {
        Some(Value::String(m)) => m.as_str(),
        _ => return Err(reject(RpcError::invalid_request("method"))),
    };
    let empty = Map::new();
    let params = match envelope.get("params") {
        Some(Value::Object(p)) => p,
        None | Some(Value::Null) => &empty,
        Some(_) => return Err(reject(RpcError::invalid_request("params"))),
    };
    let p = Params {
        params,
        account_field,
    };
    let command = match method {
        "CheckPerformTransaction" => (|| {
            Ok(Command::CheckPerformTransaction {
                amount_tiyin: p.amount()?,
                order_id: p.order_id()?,
            })
        })(),
        "CreateTransaction" => (|| {
            Ok(Command::CreateTransaction {
                id: p.new_id()?,
                time_ms: p.time("time")?,
                amount_tiyin: p.amount()?,
                order_id: p.order_id()?,
            })
        })(),
        "PerformTransaction" => p.known_id().map(|id| Command::PerformTransaction { id }),
        "CancelTransaction" => (|| {
            Ok(Command::CancelTransaction {
                id: p.known_id()?,
                reason: p.reason()?,
            })
        })(),
        "CheckTransaction" => p.known_id().map(|id| Command::CheckTransaction { id }),
        "GetStatement" => (|| {
            Ok(Command::GetStatement {
                from_ms: p.bound("from")?,
                to_ms: p.bound("to")?,
            })
        })(),
        "SetFiscalData" => (|| {
            Ok(Command::SetFiscalData {
                id: p.known_id()?,
                kind: p.fiscal_kind()?,
                fiscal_data: p.fiscal_data()?,
            })
        })(),
        other => Err(RpcError::method_not_found(other)),
    };
    command
        .map(|command| Request {
            id: id.clone(),
            command,
        })
        .map_err(reject)
}

struct Params<'a> {
    params: &'a Map<String, Value>,
    account_field: &'a str,
}

/// The largest bound a 13-digit timestamp can have.
const MAX_TIME_MS: i64 = 9_999_999_999_999;
const MIN_TIME_MS: i64 = 1_000_000_000_000;
/// Longer account values cannot name one of our orders.
const MAX_ACCOUNT_VALUE_LEN: usize = 64;

impl Params<'_> {
    fn field(&self, name: &str) -> Result<&Value, RpcError> {
        match self.params.get(name) {
            Some(Value::Null) | None => Err(RpcError::invalid_request(name)),
            Some(v) => Ok(v),
        }
    }

    fn amount(&self) -> Result<i64, RpcError> {
        match self.field("amount")? {
            Value::Number(n) => match n.as_i64() {
                Some(a) if a > 0 => Ok(a),
                _ => Err(RpcError::wrong_amount()),
            },
            _ => Err(RpcError::invalid_request("amount")),
        }
    }

    fn order_id(&self) -> Result<String, RpcError> {
        let Value::Object(account) = self.field("account")? else {
            return Err(RpcError::invalid_request("account"));
        };
        let value = match account.get(self.account_field) {
            Some(Value::String(s)) => s.trim().to_owned(),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            _ => String::new(),
        };
        if value.is_empty() || value.len() > MAX_ACCOUNT_VALUE_LEN {
            return Err(RpcError::order_not_found(self.account_field));
        }
        Ok(value)
    }

    fn id_text(&self) -> Result<&str, RpcError> {
        match self.field("id")? {
            Value::String(s) => Ok(s),
            _ => Err(RpcError::invalid_request("id")),
        }
    }

    /// CreateTransaction's id: a malformed one is a malformed request.
    fn new_id(&self) -> Result<PaymeId, RpcError> {
        PaymeId::parse(self.id_text()?).ok_or_else(|| RpcError::invalid_request("id"))
    }

    /// An id to look up: a malformed one names no transaction.
    fn known_id(&self) -> Result<PaymeId, RpcError> {
        PaymeId::parse(self.id_text()?).ok_or_else(RpcError::transaction_not_found)
    }

    fn integer(&self, name: &str) -> Result<i64, RpcError> {
        self.field(name)?
            .as_i64()
            .ok_or_else(|| RpcError::invalid_request(name))
    }

    fn time(&self, name: &str) -> Result<i64, RpcError> {
        let t = self.integer(name)?;
        if (MIN_TIME_MS..=MAX_TIME_MS).contains(&t) {
            Ok(t)
        } else {
            Err(RpcError::invalid_request(name))
        }
    }

    fn bound(&self, name: &str) -> Result<i64, RpcError> {
        let t = self.integer(name)?;
        if (0..=MAX_TIME_MS).contains(&t) {
            Ok(t)
        } else {
            Err(RpcError::invalid_request(name))
        }
    }

    fn reason(&self) -> Result<i32, RpcError> {
        i32::try_from(self.integer("reason")?).map_err(|_| RpcError::invalid_request("reason"))
    }

    fn fiscal_kind(&self) -> Result<FiscalKind, RpcError> {
        match self.params.get("type") {
            Some(Value::String(s)) if s == "PERFORM" => Ok(FiscalKind::Perform),
            Some(Value::String(s)) if s == "CANCEL" => Ok(FiscalKind::Cancel),
            _ => Err(RpcError::invalid_params("type")),
        }
    }

    fn fiscal_data(&self) -> Result<Map<String, Value>, RpcError> {
        match self.params.get("fiscal_data") {
            Some(Value::Object(data)) => Ok(data.clone()),
            _ => Err(RpcError::invalid_params("fiscal_data")),
        }
    }
}

/// One row of GetStatement's `transactions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementEntry {
    pub id: PaymeId,
    pub time: i64,
    pub amount: i64,
    pub account: Map<String, Value>,
    pub create_time: i64,
    pub perform_time: i64,
    pub cancel_time: i64,
    pub transaction: String,
    pub state: State,
    pub reason: Option<i32>,
    /// We never split a payment between receivers.
    pub receivers: Option<Vec<Value>>,
}

/// The `result` of a successful call, one shape per method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RpcResult {
    /// CheckPerformTransaction.
    Allow { allow: bool },
    /// CreateTransaction.
    Created {
        create_time: i64,
        transaction: String,
        state: State,
    },
    /// PerformTransaction.
    Performed {
        transaction: String,
        perform_time: i64,
        state: State,
    },
    /// CancelTransaction.
    Cancelled {
        transaction: String,
        cancel_time: i64,
        state: State,
    },
    /// CheckTransaction.
    Status {
        create_time: i64,
        perform_time: i64,
        cancel_time: i64,
        transaction: String,
        state: State,
        reason: Option<i32>,
    },
    /// GetStatement.
    Statement { transactions: Vec<StatementEntry> },
    /// SetFiscalData.
    Success { success: bool },
}

/// What a call is answered with.
pub type Answer = Result<RpcResult, RpcError>;

/// `{"id": …, "result": …}`.
pub fn result_body(id: &Value, result: &RpcResult) -> Value {
    json!({"id": id, "result": result})
}

/// `{"id": …, "error": {"code", "message": {"ru","uz","en"}, "data"}}`.
pub fn error_body(id: &Value, error: &RpcError) -> Value {
    json!({"id": id, "error": error})
}

pub fn answer_body(id: &Value, answer: &Answer) -> Value {
    match answer {
        Ok(result) => result_body(id, result),
        Err(error) => error_body(id, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "5305e3bab097f420a62ced0b";

    fn parse(body: Value) -> Result<Request, Rejection> {
        parse_request(body.to_string().as_bytes(), "order_id")
    }

    fn refusal(body: Value) -> (i32, Option<String>, Value) {
        let r = parse(body).expect_err("refused");
        (r.error.code, r.error.data, r.id)
    }

    #[test]
    fn parses_every_method() {
        let cases = [
            (
                json!({"id": 1, "method": "CheckPerformTransaction",
                       "params": {"amount": 500000, "account": {"order_id": "197"}}}),
                Command::CheckPerformTransaction {
                    amount_tiyin: 500_000,
                    order_id: "197".into(),
                },
            ),
            (
                json!({"id": 2, "method": "CreateTransaction", "params": {"id": ID,
                       "time": 1_399_114_284_039_i64, "amount": 500000, "account": {"order_id": 197}}}),
                Command::CreateTransaction {
                    id: PaymeId::parse(ID).unwrap(),
                    time_ms: 1_399_114_284_039,
                    amount_tiyin: 500_000,
                    order_id: "197".into(),
                },
            ),
            (
                json!({"id": 3, "method": "PerformTransaction", "params": {"id": ID}}),
                Command::PerformTransaction {
                    id: PaymeId::parse(ID).unwrap(),
                },
            ),
            (
                json!({"id": 4, "method": "CancelTransaction", "params": {"id": ID, "reason": 5}}),
                Command::CancelTransaction {
                    id: PaymeId::parse(ID).unwrap(),
                    reason: 5,
                },
            ),
            (
                json!({"id": 5, "method": "CheckTransaction", "params": {"id": ID}}),
                Command::CheckTransaction {
                    id: PaymeId::parse(ID).unwrap(),
                },
            ),
            (
                json!({"id": 6, "method": "GetStatement",
                       "params": {"from": 0, "to": 1_399_114_284_039_i64}}),
                Command::GetStatement {
                    from_ms: 0,
                    to_ms: 1_399_114_284_039,
                },
            ),
            (
                json!({"id": 7, "method": "SetFiscalData", "params": {"id": ID, "type": "PERFORM",
                       "fiscal_data": {"receipt_id": 1}}}),
                Command::SetFiscalData {
                    id: PaymeId::parse(ID).unwrap(),
                    kind: FiscalKind::Perform,
                    fiscal_data: json!({"receipt_id": 1}).as_object().unwrap().clone(),
                },
            ),
        ];
        for (body, expected) in cases {
            let id = body["id"].clone();
            let request = parse(body).expect("parses");
            assert_eq!(request.command, expected);
            assert_eq!(request.id, id);
        }
    }

    #[test]
    fn envelope_errors() {
        let r = parse_request(b"{not json", "order_id").unwrap_err();
        assert_eq!((r.error.code, r.id), (code::PARSE_ERROR, Value::Null));
        assert_eq!(refusal(json!([1, 2])).0, code::INVALID_REQUEST);
        assert_eq!(
            refusal(json!({"id": 9, "params": {}})),
            (code::INVALID_REQUEST, Some("method".into()), json!(9))
        );
        assert_eq!(
            refusal(json!({"id": 9, "method": 5})).0,
            code::INVALID_REQUEST
        );
        assert_eq!(
            refusal(json!({"id": 9, "method": "CheckTransaction", "params": [1]})).1,
            Some("params".into())
        );
        assert_eq!(
            refusal(json!({"id": "x", "method": "ChangePassword", "params": {}})),
            (
                code::METHOD_NOT_FOUND,
                Some("ChangePassword".into()),
                json!("x")
            )
        );
    }

    #[test]
    fn missing_or_mistyped_fields_are_invalid_requests_naming_the_field() {
        let cases = [
            (
                json!({"method": "CheckPerformTransaction", "params": {"account": {"order_id": "1"}}}),
                "amount",
            ),
            (
                json!({"method": "CheckPerformTransaction", "params": {"amount": "500", "account": {"order_id": "1"}}}),
                "amount",
            ),
            (
                json!({"method": "CheckPerformTransaction", "params": {"amount": 500}}),
                "account",
            ),
            (
                json!({"method": "CheckPerformTransaction", "params": {"amount": 500, "account": "1"}}),
                "account",
            ),
            (
                json!({"method": "CreateTransaction", "params": {"id": ID, "amount": 500, "account": {"order_id": "1"}}}),
                "time",
            ),
            (
                json!({"method": "CreateTransaction", "params": {"id": ID, "time": 1_399_114_284, "amount": 500, "account": {"order_id": "1"}}}),
                "time",
            ),
            (
                json!({"method": "CreateTransaction", "params": {"id": ID, "time": 13_991_142_840_390_i64, "amount": 500, "account": {"order_id": "1"}}}),
                "time",
            ),
            (
                json!({"method": "CreateTransaction", "params": {"id": "short", "time": 1_399_114_284_039_i64, "amount": 500, "account": {"order_id": "1"}}}),
                "id",
            ),
            (
                json!({"method": "PerformTransaction", "params": {"id": 12}}),
                "id",
            ),
            (json!({"method": "PerformTransaction", "params": {}}), "id"),
            (
                json!({"method": "CancelTransaction", "params": {"id": ID}}),
                "reason",
            ),
            (
                json!({"method": "CancelTransaction", "params": {"id": ID, "reason": 2.5}}),
                "reason",
            ),
            (
                json!({"method": "CancelTransaction", "params": {"id": ID, "reason": 4_000_000_000_i64}}),
                "reason",
            ),
            (
                json!({"method": "GetStatement", "params": {"from": -1, "to": 5}}),
                "from",
            ),
            (
                json!({"method": "GetStatement", "params": {"from": 1}}),
                "to",
            ),
        ];
        for (body, field) in cases {
            let (code, data, _) = refusal(body.clone());
            assert_eq!(code, code::INVALID_REQUEST, "{body}");
            assert_eq!(data.as_deref(), Some(field), "{body}");
        }
    }

    #[test]
    fn amounts_must_be_positive_whole_tiyin() {
        for amount in [
            json!(0),
            json!(-5),
            json!(500.5),
            json!(500.0),
            json!(u64::MAX),
        ] {
            let body = json!({"method": "CheckPerformTransaction",
                              "params": {"amount": amount, "account": {"order_id": "1"}}});
            assert_eq!(refusal(body).0, code::WRONG_AMOUNT, "{amount}");
        }
    }

    #[test]
    fn account_errors_name_the_configured_field() {
        for account in [
            json!({}),
            json!({"order_id": ""}),
            json!({"order_id": "  "}),
            json!({"order_id": null}),
            json!({"order_id": true}),
            json!({"order_id": 1.5}),
            json!({"order_id": "x".repeat(65)}),
            json!({"invoice": "1"}),
        ] {
            let body = json!({"method": "CheckPerformTransaction",
                              "params": {"amount": 500, "account": account}});
            let (code, data, _) = refusal(body);
            assert_eq!(code, code::ORDER_NOT_FOUND, "{account}");
            assert_eq!(data.as_deref(), Some("order_id"));
        }
        let body = json!({"method": "CheckPerformTransaction",
                          "params": {"amount": 500, "account": {"order_id": "1", "invoice": "7"}}});
        let r = parse_request(body.to_string().as_bytes(), "invoice").unwrap();
        assert_eq!(r.command.order_id(), Some("7"));
    }

    #[test]
    fn lookups_of_malformed_ids_find_nothing() {
        for method in ["PerformTransaction", "CheckTransaction"] {
            let body = json!({"method": method, "params": {"id": "not-a-payme-id"}});
            assert_eq!(refusal(body).0, code::TRANSACTION_NOT_FOUND);
        }
        let body =
            json!({"method": "CancelTransaction", "params": {"id": "x".repeat(25), "reason": 1}});
        assert_eq!(refusal(body).0, code::TRANSACTION_NOT_FOUND);
    }

    #[test]
    fn fiscal_data_params() {
        let body = json!({"method": "SetFiscalData", "params": {"id": ID, "type": "REFUND", "fiscal_data": {}}});
        assert_eq!(
            refusal(body),
            (code::INVALID_PARAMS, Some("type".into()), Value::Null)
        );
        let body = json!({"method": "SetFiscalData", "params": {"id": ID, "type": "CANCEL", "fiscal_data": 1}});
        assert_eq!(refusal(body).1, Some("fiscal_data".into()));
    }

    #[test]
    fn request_id_survives_what_parsing_refuses() {
        assert_eq!(request_id(br#"{"id": 77, "method": 1}"#), json!(77));
        assert_eq!(request_id(b"garbage"), Value::Null);
        assert_eq!(request_id(b"{}"), Value::Null);
    }

    #[test]
    fn bodies_are_exactly_the_documented_ones() {
        let created = RpcResult::Created {
            create_time: 1_399_114_284_100,
            transaction: "5123".into(),
            state: State::Created,
        };
        assert_eq!(
            result_body(&json!(2032), &created),
            json!({"id": 2032, "result": {"create_time": 1_399_114_284_100_i64, "transaction": "5123", "state": 1}})
        );
        assert_eq!(
            error_body(&json!(2033), &RpcError::order_not_found("order_id")),
            json!({"id": 2033, "error": {"code": -31050, "message":
                {"ru": "Заказ не найден", "uz": "Buyurtma topilmadi", "en": "Order not found"},
                "data": "order_id"}})
        );
        assert_eq!(
            answer_body(&Value::Null, &Err(RpcError::insufficient_privileges())),
            json!({"id": null, "error": {"code": -32504, "message": RpcError::insufficient_privileges().message, "data": null}})
        );
        let status = RpcResult::Status {
            create_time: 1,
            perform_time: 0,
            cancel_time: 0,
            transaction: "t".into(),
            state: State::CancelledAfterPerform,
            reason: None,
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"create_time": 1, "perform_time": 0, "cancel_time": 0, "transaction": "t", "state": -2, "reason": null})
        );
        assert_eq!(
            serde_json::to_value(RpcResult::Allow { allow: true }).unwrap(),
            json!({"allow": true})
        );
        assert_eq!(
            serde_json::to_value(RpcResult::Success { success: true }).unwrap(),
            json!({"success": true})
        );
    }

    #[test]
    fn every_error_is_localized_in_three_languages() {
        let all = [
            RpcError::method_not_post(),
            RpcError::parse_error(),
            RpcError::invalid_request("x"),
            RpcError::method_not_found("x"),
            RpcError::invalid_params("x"),
            RpcError::insufficient_privileges(),
            RpcError::system_error(),
            RpcError::wrong_amount(),
            RpcError::transaction_not_found(),
            RpcError::cannot_cancel(),
            RpcError::cannot_perform(),
            RpcError::expired(),
            RpcError::order_cannot_be_paid(),
            RpcError::order_not_found("f"),
            RpcError::order_not_payable("f"),
            RpcError::order_busy("f"),
        ];
        for e in all {
            assert!(
                !e.message.ru.is_empty() && !e.message.uz.is_empty() && !e.message.en.is_empty()
            );
            if code::ACCOUNT_ERRORS.contains(&e.code) {
                assert_eq!(e.data.as_deref(), Some("f"), "{e}");
            }
        }
    }

    #[test]
    fn ids_and_states_round_trip_through_serde() {
        let id = PaymeId::parse(ID).unwrap();
        assert_eq!(serde_json::to_value(&id).unwrap(), json!(ID));
        assert!(serde_json::from_value::<PaymeId>(json!("abc")).is_err());
        assert!(PaymeId::parse("5305e3bab097f420a62ced0!").is_none());
        for s in [
            State::Created,
            State::Performed,
            State::CancelledBeforePerform,
            State::CancelledAfterPerform,
        ] {
            let v = serde_json::to_value(s).unwrap();
            assert_eq!(v, json!(s.number()));
            assert_eq!(serde_json::from_value::<State>(v).unwrap(), s);
        }
        assert!(serde_json::from_value::<State>(json!(0)).is_err());
    }
}
