-- Enrollment, node credentials and the hub's audit log (cloud-sync `nodes`).
--
-- Secrets are never stored: a token or credential is kept as the SHA-256 of its secret part,
-- so a copy of this database cannot be used to enroll or to sync as a node.

-- One-time enrollment tokens printed by `stayos-hub enroll-token`.
CREATE TABLE enroll_tokens (
    secret_sha256 bytea PRIMARY KEY CHECK (length(secret_sha256) = 32),
    property_id   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    -- Set once, atomically, by the enrollment that used the token.
    used_at       timestamptz,
    used_by_node  text
);

-- Enrolled edge nodes. A node authenticates as `<id>.<secret>`; it may write only its
-- property's rows and its own site id's changes.
CREATE TABLE nodes (
    id                text PRIMARY KEY,
    property_id       text NOT NULL,
    name              text NOT NULL DEFAULT '',
    site_id           bytea NOT NULL CHECK (length(site_id) = 16),
    credential_sha256 bytea NOT NULL CHECK (length(credential_sha256) = 32),
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_seen_at      timestamptz,
    revoked_at        timestamptz
);
-- A site id (one edge database) is enrolled at most once at a time; after a revocation the
-- same database may be enrolled again.
CREATE UNIQUE INDEX nodes_live_site ON nodes (site_id) WHERE revoked_at IS NULL;
CREATE INDEX nodes_property ON nodes (property_id);

-- Append-only: enrollments, revocations, refused requests, file imports.
CREATE TABLE hub_audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    event       text NOT NULL,
    node_id     text,
    property_id text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX hub_audit_at ON hub_audit (at);

CREATE FUNCTION hub_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'hub_audit is append-only';
END
$$;
CREATE TRIGGER hub_audit_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON hub_audit
    FOR EACH STATEMENT EXECUTE FUNCTION hub_audit_append_only();
