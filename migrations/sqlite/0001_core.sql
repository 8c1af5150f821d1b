-- paygate core schema (SQLite, the embedded default).
-- The PostgreSQL twin is migrations/postgres/0001_core.sql; both are read by the
-- same SQL in common/src/store, so column names and types must stay aligned.
-- Times are epoch milliseconds (UTC) in BIGINT columns: exact, sortable, and
-- the same type on both databases.

CREATE TABLE payments (
    id                  TEXT PRIMARY KEY,
    provider            TEXT NOT NULL,
    merchant_ref        TEXT NOT NULL,
    -- Money is an integer count of minor units (rial, tiyin). Never a float.
    amount_minor        BIGINT NOT NULL CHECK (amount_minor > 0),
    currency            TEXT NOT NULL,
    description         TEXT NOT NULL DEFAULT '',
    status              TEXT NOT NULL CHECK (status IN ('pending','processing','completed','failed','cancelled')),
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
    -- Optimistic lock: every update names the version it read.
    version             BIGINT NOT NULL DEFAULT 0
);
-- A gateway id identifies at most one payment of that gateway (callbacks look it up).
CREATE UNIQUE INDEX payments_gateway_ref ON payments (provider, gateway_ref);
CREATE UNIQUE INDEX payments_idempotency_key ON payments (idempotency_key);
CREATE INDEX payments_created ON payments (created_at);
CREATE INDEX payments_status_created ON payments (status, created_at);

-- The activity log. Append-only; detail is JSON that was redacted before insert.
CREATE TABLE payment_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    payment_id  TEXT NOT NULL REFERENCES payments (id),
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT 'null',
    created_at  BIGINT NOT NULL
);
CREATE INDEX payment_events_payment ON payment_events (payment_id, id);

-- Every callback and webhook exactly as received, before anything acts on it.
CREATE TABLE inbound_messages (
    id           TEXT PRIMARY KEY,
    provider     TEXT NOT NULL,
    -- Identifies the gateway's event, so a redelivery is recognised.
    dedupe_key   TEXT NOT NULL,
    payment_id   TEXT,
    method       TEXT NOT NULL,
    query        TEXT NOT NULL DEFAULT '',
    headers      TEXT NOT NULL DEFAULT '{}',
    body         TEXT NOT NULL DEFAULT '',
    outcome      TEXT NOT NULL,
    received_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX inbound_messages_dedupe ON inbound_messages (provider, dedupe_key);

-- The durable ledger of background work. Written in the same transaction as
-- the state change that needs it; the queue only carries pointers to rows here.
CREATE TABLE jobs (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    payment_id     TEXT,
    payload        TEXT NOT NULL DEFAULT 'null',
    -- At most one live job per purpose (e.g. one verification per trans_id).
    dedupe_key     TEXT,
    status         TEXT NOT NULL CHECK (status IN ('queued','running','succeeded','failed','dead')),
    attempts       BIGINT NOT NULL DEFAULT 0,
    max_attempts   BIGINT NOT NULL,
    run_at         BIGINT NOT NULL,
    lease_until    BIGINT,
    locked_by      TEXT,
    dispatched_at  BIGINT,
    last_error     TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    finished_at    BIGINT
);
CREATE UNIQUE INDEX jobs_dedupe ON jobs (dedupe_key);
CREATE INDEX jobs_status_run_at ON jobs (status, run_at);
CREATE INDEX jobs_payment ON jobs (payment_id);

-- API keys are stored as SHA-256 hashes; the key itself is shown once.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    key_hash      TEXT NOT NULL UNIQUE,
    is_admin      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
