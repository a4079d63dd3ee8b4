-- Identity-document numbers stay on the node that saw the document. guest_documents is a
-- chain-scope table (it reaches the hub and every property), so its `number` keeps only the
-- masked form (dots and at most the last four characters); the number in full is here, in a
-- local-only table that is never captured, exported or sent.
--
-- Numbers recorded before this migration are moved here at start by
-- guest::documents::keep_numbers_home (a migration must not write replicated rows): each
-- node moves those of its own documents (of its reservations or of guests first seen at its
-- property) and writes the masked form, which then replicates over the clear one.
CREATE TABLE guest_document_numbers (
    document_id TEXT PRIMARY KEY NOT NULL,
    number      TEXT NOT NULL DEFAULT '',
    recorded_at INTEGER NOT NULL DEFAULT 0
);
