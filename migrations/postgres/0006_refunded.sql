-- A completed payment may be refunded (Payme's CancelTransaction after
-- PerformTransaction; refunds through gateways' APIs later).
ALTER TABLE payments DROP CONSTRAINT payments_status_check;
ALTER TABLE payments ADD CONSTRAINT payments_status_check
    CHECK (status IN ('pending','processing','completed','failed','cancelled','refunded'));
