-- Outgoing merchant notifications (Standard Webhooks); docs/notifications.md.
-- The twin of this file is in migrations/sqlite; the same SQL reads both.

-- Where notifications go. The secret is stored as given to the merchant
-- (whsec_…): signing needs it readable. A rotated-out secret keeps signing
-- beside the new one until previous_secret_until.
CREATE TABLE webhook_endpoints (
    id                     TEXT PRIMARY KEY,
    url                    TEXT NOT NULL,
    description            TEXT NOT NULL DEFAULT '',
    -- JSON array of event types; [] means every event.
    event_types            TEXT NOT NULL DEFAULT '[]',
    secret                 TEXT NOT NULL,
    previous_secret        TEXT,
    previous_secret_until  BIGINT,
    status                 TEXT NOT NULL CHECK (status IN ('enabled','disabled')),
    disabled_reason        TEXT,
    last_success_at        BIGINT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);

-- One event for one endpoint, its body frozen when it was fanned out (every
-- retry sends the same bytes under the same webhook-id).
CREATE TABLE webhook_messages (
    id               TEXT PRIMARY KEY,
    endpoint_id      TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    payment_id       TEXT,
    body             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending','delivered','failed')),
    -- Every attempt ever (numbers the attempts), and those of the current
    -- round of the retry schedule (a redrive starts a new round).
    attempts         BIGINT NOT NULL DEFAULT 0,
    round_attempts   BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    delivered_at     BIGINT
);
-- The fan-out of one event to one endpoint happens once.
CREATE UNIQUE INDEX webhook_messages_event ON webhook_messages (event_id, endpoint_id);
CREATE INDEX webhook_messages_endpoint ON webhook_messages (endpoint_id, status, created_at);

-- Every delivery attempt: what the merchant answered and how fast.
CREATE TABLE webhook_attempts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id    TEXT NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    endpoint_id   TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    attempt       BIGINT NOT NULL,
    -- delivered, failed (will retry), exhausted, gone (410), error (no answer).
    outcome       TEXT NOT NULL,
    status_code   BIGINT,
    error         TEXT,
    -- The first 1 KiB of the answer.
    response      TEXT NOT NULL DEFAULT '',
    latency_ms    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id);
CREATE INDEX webhook_attempts_message ON webhook_attempts (message_id, id);
