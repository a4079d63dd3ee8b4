//! SQL of the audit log. Audit owns `audit_log`.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

/// Who did it.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The node itself or its command line (`init`, `demo`).
    System,
    /// Nobody identified yet (e.g. a failed login).
    Anonymous,
    Staff(String),
    ApiKey(String),
}

impl Actor {
    /// One string naming the actor, for `actor` columns of domain tables: `staff:<id>`,
    /// `api_key:<id>`, `system` or `anonymous`.
    pub fn label(&self) -> String {
        match self.parts() {
            (kind, Some(id)) => format!("{kind}:{id}"),
            (kind, None) => kind.to_string(),
        }
    }

    fn parts(&self) -> (&'static str, Option<&str>) {
        match self {
            Actor::System => ("system", None),
            Actor::Anonymous => ("anonymous", None),
            Actor::Staff(id) => ("staff", Some(id)),
            Actor::ApiKey(id) => ("api_key", Some(id)),
        }
    }
}

/// One event to record.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Stable snake_case event name, e.g. `login_failed`.
    pub event: &'a str,
    pub actor: Actor,
    /// What the event is about, e.g. the staff account or session.
    pub subject_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub details: Value,
    /// The property the event concerns; see [`record`] for the default.
    pub property_id: Option<&'a str>,
}

impl<'a> Entry<'a> {
    pub fn new(event: &'a str, actor: Actor) -> Self {
        Entry {
            event,
            actor,
            subject_id: None,
            ip: None,
            details: Value::Object(Default::default()),
            property_id: None,
        }
    }

    /// The property the event concerns.
    pub fn property(mut self, id: &'a str) -> Self {
        self.property_id = Some(id);
        self
    }

    pub fn subject(self, id: &'a str) -> Self {
        self.subject_opt(Some(id))
    }

    pub fn subject_opt(mut self, id: Option<&'a str>) -> Self {
        self.subject_id = id;
        self
    }

    pub fn ip(mut self, ip: Option<&'a str>) -> Self {
        self.ip = ip;
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// A stored audit entry.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub id: String,
    pub seq: i64,
    pub at: i64,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub event: String,
    pub subject_id: Option<String>,
    pub ip: Option<String>,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
    pub property_id: String,
}

/// The hash of an entry written before the node had an audit key: SHA-256 over the content
/// (which then had no property column) and the previous hash.
fn legacy_hash(prev_hash: &str, row: &AuditRow) -> String {
    let canonical = serde_json::json!([
        prev_hash,
        row.seq,
        row.id,
        row.at,
        row.actor_kind,
        row.actor_id,
        row.event,
        row.subject_id,
        row.ip,
        row.details,
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
}

/// What the keyed hash covers: every column but the hash itself, and the previous hash.
fn keyed_message(prev_hash: &str, row: &AuditRow) -> String {
    serde_json::json!([
        "stayos-audit-v1",
        prev_hash,
        row.seq,
        row.id,
        row.at,
        row.property_id,
        row.actor_kind,
        row.actor_id,
        row.event,
        row.subject_id,
        row.ip,
        row.details,
    ])
    .to_string()
}

/// HMAC-SHA256 of the entry with the node's audit key (the writer's `stayos_audit_mac`, see
/// `audit::key`).
fn keyed_hash(conn: &Connection, prev_hash: &str, row: &AuditRow) -> rusqlite::Result<String> {
    conn.prepare_cached("SELECT stayos_audit_mac(?1)")?
        .query_row([keyed_message(prev_hash, row)], |r| r.get(0))
}

/// The property node-level events (logins, staff accounts, keys) belong to: the property
/// the node is enrolled for, else its only live property, else `''` (a node that is not
/// enrolled and holds several properties; only owners read such entries).
pub fn node_property(conn: &Connection) -> rusqlite::Result<String> {
    let enrolled: Option<String> = conn
        .prepare_cached(
            "SELECT CAST(value AS TEXT) FROM node_meta WHERE key = 'property_id'
               AND EXISTS (SELECT 1 FROM node_meta WHERE key = 'hub_credential')",
        )?
        .query_row([], |r| r.get(0))
        .optional()?;
    if let Some(id) = enrolled.filter(|id| !id.is_empty()) {
        return Ok(id);
    }
    let live: Vec<String> = conn
        .prepare_cached("SELECT id FROM properties WHERE deleted_at = 0 LIMIT 2")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(match live.as_slice() {
        [only] => only.clone(),
        _ => String::new(),
    })
}

/// The property an entry is filed under: `Entry::property`, else the `property_id` its
/// details name (every entry of the property domains carries one), else the node's
/// ([`node_property`]).
fn property_of(conn: &Connection, entry: &Entry<'_>) -> rusqlite::Result<String> {
    let concerned = entry
        .property_id
        .or_else(|| entry.details.get("property_id").and_then(Value::as_str))
        .filter(|id| !id.is_empty());
    match concerned {
        Some(id) => Ok(id.to_string()),
        None => node_property(conn),
    }
}

/// Appends an entry. Call inside the write transaction of the action it records.
pub fn record(conn: &Connection, entry: Entry<'_>, now: i64) -> rusqlite::Result<()> {
    let last: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, String::new()),
    };
    let (actor_kind, actor_id) = entry.actor.parts();
    let mut row = AuditRow {
        id: uuid::Uuid::now_v7().to_string(),
        seq,
        at: now,
        actor_kind: actor_kind.to_string(),
        actor_id: actor_id.map(str::to_string),
        event: entry.event.to_string(),
        subject_id: entry.subject_id.map(str::to_string),
        ip: entry.ip.map(str::to_string),
        details: entry.details.to_string(),
        prev_hash: prev_hash.clone(),
        hash: String::new(),
        property_id: property_of(conn, &entry)?,
    };
    row.hash = keyed_hash(conn, &prev_hash, &row)?;
    conn.prepare_cached(
        "INSERT INTO audit_log (id, seq, at, actor_kind, actor_id, event, subject_id, ip, details,
            prev_hash, hash, property_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        row.id,
        row.seq,
        row.at,
        row.actor_kind,
        row.actor_id,
        row.event,
        row.subject_id,
        row.ip,
        row.details,
        row.prev_hash,
        row.hash,
        row.property_id
    ])?;
    Ok(())
}

