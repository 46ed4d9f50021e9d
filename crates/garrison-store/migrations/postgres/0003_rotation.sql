-- Certificate rotation: an operator asks a device for a new key; its next renewal then
-- supersedes (revokes) the certificate it renewed with.
ALTER TABLE devices ADD COLUMN rotation_requested_at BIGINT;
