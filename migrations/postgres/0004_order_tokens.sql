-- Reading an order needs an API key or this per-order token (random, 256
-- bits, hex), so orders cannot be read by counting their integer ids.
-- Orders made before this migration have none: only API keys read them.
ALTER TABLE orders ADD COLUMN access_token TEXT;
