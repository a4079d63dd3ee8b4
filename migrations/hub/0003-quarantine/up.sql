-- Changes the hub refused, one row per change, with the reason: a refused change never blocks
-- the valid ones of its batch or after it (the sender's cursor moves on), and an operator or
-- owner can see what was refused and why. `change` is the change as JSON with its value cut
-- to a preview, so a hostile node cannot store large values here; rows are trimmed per
-- property (cloud-sync store::QUARANTINE_KEEP).
CREATE TABLE sync_quarantine (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    property_id text NOT NULL,
    node_id     text,
    site_id     bytea NOT NULL,
    tbl         text NOT NULL,
    pk          bytea NOT NULL,
    cid         text NOT NULL,
    kind        text NOT NULL,
    reason      text NOT NULL,
    change      jsonb NOT NULL
);
CREATE INDEX sync_quarantine_property ON sync_quarantine (property_id, id);

-- Changes of a newer edge schema than this hub's (a table or column it does not know yet):
-- kept aside, never relayed to nodes that could not apply them, and merged when the hub is
-- upgraded to that schema (Store::open). `change` is a crdt::protocol::WireChange, encoded.
CREATE TABLE sync_held (
    id             bigserial PRIMARY KEY,
    at             timestamptz NOT NULL DEFAULT now(),
    property_id    text NOT NULL,
    node_id        text,
    schema_version bigint NOT NULL,
    change         bytea NOT NULL
);
CREATE INDEX sync_held_property ON sync_held (property_id, id);

-- Rows each property has stored on the hub (its storage quota), counted as rows are created.
CREATE TABLE sync_usage (
    property_id text PRIMARY KEY,
    rows        bigint NOT NULL DEFAULT 0
);
INSERT INTO sync_usage (property_id, rows)
    SELECT scope, count(*) FROM sync_rows WHERE scope <> '' GROUP BY scope;

-- The newest audit-log entry of each node the hub has stored (seq and hash): given back in
-- hello, so a node can tell when its own chain was cut short below what the hub holds.
ALTER TABLE sync_peers ADD COLUMN audit_seq bigint, ADD COLUMN audit_hash text;
