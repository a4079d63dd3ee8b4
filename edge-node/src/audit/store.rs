//! SQL of the audit log. Audit owns `audit_log`.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

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
}

impl<'a> Entry<'a> {
    pub fn new(event: &'a str, actor: Actor) -> Self {
        Entry {
            event,
            actor,
            subject_id: None,
            ip: None,
            details: Value::Object(Default::default()),
        }
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
}

fn chain_hash(prev_hash: &str, row: &AuditRow) -> String {
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
    };
    row.hash = chain_hash(&prev_hash, &row);
    conn.prepare_cached(
        "INSERT INTO audit_log (id, seq, at, actor_kind, actor_id, event, subject_id, ip, details, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        row.id, row.seq, row.at, row.actor_kind, row.actor_id, row.event, row.subject_id, row.ip,
        row.details, row.prev_hash, row.hash
    ])?;
    Ok(())
}

const COLUMNS: &str =
    "id, seq, at, actor_kind, actor_id, event, subject_id, ip, details, prev_hash, hash";

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
    })
}

/// Entries with `seq < before` (all when `None`), newest first, at most `limit`; optionally
/// only one event type.
pub fn page(
    conn: &Connection,
    before: Option<i64>,
    event: Option<&str>,
    limit: u32,
) -> rusqlite::Result<Vec<AuditRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM audit_log
         WHERE (?1 IS NULL OR seq < ?1) AND (?2 IS NULL OR event = ?2)
         ORDER BY seq DESC LIMIT ?3"
    ))?
    .query_map(params![before, event, limit], from_row)?
    .collect()
}

/// The result of walking the whole chain.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// Whether every entry's hash matches its content and its predecessor.
    pub intact: bool,
    /// The first entry whose hash or link does not match, if any.
    pub first_broken_seq: Option<i64>,
}

pub fn verify(conn: &Connection) -> rusqlite::Result<VerifyReport> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM audit_log ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    let mut prev_hash = String::new();
    let mut expected_seq = 1;
    let mut entries = 0;
    while let Some(r) = rows.next()? {
        let row = from_row(r)?;
        entries += 1;
        let intact = row.seq == expected_seq
            && row.prev_hash == prev_hash
            && chain_hash(&prev_hash, &row) == row.hash;
        if !intact {
            return Ok(VerifyReport {
                entries,
                intact: false,
                first_broken_seq: Some(expected_seq),
            });
        }
        prev_hash = row.hash;
        expected_seq += 1;
    }
    Ok(VerifyReport { entries, intact: true, first_broken_seq: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().expect("open");
        crate::db::migrations::apply(&mut conn).expect("migrate");
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
}
