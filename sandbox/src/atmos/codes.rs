//! `result.code` values of the Atmos simulator.
//!
//! Business errors travel as HTTP 200 with a non-"OK" `result.code`
//! (docs/gateways/atmos.md, 'Result envelope and error codes'). Only 044,
//! 061 and 092 are seen in real client code; the others are plausible picks
//! in the same STPIMS-ERR-NNN family, chosen so every refusal the simulator
//! can produce has a distinct code.

pub(crate) struct Code {
    pub code: &'static str,
    pub description: &'static str,
}

pub(crate) const OK: Code = Code {
    code: "OK",
    description: "No errors",
};
/// Body is not a JSON object, or a required field is missing.
pub(crate) const BAD_REQUEST: Code = Code {
    code: "STPIMS-ERR-001",
    description: "Некорректный запрос",
};
/// `store_id` missing or not this store.
pub(crate) const UNKNOWN_STORE: Code = Code {
    code: "STPIMS-ERR-003",
    description: "Магазин не найден",
};
/// `amount` is not a positive integer (tiyin).
pub(crate) const BAD_AMOUNT: Code = Code {
    code: "STPIMS-ERR-012",
    description: "Неверная сумма",
};
/// `account` is not a digit-only value.
pub(crate) const BAD_ACCOUNT: Code = Code {
    code: "STPIMS-ERR-014",
    description: "Неверный лицевой счёт",
};
/// Wrong OTP on the checkout page (seen in A19).
pub(crate) const WRONG_OTP: Code = Code {
    code: "STPIMS-ERR-044",
    description: "Неверный код",
};
/// Unknown transaction (seen in #68351322587).
pub(crate) const NOT_FOUND: Code = Code {
    code: "STPIMS-ERR-061",
    description: "Транзакция не найдена",
};
/// Reversed or declined transaction (seen in A8, A15).
pub(crate) const CLOSED: Code = Code {
    code: "STPIMS-ERR-092",
    description: "Транзакция закрыта",
};
/// Reverse of a transaction that was never confirmed.
pub(crate) const NOT_CONFIRMED: Code = Code {
    code: "STPIMS-ERR-093",
    description: "Транзакция не подтверждена",
};
/// `/merchant/pay/apply` before a card was attached by pre-apply.
pub(crate) const NOT_PRE_APPLIED: Code = Code {
    code: "STPIMS-ERR-041",
    description: "Карта не привязана к транзакции",
};
/// The merchant refused the payment (its callback answered `status: 0`).
pub(crate) const DECLINED: Code = Code {
    code: "STPIMS-ERR-050",
    description: "Платёж отклонён",
};
/// A method this API does not have.
pub(crate) const UNKNOWN_METHOD: Code = Code {
    code: "STPIMS-ERR-000",
    description: "Метод не найден",
};
