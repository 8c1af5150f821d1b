-- A gateway's own transaction, for gateways that call us and settle inside
-- their request (Payme's CreateTransaction/PerformTransaction, Click's
-- Prepare/Complete). One row per gateway transaction id; its state is the
-- gateway protocol's own (kept as text), its provider-specific facts in
-- `data` (JSON). The integer id is the one we answer with (Payme
-- `transaction`, Click `merchant_prepare_id`).
CREATE TABLE gateway_transactions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    provider       TEXT NOT NULL,
    external_id    TEXT NOT NULL,
    payment_id     TEXT NOT NULL REFERENCES payments (id),
    state          TEXT NOT NULL,
    amount_minor   BIGINT NOT NULL CHECK (amount_minor > 0),
    -- The gateway's own time of the transaction (Payme `time`), ms; statements filter on it.
    external_time  BIGINT,
    data           TEXT NOT NULL DEFAULT '{}',
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    -- Optimistic lock, as on payments.
    version        BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX gateway_transactions_external ON gateway_transactions (provider, external_id);
CREATE INDEX gateway_transactions_payment ON gateway_transactions (payment_id);
CREATE INDEX gateway_transactions_time ON gateway_transactions (provider, external_time);
