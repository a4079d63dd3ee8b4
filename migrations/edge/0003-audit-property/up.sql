-- The property an audit entry concerns: auditors of one property read only its entries, and
-- the hub derives the row's owner from it (replication.toml [owners]). Node-level events
-- (logins, staff accounts) carry the property the node serves. Entries written before this
-- migration keep '' and stay with the property that first synced them.
ALTER TABLE audit_log ADD COLUMN property_id TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_log_by_property ON audit_log (property_id, seq);
