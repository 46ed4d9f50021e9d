-- A bootstrap token may shorten the certificates it enrolls (lab units, contractors'
-- devices, a trial fleet): NULL keeps the server's configured device validity.
ALTER TABLE bootstrap_tokens ADD COLUMN certificate_validity_ms BIGINT;
