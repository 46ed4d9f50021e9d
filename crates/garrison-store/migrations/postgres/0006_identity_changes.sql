-- Replicas sharing one database follow each other's revocations and quarantine changes by
-- polling what changed since their last look; these indexes keep that poll cheap.
CREATE INDEX certificates_by_revocation ON certificates (revoked_at);
CREATE INDEX devices_by_update ON devices (updated_at);
