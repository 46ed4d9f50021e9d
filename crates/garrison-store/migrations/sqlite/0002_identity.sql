-- Device identity: devices, the certificates Garrison issued, and the ways in (bootstrap
-- tokens, claim certificates, the approval queue). Serial numbers are lowercase hex.
CREATE TABLE devices (
    tenant         TEXT NOT NULL,
    id             TEXT NOT NULL,
    quarantined    BOOLEAN NOT NULL DEFAULT FALSE,
    enrolled_via   TEXT NOT NULL,
    current_serial TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE certificates (
    serial            TEXT PRIMARY KEY,
    tenant            TEXT NOT NULL,
    kind              TEXT NOT NULL,
    subject           TEXT NOT NULL,
    fingerprint       TEXT NOT NULL,
    pem               TEXT NOT NULL,
    not_before        BIGINT NOT NULL,
    not_after         BIGINT NOT NULL,
    issued_at         BIGINT NOT NULL,
    revoked_at        BIGINT,
    revocation_reason TEXT
);
CREATE INDEX certificates_by_subject ON certificates (tenant, subject);
CREATE INDEX certificates_by_expiry ON certificates (tenant, not_after);

CREATE TABLE bootstrap_tokens (
    id             TEXT PRIMARY KEY,
    tenant         TEXT NOT NULL,
    device_pattern TEXT NOT NULL,
    secret_hash    TEXT NOT NULL,
    max_uses       BIGINT NOT NULL,
    uses           BIGINT NOT NULL DEFAULT 0,
    expires_at     BIGINT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT
);

CREATE TABLE claims (
    serial     TEXT PRIMARY KEY REFERENCES certificates (serial),
    tenant     TEXT NOT NULL,
    name       TEXT NOT NULL,
    max_uses   BIGINT NOT NULL,
    uses       BIGINT NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant, name)
);

CREATE TABLE enrollment_requests (
    tenant            TEXT NOT NULL,
    device_id         TEXT NOT NULL,
    status            TEXT NOT NULL,
    public_key_sha256 TEXT,
    csr_pem           TEXT,
    source            TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    decided_by        TEXT,
    serial            TEXT,
    PRIMARY KEY (tenant, device_id)
);
CREATE INDEX enrollment_requests_by_status ON enrollment_requests (tenant, status, device_id);
