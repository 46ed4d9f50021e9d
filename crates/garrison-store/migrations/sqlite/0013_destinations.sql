-- Remote addresses devices reported in their telemetry (`destinations`): one row per device
-- and address with when it was first and last reported and in how many reports, so a newly
-- imported threat indicator can be hunted in what devices talked to before it was known.
CREATE TABLE device_destinations (
    tenant     TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    address    TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    reports    BIGINT NOT NULL,
    PRIMARY KEY (tenant, device_id, address)
);
CREATE INDEX device_destinations_by_last_seen ON device_destinations (tenant, last_seen);
