-- Shop orders (the Atmos seed). An order is paid by one payment; its status
-- follows that payment's outcome. Amounts in tiyin.
CREATE TABLE orders (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    product_name  TEXT NOT NULL,
    amount_minor  BIGINT NOT NULL CHECK (amount_minor > 0),
    payment_type  TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending','paid','failed','cancelled')),
    payment_id    TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX orders_payment ON orders (payment_id);
