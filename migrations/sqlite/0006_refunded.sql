-- no-transaction
-- A completed payment may be refunded (Payme's CancelTransaction after
-- PerformTransaction). SQLite cannot change a CHECK constraint in place, so
-- the table is rebuilt the documented way (sqlite.org/lang_altertable.html,
-- "Making Other Kinds Of Table Schema Changes"): foreign keys off outside the
-- transaction (payment_events, jobs and gateway_transactions reference
-- payments), copy, drop, rename, re-create the indexes, check, commit.
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE payments_new (
    id                  TEXT PRIMARY KEY,
    provider            TEXT NOT NULL,
    merchant_ref        TEXT NOT NULL,
    amount_minor        BIGINT NOT NULL CHECK (amount_minor > 0),
    currency            TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    status              TEXT NOT NULL CHECK (status IN ('pending','processing','completed','failed','cancelled','refunded')),
    status_reason       TEXT,
    payment_url         TEXT,
    gateway_ref         TEXT,
    gateway_trans_id    TEXT,
    tracking_code       TEXT,
    encrypted_user_data TEXT,
    idempotency_key     TEXT,
    order_id            BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    completed_at        BIGINT,
    version             BIGINT NOT NULL DEFAULT 0
);
INSERT INTO payments_new (id, provider, merchant_ref, amount_minor, currency, description, status,
    status_reason, payment_url, gateway_ref, gateway_trans_id, tracking_code, encrypted_user_data,
    idempotency_key, order_id, created_at, updated_at, completed_at, version)
SELECT id, provider, merchant_ref, amount_minor, currency, description, status,
    status_reason, payment_url, gateway_ref, gateway_trans_id, tracking_code, encrypted_user_data,
    idempotency_key, order_id, created_at, updated_at, completed_at, version
FROM payments;
DROP TABLE payments;
ALTER TABLE payments_new RENAME TO payments;
CREATE UNIQUE INDEX payments_gateway_ref ON payments (provider, gateway_ref);
CREATE UNIQUE INDEX payments_idempotency_key ON payments (idempotency_key);
CREATE INDEX payments_created ON payments (created_at);
CREATE INDEX payments_status_created ON payments (status, created_at);
COMMIT;
PRAGMA foreign_keys = ON;
