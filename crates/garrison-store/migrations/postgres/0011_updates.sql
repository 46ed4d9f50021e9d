-- Signed updates. Every pinned version of the trust root is kept (devices may be several
-- rotations behind and need the chain); artifacts are recorded here and stored as files named
-- by their SHA-256; a release is its signed manifest as uploaded plus what the server read
-- from it. One release per vendor, model and sequence number.
CREATE TABLE update_roots (
    tenant      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    document    BYTEA NOT NULL,
    uploaded_at BIGINT NOT NULL,
    uploaded_by TEXT NOT NULL,
    PRIMARY KEY (tenant, version)
);

CREATE TABLE artifacts (
    tenant      TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    uploaded_at BIGINT NOT NULL,
    uploaded_by TEXT NOT NULL,
    PRIMARY KEY (tenant, sha256)
);

CREATE TABLE releases (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    vendor     TEXT NOT NULL,
    model      TEXT NOT NULL,
    sequence   BIGINT NOT NULL,
    version    TEXT NOT NULL,
    signed_by  TEXT NOT NULL,
    artifacts  TEXT NOT NULL,
    expires_at BIGINT,
    manifest   BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (tenant, vendor, model, sequence)
);
CREATE INDEX releases_by_tenant ON releases (tenant, id);
