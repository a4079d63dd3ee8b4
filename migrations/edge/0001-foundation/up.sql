-- Foundation schema: node identity, the property, staff and their credentials, local-only
-- auth state, and the hash-chained audit log.
--
-- Replicated tables (properties, staff, staff_emails, staff_properties, audit_log) follow
-- cr-sqlite's rules from day one: text UUIDv7 primary keys that are NOT NULL, no
-- AUTOINCREMENT, no UNIQUE besides the primary key, no enforced REFERENCES, and every NOT NULL
-- column has a DEFAULT. Times are INTEGER unix milliseconds (UTC).
--
-- Local-only tables (node_meta, sessions, refresh_tokens, mfa_challenges, login_throttle,
-- api_keys) never leave this node.

CREATE TABLE node_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB
);

CREATE TABLE properties (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL DEFAULT '',
    timezone   TEXT NOT NULL DEFAULT 'UTC',
    currency   TEXT NOT NULL DEFAULT 'EUR',
    created_at INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE staff (
    id                  TEXT PRIMARY KEY NOT NULL,
    email               TEXT NOT NULL DEFAULT '',
    name                TEXT NOT NULL DEFAULT '',
    role                TEXT NOT NULL DEFAULT 'front_desk',
    password_hash       TEXT NOT NULL DEFAULT '',
    password_changed_at INTEGER NOT NULL DEFAULT 0,
    mfa_secret          TEXT,
    mfa_enabled         INTEGER NOT NULL DEFAULT 0,
    mfa_last_step       INTEGER NOT NULL DEFAULT 0,
    disabled            INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL DEFAULT 0,
    updated_at          INTEGER NOT NULL DEFAULT 0
);

-- E-mail uniqueness is a primary key, not a UNIQUE index, so that it survives replication:
-- two properties taking the same address collide on this key and surface as a conflict.
CREATE TABLE staff_emails (
    email    TEXT PRIMARY KEY NOT NULL,
    staff_id TEXT NOT NULL DEFAULT ''
);

CREATE TABLE staff_properties (
    staff_id    TEXT NOT NULL,
    property_id TEXT NOT NULL,
    PRIMARY KEY (staff_id, property_id)
);
CREATE INDEX staff_properties_by_property ON staff_properties (property_id);

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY NOT NULL,
    staff_id      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    revoke_reason TEXT,
    ip            TEXT,
    user_agent    TEXT
);
CREATE INDEX sessions_by_staff ON sessions (staff_id);

CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL,
    issued_at  INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

CREATE TABLE mfa_challenges (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    staff_id    TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    consumed_at INTEGER,
    ip          TEXT,
    user_agent  TEXT
);

CREATE TABLE login_throttle (
    key             TEXT PRIMARY KEY NOT NULL,
    failures        INTEGER NOT NULL DEFAULT 0,
    last_failure_at INTEGER NOT NULL DEFAULT 0,
    locked_until    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL,
    created_by   TEXT NOT NULL,
    properties   TEXT NOT NULL DEFAULT '[]',
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE TABLE audit_log (
    id         TEXT PRIMARY KEY NOT NULL,
    seq        INTEGER NOT NULL DEFAULT 0,
    at         INTEGER NOT NULL DEFAULT 0,
    actor_kind TEXT NOT NULL DEFAULT '',
    actor_id   TEXT,
    event      TEXT NOT NULL DEFAULT '',
    subject_id TEXT,
    ip         TEXT,
    details    TEXT NOT NULL DEFAULT '{}',
    prev_hash  TEXT NOT NULL DEFAULT '',
    hash       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_by_seq ON audit_log (seq);

CREATE TRIGGER audit_log_is_append_only_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_is_append_only_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
