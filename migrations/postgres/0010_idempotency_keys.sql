-- Idempotency-Key records (Stripe's rules): one row per caller scope, route
-- template and key. While the first request runs the row is `processing`
-- (with a lease, so a crashed process does not block the key for a day);
-- then `done` with the answer to replay (status, kept headers as JSON,
-- body). `generation` is when the row was (re)started: it names the
-- payment-level idempotency key the creating request used, so a takeover
-- after a crash finds the payment the first attempt may have committed.
CREATE TABLE idempotency_keys (
    scope             TEXT NOT NULL,
    route             TEXT NOT NULL,
    idem_key          TEXT NOT NULL,
    fingerprint       TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('processing', 'done')),
    generation        BIGINT NOT NULL,
    locked_until      BIGINT NOT NULL,
    expires_at        BIGINT NOT NULL,
    response_status   BIGINT,
    response_headers  TEXT,
    response_body     TEXT,
    PRIMARY KEY (scope, route, idem_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
