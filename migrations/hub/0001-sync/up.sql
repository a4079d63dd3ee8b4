-- The hub's replica of every property: the CRDT state per cell, the rows' causal lengths, the
-- senders' cursors. The read tables (schema `replica`) are built by cloud-sync's migrate from
-- the edge schema, not here: they follow the edge migrations the hub binary embeds.

-- Small facts about this hub: its CRDT site id, its TLS certificate and key, the newest
-- edge schema version pushed to it.
CREATE TABLE hub_meta (
    key   text PRIMARY KEY,
    value bytea NOT NULL
);

-- The hub's database version: one per merged batch. Merges take a transaction-level advisory
-- lock before nextval, so versions commit in order and a pull never skips one.
CREATE SEQUENCE sync_version;

-- One row per replicated row: its owner (`scope` = the owning property's id, '' for
-- chain-level tables) and its causal length (odd = exists, even = deleted).
CREATE TABLE sync_rows (
    tbl   text   NOT NULL,
    pk    bytea  NOT NULL,
    scope text   NOT NULL,
    cl    bigint NOT NULL,
    PRIMARY KEY (tbl, pk)
);

-- One register per (row, column), cid '-1' being the row sentinel. `val` is in the
-- order-preserving encoding of cloud-sync's value.rs, so the merge rule is a row comparison
-- (cl, col_version, val, site_id). `version`/`seq` say when the hub last changed the cell, in
-- the hub's versions: what pulls are ordered and resumed by.
CREATE TABLE sync_cells (
    tbl         text   NOT NULL,
    pk          bytea  NOT NULL,
    cid         text   NOT NULL,
    val         bytea  NOT NULL,
    col_version bigint NOT NULL,
    cl          bigint NOT NULL,
    site_id     bytea  NOT NULL,
    scope       text   NOT NULL,
    version     bigint NOT NULL,
    seq         integer NOT NULL,
    PRIMARY KEY (tbl, pk, cid)
);
CREATE INDEX sync_cells_pull ON sync_cells (scope, version, seq);

-- How far the hub has durably merged each sender's own versions.
CREATE TABLE sync_peers (
    site_id  bytea PRIMARY KEY,
    node_id  text,
    received bigint NOT NULL DEFAULT 0
);
