-- Threat-intelligence sources imported through the API: the file as imported, re-read at every
-- start (so expiry and the parser's rules apply as of then), one row per named source.
CREATE TABLE intel_sources (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    format      TEXT NOT NULL,
    indicators  BIGINT NOT NULL,
    skipped     BIGINT NOT NULL,
    content     TEXT NOT NULL,
    imported_at BIGINT NOT NULL,
    imported_by TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
