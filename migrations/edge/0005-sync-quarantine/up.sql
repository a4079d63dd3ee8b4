-- The sync quarantine: changes this node refused to merge (from the hub's pulls or from a
-- `stayos-edge changes import` file), each with the reason, so the good changes of the same
-- batch are applied and nothing refused is lost. Local only: never replicated, not in
-- db::REPLICATED_TABLES nor replication.toml. edge-node/src/sync/guard.rs writes it and caps
-- it at the newest 10,000 rows (node_meta 'sync_quarantine_dropped' counts the rows dropped).
--
-- source: 'hub' or 'file'. table_name, pk (the key's values as SQLite literals, or the
-- packed key in hex when it does not unpack), cid: what the change names ('' for a file line
-- that could not be read at all). change: the change as a changes-file line (crdt::wire,
-- with its schema version), so it can be inspected or replayed; for an unreadable line, the
-- line itself. reason_kind: invalid | malformed | node_scope | other_property |
-- unknown_property | own_site.
CREATE TABLE sync_quarantine (
    id          INTEGER PRIMARY KEY NOT NULL,
    received_at INTEGER NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('hub', 'file')),
    table_name  TEXT NOT NULL DEFAULT '',
    pk          TEXT NOT NULL DEFAULT '',
    cid         TEXT NOT NULL DEFAULT '',
    change      TEXT NOT NULL,
    reason_kind TEXT NOT NULL,
    reason      TEXT NOT NULL
);
