-- Refunds of completed payments, one row per refund the merchant asked for
-- (POST /v1/payments/{id}/refunds). Its job calls the gateway; the row moves
-- requested → succeeded | failed (common/src/domain/refund.rs) in the same
-- write as the payment's completed → refunded.
CREATE TABLE refunds (
    id               TEXT PRIMARY KEY,
    payment_id       TEXT NOT NULL REFERENCES payments (id),
    amount_minor     BIGINT NOT NULL CHECK (amount_minor > 0),
    reason           TEXT,
    status           TEXT NOT NULL CHECK (status IN ('requested','succeeded','failed')),
    failure_reason   TEXT,
    -- The gateway's id of the reversal (or of the payment it reversed).
    gateway_ref      TEXT,
    -- The API key that asked; its Idempotency-Key is scoped to it and the payment.
    caller           TEXT NOT NULL,
    idempotency_key  TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
-- A repeat with the same key is the same refund (NULL keys never collide).
CREATE UNIQUE INDEX refunds_idempotency ON refunds (payment_id, caller, idempotency_key);
-- Every gateway paygate refunds through refunds the whole payment, so a
-- payment has at most one refund that is not failed: two racing requests
-- cannot both send money back.
CREATE UNIQUE INDEX refunds_live ON refunds (payment_id) WHERE status <> 'failed';
CREATE INDEX refunds_payment_created ON refunds (payment_id, created_at);
