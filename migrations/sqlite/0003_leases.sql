-- Named leases: one process at a time does a periodic chore (e.g. sampling
-- queue gauges) and another takes over when its lease runs out.
CREATE TABLE leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
