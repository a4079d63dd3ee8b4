//! What the hub accepts of one change before it looks at stored state: the checks every
//! change of a push or a file import passes, each refusal with a reason a person can read.
//!
//! A refused change is quarantined (`store`), never a reason to refuse the rest of its batch:
//! one bad change, from a hostile or a broken node, must not stop the good ones behind it.
//! Ownership of property rows needs the stored rows and is decided in `store`.

use crdt::protocol::Scope;
use crdt::{Change, SENTINEL};

use crate::schema::{HubSchema, is_ident};

/// Every `Refusal::kind`.
pub const KINDS: &[&str] = &[
    "invalid",
    "forged_site",
    "node_scope",
    "unknown_table",
    "unknown_column",
    "other_property",
    "unknown_parent",
];

/// Why a change was refused: `kind` is a short stable label (metrics, the quarantine's
/// `kind` column), `reason` the sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: &'static str,
    pub reason: String,
}

impl Refusal {
    pub fn new(kind: &'static str, reason: impl Into<String>) -> Self {
        Self { kind, reason: reason.into() }
    }
}

/// What becomes of one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Merged (if it wins).
    Accept,
    /// Not kept, and not an error: a node-scope row in a file an edge exported.
    Skip,
    /// Of a newer edge schema than the hub's: kept aside until the hub migrates, never
    /// relayed to nodes that cannot apply it.
    Hold,
    Refuse(Refusal),
}

/// Who a batch comes from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The pushing node's site id; `None` for a file.
    pub site_id: Option<&'a [u8]>,
    /// The edge schema version the batch was written in.
    pub schema_version: i64,
    /// The hub's own site id, which no sender may write as.
    pub hub_site_id: &'a [u8],
}

