-- Issuance asks "does this device already hold a live certificate?" on every enrollment. With
-- only (tenant, subject) and (tenant, not_after) indexes SQLite chose the expiry index and
-- scanned every unexpired certificate, so issuance slowed as the fleet grew (BENCHMARKS.md).
-- This index answers the question from the index alone.
DROP INDEX certificates_by_subject;
CREATE INDEX certificates_by_subject ON certificates (tenant, subject, kind, not_after);
