-- Version 2: the inventory lists certificates by expiry and filters findings by rule; both
-- scanned every row without these indexes.
CREATE INDEX IF NOT EXISTS certificates_expiry ON certificates (not_after_unix);
CREATE INDEX IF NOT EXISTS findings_rule ON findings (rule);