const COLUMNS: &str = "id, seq, at, actor_kind, actor_id, event, subject_id, ip, details, \
                       prev_hash, hash, property_id";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        id: r.get(0)?,
        seq: r.get(1)?,
        at: r.get(2)?,
        actor_kind: r.get(3)?,
        actor_id: r.get(4)?,
        event: r.get(5)?,
        subject_id: r.get(6)?,
        ip: r.get(7)?,
        details: r.get(8)?,
        prev_hash: r.get(9)?,
        hash: r.get(10)?,
        property_id: r.get(11)?,
    })
}

/// Which entries a reader may see: those of the listed properties, and node-level entries
/// filed under no property (`''`) only when `node_level` is set.
#[derive(Debug, Clone)]
pub struct Visible {
    pub properties: Vec<String>,
    pub node_level: bool,
}

/// Entries with `seq < before` (all when `None`), newest first, at most `limit`, of the
/// properties `visible` allows; optionally only one event type.
pub fn page(
    conn: &Connection,
    before: Option<i64>,
    event: Option<&str>,
    visible: &Visible,
    limit: u32,
) -> rusqlite::Result<Vec<AuditRow>> {
    let properties = serde_json::to_string(&visible.properties).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_log
         WHERE (?1 IS NULL OR seq < ?1) AND (?2 IS NULL OR event = ?2)
           AND (property_id IN (SELECT value FROM json_each(?3)) OR (?4 AND property_id = ''))
         ORDER BY seq DESC LIMIT ?5"
    ))?
    .query_map(params![before, event, properties, visible.node_level, limit], from_row)?
    .collect()
}

/// The newest entry of this node's chain that the hub holds, as the hub gave it back at the
/// last sync (`node_meta` key `audit_anchor`, JSON `{"seq": N, "hash": "..."}`). While the
/// local chain still has that entry with that hash, nobody deleted the newest entries.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Anchor {
    pub seq: i64,
    pub hash: String,
}

/// How the local chain compares with the hub's anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnchorCheck {
    /// No anchor yet (the node has not synced its log).
    None,
    /// The chain holds the anchored entry with the anchored hash.
    Held,
    /// The chain ends before the anchored entry: its newest entries were deleted.
    Truncated,
    /// The chain has an entry at the anchored sequence number, but not the one the hub holds.
    Differs,
    /// `node_meta`'s `audit_anchor` cannot be read.
    Unreadable,
}