/// The verdict on `c` from `from` that needs no stored state.
pub fn screen(schema: &HubSchema, from: Source<'_>, c: &Change) -> Verdict {
    let refuse = |kind, reason: String| Verdict::Refuse(Refusal::new(kind, reason));
    if let Err(reason) = crdt::check_bounds(c) {
        return refuse("invalid", reason);
    }
    match from.site_id {
        Some(site) if c.site_id != site => {
            return refuse(
                "forged_site",
                format!(
                    "the change names site {} as its writer, but the batch is site {}'s",
                    hex::encode(&c.site_id),
                    hex::encode(site)
                ),
            );
        }
        _ if c.site_id == from.hub_site_id => {
            return refuse("forged_site", "the change names the hub itself as its writer".into());
        }
        _ => {}
    }
    if !is_ident(&c.table) {
        return refuse("invalid", format!("table {:?} is not an identifier", c.table));
    }
    if c.cid != SENTINEL && !is_ident(&c.cid) {
        return refuse("invalid", format!("column {:?} is not an identifier", c.cid));
    }
    let key = match crdt::unpack(&c.pk) {
        Ok(key) => key,
        Err(e) => return refuse("invalid", format!("pk: {e}")),
    };
    if key.contains(&crdt::Value::Null) {
        return refuse("invalid", "pk has a NULL column".into());
    }
    let newer = from.schema_version > schema.version();
    match schema.scope(&c.table) {
        Some(Scope::Node) if from.site_id.is_none() => return Verdict::Skip,
        Some(Scope::Node) => {
            return refuse(
                "node_scope",
                format!("{} is kept on the node and never sent to the hub", c.table),
            );
        }
        None if newer => return Verdict::Hold,
        None => {
            return refuse(
                "unknown_table",
                format!(
                    "table {} is not in the edge schema (version {})",
                    c.table,
                    schema.version()
                ),
            );
        }
        Some(_) => {}
    }
    let Some(table) = schema.table(&c.table) else {
        return refuse("unknown_table", format!("table {} has no read table", c.table));
    };
    if key.len() != table.key.len() {
        return refuse(
            "invalid",
            format!("pk has {} columns; the key of {} has {}", key.len(), c.table, table.key.len()),
        );
    }
    if c.cid == SENTINEL {
        return Verdict::Accept;
    }
    if table.key.iter().any(|&k| table.columns[k].name == c.cid) {
        return refuse("invalid", format!("{} is a key column of {}", c.cid, c.table));
    }
    let Some(column) = table.column(&c.cid) else {
        if newer {
            return Verdict::Hold;
        }
        return refuse(
            "unknown_column",
            format!(
                "{} has no column {} in edge schema version {}",
                c.table,
                c.cid,
                schema.version()
            ),
        );
    };
    if column.not_null && c.val == rusqlite::types::Value::Null {
        return refuse("invalid", format!("{}.{} may not be NULL", c.table, c.cid));
    }
    Verdict::Accept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::protocol::Scopes;
    use rusqlite::types::Value;

    const NODE: [u8; 16] = [1; 16];
    const HUB: [u8; 16] = [9; 16];

    fn schema() -> HubSchema {
        let scopes = Scopes::parse(
            "[tables]\nrooms = \"property\"\nstaff = \"node\"\n[owners]\nrooms = \"property_id\"\n",
        )
        .expect("scopes");
        HubSchema::from_sqlite(
            "CREATE TABLE rooms (id TEXT PRIMARY KEY NOT NULL, property_id TEXT,
                                 status TEXT NOT NULL DEFAULT 'clean');
             CREATE TABLE staff (id TEXT PRIMARY KEY NOT NULL, role TEXT);",
            &scopes,
        )
        .expect("schema")
    }

    fn change(table: &str, cid: &str) -> Change {
        Change {
            table: table.into(),
            pk: crdt::pack(&[crdt::Value::Text("r1".into())]).expect("pk"),
            cid: cid.into(),
            val: Value::Text("x".into()),
            col_version: 1,
            db_version: 1,
            site_id: NODE.to_vec(),
            cl: 1,
            seq: 0,
        }
    }

    fn push(schema_version: i64) -> Source<'static> {
        Source { site_id: Some(&NODE), schema_version, hub_site_id: &HUB }
    }

    fn kind(v: Verdict) -> &'static str {
        match v {
            Verdict::Refuse(r) => r.kind,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn each_bad_change_is_refused_with_its_own_reason() {
        let s = schema();
        assert_eq!(screen(&s, push(1), &change("rooms", "status")), Verdict::Accept);
        assert_eq!(screen(&s, push(1), &change("rooms", SENTINEL)), Verdict::Accept);
        assert_eq!(kind(screen(&s, push(1), &change("rooms", "zz"))), "unknown_column");
        assert_eq!(kind(screen(&s, push(1), &change("minibars", "brand"))), "unknown_table");
        assert_eq!(kind(screen(&s, push(1), &change("rooms", "id"))), "invalid");
        assert_eq!(kind(screen(&s, push(1), &change("staff", "role"))), "node_scope");
        let mut poisoned = change("rooms", "status");
        poisoned.col_version = i64::MAX;
        assert_eq!(kind(screen(&s, push(1), &poisoned)), "invalid");
        let mut null = change("rooms", "status");
        null.val = Value::Null;
        assert_eq!(kind(screen(&s, push(1), &null)), "invalid");
        null.cid = "property_id".into();
        assert_eq!(screen(&s, push(1), &null), Verdict::Accept);
        let mut forged = change("rooms", "status");
        forged.site_id = vec![2; 16];
        assert_eq!(kind(screen(&s, push(1), &forged)), "forged_site");
    }

    #[test]
    fn a_newer_schema_is_held_and_a_file_skips_node_rows_but_cannot_write_as_the_hub() {
        let s = schema();
        assert_eq!(screen(&s, push(2), &change("minibars", "brand")), Verdict::Hold);
        assert_eq!(screen(&s, push(2), &change("rooms", "floor")), Verdict::Hold);
        let file = Source { site_id: None, schema_version: 1, hub_site_id: &HUB };
        assert_eq!(screen(&s, file, &change("staff", "role")), Verdict::Skip);
        assert_eq!(screen(&s, file, &change("rooms", "status")), Verdict::Accept);
        let mut as_hub = change("rooms", "status");
        as_hub.site_id = HUB.to_vec();
        assert_eq!(kind(screen(&s, file, &as_hub)), "forged_site");
    }
}
