-- Monitoring: alerts raised by detection (deduplicated while open), their notes and status
-- changes, and response actions taken by playbooks (with approval, expiry and undo).
CREATE TABLE alerts (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    dedup_key   TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    title       TEXT NOT NULL,
    severity    TEXT NOT NULL,
    device_id   TEXT,
    status      TEXT NOT NULL,
    is_open     BOOLEAN NOT NULL,
    techniques  TEXT NOT NULL,
    tags        TEXT NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    occurrences BIGINT NOT NULL,
    evidence    TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
-- At most one open alert per key: a new occurrence joins it.
CREATE UNIQUE INDEX alerts_open_key ON alerts (tenant, dedup_key) WHERE is_open;
CREATE INDEX alerts_by_tenant ON alerts (tenant, last_seen, id);
CREATE INDEX alerts_by_device ON alerts (tenant, device_id, last_seen);

CREATE TABLE alert_notes (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    alert_id    TEXT NOT NULL REFERENCES alerts (id),
    at          BIGINT NOT NULL,
    author      TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT,
    note        TEXT NOT NULL
);
CREATE INDEX alert_notes_by_alert ON alert_notes (tenant, alert_id, at);

CREATE TABLE response_actions (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL,
    alert_id    TEXT NOT NULL REFERENCES alerts (id),
    playbook    TEXT NOT NULL,
    action      TEXT NOT NULL,
    device_id   TEXT,
    params      TEXT NOT NULL,
    status      TEXT NOT NULL,
    detail      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    decided_by  TEXT,
    expires_at  BIGINT,
    enforced_at BIGINT
);
-- One action per (alert, playbook, action): an alert seen again does not act twice.
CREATE UNIQUE INDEX response_once ON response_actions (tenant, alert_id, playbook, action);
CREATE INDEX response_by_status ON response_actions (tenant, status, expires_at);
CREATE INDEX response_by_device ON response_actions (tenant, device_id, status);