/// The result of walking the whole chain.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// Whether every entry's hash matches its content and its predecessor, and the chain
    /// still holds the entry the hub anchored.
    pub intact: bool,
    /// The first entry whose hash or link does not match, if any.
    pub first_broken_seq: Option<i64>,
    /// Entries from this sequence number on are keyed with the node's audit key
    /// (HMAC-SHA256); earlier ones were written before the node had a key and carry plain
    /// SHA-256 hashes, which anyone could recompute.
    pub keyed_from_seq: i64,
    /// Entries before `keyed_from_seq`.
    pub unkeyed_entries: u64,
    /// The check against the hub's anchor.
    pub anchor: AnchorCheck,
    /// The anchored sequence number, when there is an anchor.
    pub anchor_seq: Option<i64>,
    /// What is wrong, in a sentence; absent when intact.
    pub problem: Option<String>,
}

fn anchor(conn: &Connection) -> rusqlite::Result<Option<Result<Anchor, String>>> {
    let stored: Option<String> = conn
        .prepare_cached("SELECT CAST(value AS TEXT) FROM node_meta WHERE key = 'audit_anchor'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(stored.map(|text| serde_json::from_str::<Anchor>(&text).map_err(|e| e.to_string())))
}

/// Walks the whole chain: every entry from the node's `keyed_from_seq` on must carry its
/// keyed hash, earlier ones their legacy hash; then the hub's anchor must still be there.
/// Needs the audit key installed on `conn` (`audit::key::install`).
pub fn verify(conn: &Connection) -> rusqlite::Result<VerifyReport> {
    let keyed_from: i64 = conn.query_row("SELECT stayos_audit_keyed_from()", [], |r| r.get(0))?;
    let mut report = VerifyReport {
        entries: 0,
        intact: true,
        first_broken_seq: None,
        keyed_from_seq: keyed_from,
        unkeyed_entries: 0,
        anchor: AnchorCheck::None,
        anchor_seq: None,
        problem: None,
    };
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    let mut prev_hash = String::new();
    let mut expected_seq = 1;
    let mut last_seq = 0;
    let mut anchored_hash: Option<String> = None;
    let wanted = anchor(conn)?;
    let wanted_seq = match &wanted {
        Some(Ok(a)) => Some(a.seq),
        _ => None,
    };
    while let Some(r) = rows.next()? {
        let row = from_row(r)?;
        report.entries += 1;
        let keyed = row.seq >= keyed_from;
        if !keyed {
            report.unkeyed_entries += 1;
        }
        let expected_hash =
            if keyed { keyed_hash(conn, &prev_hash, &row)? } else { legacy_hash(&prev_hash, &row) };
        let intact =
            row.seq == expected_seq && row.prev_hash == prev_hash && expected_hash == row.hash;
        if !intact && report.first_broken_seq.is_none() {
            report.first_broken_seq = Some(expected_seq);
            report.problem = Some(format!(
                "entry {expected_seq} does not match its {} hash: it was changed, removed or \
                 rewritten",
                if expected_seq >= keyed_from { "keyed" } else { "unkeyed" }
            ));
            break;
        }
        if Some(row.seq) == wanted_seq {
            anchored_hash = Some(row.hash.clone());
        }
        last_seq = row.seq;
        prev_hash = row.hash;
        expected_seq += 1;
    }
    match wanted {
        None => {}
        Some(Err(reason)) => {
            report.anchor = AnchorCheck::Unreadable;
            report.problem.get_or_insert(format!("the hub's audit anchor is unreadable: {reason}"));
        }
        Some(Ok(a)) => {
            report.anchor_seq = Some(a.seq);
            report.anchor = match anchored_hash {
                Some(hash) if hash == a.hash => AnchorCheck::Held,
                Some(_) => {
                    report.problem.get_or_insert(format!(
                        "entry {} differs from the copy the hub holds: the chain was rewritten",
                        a.seq
                    ));
                    AnchorCheck::Differs
                }
                None if report.first_broken_seq.is_some() => AnchorCheck::Differs,
                None => {
                    report.problem.get_or_insert(format!(
                        "the chain ends at entry {last_seq} but the hub holds entry {}: the \
                         newest entries were deleted",
                        a.seq
                    ));
                    AnchorCheck::Truncated
                }
            };
        }
    }
    report.intact = report.problem.is_none();
    Ok(report)
}

/// The triggers that make `audit_log` append-only, exactly as migration 0001 creates them.
const APPEND_ONLY_TRIGGERS: [(&str, &str); 2] = [
    (
        "audit_log_is_append_only_update",
        "CREATE TRIGGER audit_log_is_append_only_update BEFORE UPDATE ON audit_log
         BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    ),
    (
        "audit_log_is_append_only_delete",
        "CREATE TRIGGER audit_log_is_append_only_delete BEFORE DELETE ON audit_log
         BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    ),
];

/// Re-creates the append-only triggers if someone dropped them (they can only be dropped
/// with the database offline or by hand), warns in the log and records an
/// `audit_triggers_restored` entry. Called at every start, inside a write transaction.
/// Returns the names of the triggers it restored.
pub fn ensure_append_only(conn: &Connection, now: i64) -> rusqlite::Result<Vec<&'static str>> {
    let mut restored = Vec::new();
    for (name, sql) in APPEND_ONLY_TRIGGERS {
        let present: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = ?1
                              AND tbl_name = 'audit_log')",
            [name],
            |r| r.get(0),
        )?;
        if !present {
            conn.execute_batch(sql)?;
            restored.push(name);
        }
    }
    if !restored.is_empty() {
        tracing::warn!(
            triggers = ?restored,
            "the audit log's append-only triggers were missing and have been restored; \
             check /audit/verify"
        );
        record(
            conn,
            Entry::new("audit_triggers_restored", Actor::System)
                .details(serde_json::json!({ "triggers": restored })),
            now,
        )?;
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().expect("open");
        crate::db::migrations::apply(&mut conn).expect("migrate");
        crate::audit::key::install(&conn, &crate::audit::key::AuditKey::generate(1)).expect("key");
        conn
    }

    fn event(conn: &Connection, name: &str, at: i64) {
        let entry = Entry::new(name, Actor::Staff("s1".into()))
            .ip(Some("10.0.0.5"))
            .details(serde_json::json!({ "n": at }));
        record(conn, entry, at).expect("record");
    }

    #[test]
    fn the_chain_verifies_and_rows_cannot_be_changed_or_removed() {
        let conn = db();
        for i in 0..5 {
            event(&conn, "login_succeeded", i);
        }
        let report = verify(&conn).expect("verify");
        assert_eq!((report.entries, report.intact), (5, true));
        assert!(conn.execute("UPDATE audit_log SET event = 'x' WHERE seq = 2", []).is_err());
        assert!(conn.execute("DELETE FROM audit_log WHERE seq = 2", []).is_err());
    }

    #[test]
    fn tampering_behind_the_triggers_back_is_found_at_the_right_entry() {
        let conn = db();
        for i in 0..4 {
            event(&conn, "login_failed", i);
        }
        conn.execute_batch(
            "DROP TRIGGER audit_log_is_append_only_update;
             UPDATE audit_log SET details = '{\"n\":99}' WHERE seq = 3;",
        )
        .expect("tamper");
        let report = verify(&conn).expect("verify");
        assert!(!report.intact);
        assert_eq!(report.first_broken_seq, Some(3));
    }

    /// What someone with the database but without the key can do: change an entry and
    /// recompute every hash from there on, with a key of their own.
    fn rewrite_from(conn: &Connection, seq: i64, hash: impl Fn(&str, &AuditRow) -> String) {
        conn.execute_batch("DROP TRIGGER audit_log_is_append_only_update;").expect("drop");
        let rows: Vec<AuditRow> = conn
            .prepare(&format!("SELECT {COLUMNS} FROM audit_log WHERE seq >= ?1 ORDER BY seq"))
            .expect("prepare")
            .query_map([seq], from_row)
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        let mut prev: String = conn
            .query_row(
                "SELECT coalesce((SELECT hash FROM audit_log WHERE seq = ?1), '')",
                [seq - 1],
                |r| r.get(0),
            )
            .expect("prev");
        for mut row in rows {
            if row.seq == seq {
                row.details = "{\"n\":99}".into();
            }
            row.prev_hash = prev.clone();
            row.hash = hash(&prev, &row);
            conn.execute(
                "UPDATE audit_log SET details = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1",
                params![row.seq, row.details, row.prev_hash, row.hash],
            )
            .expect("rewrite");
            prev = row.hash;
        }
    }

    #[test]
    fn a_rewrite_with_recomputed_hashes_does_not_verify_without_the_node_key() {
        let conn = db();
        for i in 0..4 {
            event(&conn, "login_failed", i);
        }
        let other = crate::audit::key::AuditKey::generate(1);
        rewrite_from(&conn, 2, |prev, row| other.mac(&keyed_message(prev, row)));
        let report = verify(&conn).expect("verify");
        assert_eq!((report.intact, report.first_broken_seq), (false, Some(2)));
        assert!(report.problem.expect("problem").contains("entry 2"));
    }

    #[test]
    fn keyed_entries_rewritten_as_unkeyed_ones_do_not_verify() {
        let conn = db();
        for i in 0..3 {
            event(&conn, "login_failed", i);
        }
        rewrite_from(&conn, 1, legacy_hash);
        let report = verify(&conn).expect("verify");
        assert_eq!((report.intact, report.first_broken_seq), (false, Some(1)));
    }

    #[test]
    fn entries_from_before_the_key_verify_as_unkeyed_and_later_ones_as_keyed() {
        let mut conn = Connection::open_in_memory().expect("open");
        crate::db::migrations::apply(&mut conn).expect("migrate");
        // Two entries as a node without a key wrote them.
        let mut prev = String::new();
        for seq in 1..=2 {
            let mut row = AuditRow {
                id: format!("legacy-{seq}"),
                seq,
                at: seq,
                actor_kind: "system".into(),
                actor_id: None,
                event: "node_initialised".into(),
                subject_id: None,
                ip: None,
                details: "{}".into(),
                prev_hash: prev.clone(),
                hash: String::new(),
                property_id: String::new(),
            };
            row.hash = legacy_hash(&prev, &row);
            conn.execute(
                "INSERT INTO audit_log (id, seq, at, actor_kind, event, details, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    row.id,
                    row.seq,
                    row.at,
                    row.actor_kind,
                    row.event,
                    row.details,
                    row.prev_hash,
                    row.hash
                ],
            )
            .expect("legacy entry");
            prev = row.hash;
        }
        crate::audit::key::install(&conn, &crate::audit::key::AuditKey::generate(3)).expect("key");
        event(&conn, "login_succeeded", 3);
        event(&conn, "login_succeeded", 4);
        let report = verify(&conn).expect("verify");
        assert_eq!(
            (report.intact, report.entries, report.unkeyed_entries, report.keyed_from_seq),
            (true, 4, 2, 3)
        );
    }

    #[test]
    fn the_hubs_anchor_finds_deleted_newest_entries_and_a_different_entry() {
        let conn = db();
        for i in 0..5 {
            event(&conn, "login_failed", i);
        }
        let hash_of = |seq: i64| -> String {
            conn.query_row("SELECT hash FROM audit_log WHERE seq = ?1", [seq], |r| r.get(0))
                .expect("hash")
        };
        let anchor = |seq: i64, hash: &str| {
            conn.execute(
                "INSERT OR REPLACE INTO node_meta (key, value) VALUES ('audit_anchor', ?1)",
                [serde_json::json!({ "seq": seq, "hash": hash }).to_string()],
            )
            .expect("anchor");
        };
        anchor(5, &hash_of(5));
        let held = verify(&conn).expect("verify");
        assert_eq!((held.intact, held.anchor, held.anchor_seq), (true, AnchorCheck::Held, Some(5)));

        anchor(4, "0000");
        let differs = verify(&conn).expect("verify");
        assert_eq!((differs.intact, differs.anchor), (false, AnchorCheck::Differs));

        anchor(5, &hash_of(5));
        conn.execute_batch(
            "DROP TRIGGER audit_log_is_append_only_delete;
             DELETE FROM audit_log WHERE seq >= 4;",
        )
        .expect("truncate");
        let truncated = verify(&conn).expect("verify");
        assert_eq!((truncated.intact, truncated.anchor), (false, AnchorCheck::Truncated));
        assert_eq!(truncated.first_broken_seq, None, "what is left is a valid chain");
        let problem = truncated.problem.expect("problem");
        assert!(problem.contains("ends at entry 3") && problem.contains("entry 5"), "{problem}");
    }

    #[test]
    fn dropped_append_only_triggers_are_restored_and_the_restoration_audited() {
        let conn = db();
        event(&conn, "login_failed", 1);
        conn.execute_batch(
            "DROP TRIGGER audit_log_is_append_only_update;
             DROP TRIGGER audit_log_is_append_only_delete;",
        )
        .expect("drop");
        let restored = ensure_append_only(&conn, 2).expect("ensure");
        assert_eq!(restored.len(), 2);
        assert!(conn.execute("UPDATE audit_log SET event = 'x' WHERE seq = 1", []).is_err());
        assert!(conn.execute("DELETE FROM audit_log WHERE seq = 1", []).is_err());
        let last: String = conn
            .query_row("SELECT event FROM audit_log ORDER BY seq DESC LIMIT 1", [], |r| r.get(0))
            .expect("last");
        assert_eq!(last, "audit_triggers_restored");
        assert!(ensure_append_only(&conn, 3).expect("again").is_empty());
    }
}
