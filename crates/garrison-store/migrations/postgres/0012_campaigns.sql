-- Update campaigns. A campaign's devices are fixed when it starts, each with its phase; their
-- rows change as devices report, and every change is also appended to the history, so a
-- device's whole path through a campaign can be shown. Maintenance windows are per group.
CREATE TABLE campaigns (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    number      BIGINT NOT NULL,
    name        TEXT NOT NULL,
    release_id  TEXT NOT NULL REFERENCES releases (id),
    target      TEXT NOT NULL,
    spec        TEXT NOT NULL,
    state       TEXT NOT NULL,
    phase       BIGINT NOT NULL,
    reason      TEXT,
    devices     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX campaigns_by_tenant ON campaigns (tenant, id);
-- A campaign's number is its hawkBit action id (DDI clients need a number).
CREATE UNIQUE INDEX campaigns_by_number ON campaigns (tenant, number);
CREATE INDEX campaigns_by_state ON campaigns (tenant, state);

CREATE TABLE campaign_devices (
    campaign_id     TEXT NOT NULL REFERENCES campaigns (id),
    device_id       TEXT NOT NULL,
    phase           BIGINT NOT NULL,
    stage           TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT,
    updated_at      BIGINT NOT NULL,
    reason          TEXT,
    PRIMARY KEY (campaign_id, device_id)
);
CREATE INDEX campaign_devices_by_stage ON campaign_devices (campaign_id, stage, device_id);

CREATE TABLE campaign_device_history (
    id          BIGSERIAL PRIMARY KEY,
    campaign_id TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    at          BIGINT NOT NULL,
    stage       TEXT NOT NULL,
    reported    TEXT,
    attempt     BIGINT NOT NULL,
    reason      TEXT
);
CREATE INDEX campaign_device_history_by_device ON campaign_device_history (campaign_id, device_id, id);

CREATE TABLE maintenance_windows (
    tenant      TEXT NOT NULL,
    group_name  TEXT NOT NULL,
    window_spec TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (tenant, group_name)
);

-- hawkBit DDI target tokens: one per device, stored as the SHA-256 of the token (it is 256
-- random bits, so a password hash would add nothing but cost).
CREATE TABLE ddi_tokens (
    tenant       TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    PRIMARY KEY (tenant, device_id)
);
CREATE UNIQUE INDEX ddi_tokens_by_hash ON ddi_tokens (token_sha256);

-- Devices that cannot be patched (end of support, no update path), with the compensating
-- control that stands in for the patch. Campaigns leave them out.
CREATE TABLE unpatchable_devices (
    tenant     TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    control    TEXT NOT NULL,
    note       TEXT,
    marked_at  BIGINT NOT NULL,
    marked_by  TEXT NOT NULL,
    PRIMARY KEY (tenant, device_id)
);
