-- Inventory: what devices report about themselves (last report + searchable summary, fact
-- history, drift), presence, raw device events, tags, groups, posture findings and runs,
-- firmware policies, and sightings of unmanaged devices. JSON is stored as text.
CREATE TABLE device_inventory (
    tenant       TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    collected_at BIGINT NOT NULL,
    facts        TEXT NOT NULL,
    software     TEXT,
    summary      TEXT NOT NULL,
    PRIMARY KEY (tenant, device_id)
);

CREATE TABLE fact_history (
    id        INTEGER PRIMARY KEY,
    tenant    TEXT NOT NULL,
    device_id TEXT NOT NULL,
    at        BIGINT NOT NULL,
    fact      TEXT NOT NULL,
    before_value TEXT,
    after_value  TEXT
);
CREATE INDEX fact_history_by_device ON fact_history (tenant, device_id, id);

CREATE TABLE drift_events (
    id           INTEGER PRIMARY KEY,
    tenant       TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    at           BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    fact         TEXT NOT NULL,
    severity     TEXT NOT NULL,
    before_value TEXT,
    after_value  TEXT,
    detail       TEXT NOT NULL
);
CREATE INDEX drift_events_by_tenant ON drift_events (tenant, id);
CREATE INDEX drift_events_by_device ON drift_events (tenant, device_id, id);

CREATE TABLE device_presence (
    tenant        TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    first_seen    BIGINT NOT NULL,
    last_seen     BIGINT NOT NULL,
    online        BOOLEAN NOT NULL DEFAULT FALSE,
    last_address  TEXT,
    agent         TEXT,
    agent_version TEXT,
    telemetry     TEXT,
    PRIMARY KEY (tenant, device_id)
);

CREATE TABLE device_events (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX device_events_by_tenant ON device_events (tenant, id);
CREATE INDEX device_events_by_device ON device_events (tenant, device_id, id);

CREATE TABLE device_tags (
    tenant    TEXT NOT NULL,
    device_id TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (tenant, device_id, key)
);

CREATE TABLE device_groups (
    tenant           TEXT NOT NULL,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL,
    query            TEXT,
    impact           TEXT,
    allowed_services TEXT,
    created_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE group_members (
    tenant     TEXT NOT NULL,
    group_name TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    PRIMARY KEY (tenant, group_name, device_id)
);
CREATE INDEX group_members_by_device ON group_members (tenant, device_id);

CREATE TABLE findings (
    id                TEXT PRIMARY KEY,
    tenant            TEXT NOT NULL,
    check_id          TEXT NOT NULL,
    subject           TEXT NOT NULL,
    device_id         TEXT,
    severity          TEXT NOT NULL,
    status            TEXT NOT NULL,
    evidence          TEXT NOT NULL,
    first_seen        BIGINT NOT NULL,
    last_seen         BIGINT NOT NULL,
    resolved_at       BIGINT,
    reopened          BIGINT NOT NULL DEFAULT 0,
    suppressed_reason TEXT,
    suppressed_by     TEXT,
    suppressed_at     BIGINT,
    suppressed_until  BIGINT,
    UNIQUE (tenant, check_id, subject)
);
CREATE INDEX findings_by_status ON findings (tenant, status, id);
CREATE INDEX findings_by_device ON findings (tenant, device_id);

CREATE TABLE posture_runs (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    run_trigger TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    devices     BIGINT NOT NULL,
    checks      BIGINT NOT NULL,
    opened      BIGINT NOT NULL,
    resolved    BIGINT NOT NULL,
    open_count  BIGINT NOT NULL
);
CREATE INDEX posture_runs_by_tenant ON posture_runs (tenant, id);

CREATE TABLE firmware_policies (
    tenant          TEXT NOT NULL,
    model           TEXT NOT NULL,
    minimum_version TEXT NOT NULL,
    updated_by      TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant, model)
);

CREATE TABLE unmanaged_sightings (
    tenant     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    identity   TEXT NOT NULL,
    address    TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    count      BIGINT NOT NULL,
    detail     TEXT NOT NULL,
    PRIMARY KEY (tenant, kind, identity, address)
);
CREATE INDEX unmanaged_by_last_seen ON unmanaged_sightings (tenant, last_seen);
