-- What monitoring has learnt and must survive a restart (behaviour baselines): one opaque,
-- versioned document per tenant and name, replaced whole on each save.
CREATE TABLE monitor_state (
    tenant   TEXT NOT NULL,
    name     TEXT NOT NULL,
    state    BLOB NOT NULL,
    saved_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, name)
);
