//! Merging changes from other sites, with cr-sqlite 0.16's rules, made a true join so that
//! replicas end with identical rows *and* identical clocks whatever the order, duplication or
//! grouping of deliveries.
//!
//! Per row the state is its causal length `cl`, the sentinel's site and one register per
//! column `(col_version, value, site)`. A change is merged as follows:
//!
//! - `cl` lower than the row's: ignored — it is about an earlier life of the row.
//! - `cl` higher: the row moves to that life. Its registers from the earlier life are dropped
//!   and, for an odd `cl`, the row starts again from its column defaults (an even `cl`
//!   deletes it); then the change is applied. The sentinel is stamped with the change's site.
//! - equal `cl`, a column: the higher `col_version` wins, then the larger value (cr-sqlite's
//!   order: NULL lowest, then blob, text, real, integer, and within a type by value; text and
//!   blob bytewise); identical values leave the row alone.
//! - equal `cl`, the sentinel: nothing changes in the row.
//!
//! Two refinements make the *metadata* converge too, where cr-sqlite's does not (rows are
//! unaffected, so a cr-sqlite peer still converges to the same rows): on identical values, and
//! on two sentinels at the same `cl`, the larger site id is kept; and registers of an earlier
//! life are dropped rather than zeroed, so a resurrection seen as column changes first and as
//! the sentinel later ends in the same clock as the other way round.
//!
//! Merged registers are stamped with this database's version for the merging transaction,
//! so they are relayed to other peers by `changes_since`.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use crate::capture::{CrdtError, Replica, ident};
use crate::catalog::{Catalog, Table};
use crate::changes::{Change, SENTINEL};
use crate::clock::{Cell, RowClock};
use crate::pk::{self, Value};
use crate::wire;

/// A batch of changes from one site, as sent over the network or carried in a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Changeset {
    /// The site that sent the batch (not necessarily the site that wrote each change).
    pub site_id: Vec<u8>,
    /// The sender's replicated schema version.
    pub schema_version: i64,
    /// The sender's database versions the batch covers: `since < db_version <= until`.
    pub since: i64,
    pub until: i64,
    pub changes: Vec<Change>,
}

/// What a merge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Changes that changed a row or its clock.
    pub applied: usize,
    /// Changes that lost, or were already known.
    pub ignored: usize,
    /// Changes for tables or columns of a newer schema, kept to apply after a migration.
    pub held: usize,
}

/// How far this database has synced with a peer, in the peer's and in its own versions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCursor {
    /// The peer's version up to which all its changes are merged here.
    pub received: i64,
    /// This database's version up to which the peer has confirmed receiving all changes.
    pub acked: i64,
}

/// The order cr-sqlite 0.16 uses between two values of a column (checked against the real
/// cr-sqlite by the interoperability tests): by type — NULL, blob, text, real, integer —
/// then by value, text and blob bytewise.
pub fn compare_values(a: &SqlValue, b: &SqlValue) -> Ordering {
    fn rank(v: &SqlValue) -> u8 {
        match v {
            SqlValue::Null => 0,
            SqlValue::Blob(_) => 1,
            SqlValue::Text(_) => 2,
            SqlValue::Real(_) => 3,
            SqlValue::Integer(_) => 4,
        }
    }
    match (a, b) {
        (SqlValue::Integer(x), SqlValue::Integer(y)) => x.cmp(y),
        (SqlValue::Real(x), SqlValue::Real(y)) => x.total_cmp(y),
        (SqlValue::Text(x), SqlValue::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
        (SqlValue::Blob(x), SqlValue::Blob(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// The replicated schema version this database is on (0 until set).
pub fn schema_version(conn: &Connection) -> Result<i64, CrdtError> {
    if !crate::capture::has_meta(conn)? {
        return Ok(0);
    }
    let v: Option<i64> = conn
        .query_row("SELECT value FROM crdt_meta WHERE key = 'schema_version'", [], |r| r.get(0))
        .optional()?;
    Ok(v.unwrap_or(0))
}

/// The sync cursor of a peer.
pub fn peer_cursor(conn: &Connection, peer: &[u8]) -> Result<PeerCursor, CrdtError> {
    let cursor = conn
        .query_row("SELECT received, acked FROM crdt_peers WHERE site_id = ?1", [peer], |r| {
            Ok(PeerCursor { received: r.get(0)?, acked: r.get(1)? })
        })
        .optional()?;
    Ok(cursor.unwrap_or_default())
}

/// Records that `peer` has confirmed receiving every change up to this database's `version`.
/// Never moves the cursor back.
pub fn set_acked(conn: &Connection, peer: &[u8], version: i64) -> Result<(), CrdtError> {
    conn.execute(
        "INSERT INTO crdt_peers (site_id, acked) VALUES (?1, ?2)
         ON CONFLICT (site_id) DO UPDATE SET acked = max(acked, excluded.acked)",
        rusqlite::params![peer, version],
    )?;
    Ok(())
}

/// Everything this database has to send `peer` after `since`: its changes in version
/// order, without the peer's own, with this database's site id, schema version and the
/// range of versions covered. Reads one consistent snapshot.
pub fn changeset_since(
    conn: &Connection,
    since: i64,
    peer: Option<&[u8]>,
) -> Result<Changeset, CrdtError> {
    let own_tx = conn.is_autocommit();
    if own_tx {
        conn.execute_batch("BEGIN")?;
    }
    let result = (|| {
        let until: i64 = if crate::capture::has_meta(conn)? {
            conn.query_row("SELECT coalesce(max(db_version), 0) FROM crdt_log", [], |r| r.get(0))?
        } else {
            0
        };
        Ok(Changeset {
            site_id: crate::capture::site_id(conn)?,
            schema_version: schema_version(conn)?,
            since,
            until: until.max(since),
            changes: crate::changes::changes_since(conn, since, peer)?,
        })
    })();
    if own_tx {
        conn.execute_batch("COMMIT")?;
    }
    result
}

/// The next bounded batch after `since` of the changes written by `sites`: whole database
/// versions touching at most `max_rows` rows in all (at least one version), read in one
/// snapshot. `until` is where the batch ends even when `sites` leaves every change out, so
/// a cursor moves past versions that hold nothing to send.
pub fn changeset_batch(
    conn: &Connection,
    since: i64,
    max_rows: usize,
    sites: crate::changes::Sites<'_>,
) -> Result<Changeset, CrdtError> {
    let own_tx = conn.is_autocommit();
    if own_tx {
        conn.execute_batch("BEGIN")?;
    }
    let result = (|| {
        if !crate::capture::has_meta(conn)? {
            return Ok(Changeset {
                site_id: Vec::new(),
                schema_version: 0,
                since,
                until: since,
                changes: Vec::new(),
            });
        }
        let until = crate::changes::batch_end(conn, since, max_rows)?;
        let mut changes = Vec::new();
        crate::changes::for_each_change_between(conn, since, until, sites, |c| {
            changes.push(c);
            Ok(())
        })?;
        Ok(Changeset {
            site_id: crate::capture::site_id(conn)?,
            schema_version: schema_version(conn)?,
            since,
            until,
            changes,
        })
    })();
    if own_tx {
        conn.execute_batch("COMMIT")?;
    }
    result
}

/// A change checked against the local schema.
enum Checked<'t> {
    Apply { table: &'t Table, key: Vec<Value>, column: Option<usize> },
    Hold,
}

fn bad(index: usize, reason: impl Into<String>) -> CrdtError {
    CrdtError::BadChange { index, reason: reason.into() }
}

/// Checks one change; `newer` says the sender's schema is ahead of ours, so unknown tables
/// and columns are held rather than refused.
fn check<'t>(
    catalog: &'t Catalog,
    index: usize,
    c: &Change,
    newer: bool,
) -> Result<Checked<'t>, CrdtError> {
    crate::check_bounds(c).map_err(|reason| bad(index, reason))?;
    let key = pk::unpack(&c.pk).map_err(|e| bad(index, format!("pk: {e}")))?;
    let Some(table) = catalog.table(&c.table) else {
        return if newer {
            Ok(Checked::Hold)
        } else {
            Err(bad(index, format!("unknown table {:?}", c.table)))
        };
    };
    if key.len() != table.shape.pks.len() {
        return Err(bad(
            index,
            format!(
                "pk has {} columns; the key of {} has {}",
                key.len(),
                c.table,
                table.shape.pks.len()
            ),
        ));
    }
    if key.contains(&Value::Null) {
        return Err(bad(index, "pk has a NULL column"));
    }
    let column = if c.cid == SENTINEL {
        None
    } else {
        match table.column_index.get(&c.cid) {
            Some(&i) if table.shape.not_null[i] && c.val == SqlValue::Null => {
                return Err(bad(index, format!("{}.{} may not be NULL", c.table, c.cid)));
            }
            Some(&i) => Some(i),
            None if newer => return Ok(Checked::Hold),
            None => {
                return Err(bad(index, format!("unknown column {:?} of {}", c.cid, c.table)));
            }
        }
    };
    Ok(Checked::Apply { table, key, column })
}

impl Replica {
    /// Merges a changeset from another site in one transaction (a savepoint inside the
    /// caller's, if any): every change is checked first, and one that cannot be valid fails
    /// the whole batch with its index and reason, nothing applied. Changes for tables or
    /// columns of a newer schema than this database's are held and applied by
    /// [`Replica::set_schema_version`] once it has migrated. Then the peer's cursor moves to
    /// the end of the batch, unless the batch starts after it (a gap).
    pub fn merge(&self, conn: &Connection, set: &Changeset) -> Result<MergeReport, CrdtError> {
        if set.site_id.len() != 16 {
            return Err(CrdtError::Invalid(format!(
                "the sender's site id has {} bytes, not 16",
                set.site_id.len()
            )));
        }
        let report = self.merge_changes(conn, &set.changes, |_| Some(set.schema_version))?;
        conn.execute("INSERT OR IGNORE INTO crdt_peers (site_id) VALUES (?1)", [&set.site_id])?;
        conn.execute(
            "UPDATE crdt_peers SET received = max(received, ?3) WHERE site_id = ?1 AND ?2 <= received",
            rusqlite::params![set.site_id, set.since, set.until],
        )?;
        Ok(report)
    }

    /// Checks each change as [`Replica::merge_changes`] would, without applying anything: per
    /// change `None` when it would be applied or held, or the reason it would fail the
    /// batch. A receiver that must not let one bad change stop the others (a node pulling from
    /// the hub, a file import) merges only the good ones and keeps the others aside.
    pub fn screen(
        &self,
        conn: &Connection,
        changes: &[Change],
        schema_of: impl Fn(usize) -> Option<i64>,
    ) -> Result<Vec<Option<String>>, CrdtError> {
        let ours = schema_version(conn)?;
        let catalog = Catalog::load(conn)?;
        Ok(changes
            .iter()
            .enumerate()
            .map(|(i, c)| match check(&catalog, i, c, schema_of(i).unwrap_or(ours) > ours) {
                Ok(_) => None,
                Err(CrdtError::BadChange { reason, .. }) => Some(reason),
                Err(other) => Some(other.to_string()),
            })
            .collect())
    }

    /// Merges changes that come with no sender (a file), like [`Replica::merge`] but without
    /// moving any cursor. `schema_of(i)` is the schema version change `i` was written in;
    /// `None` means this database's own.
    pub fn merge_changes(
        &self,
        conn: &Connection,
        changes: &[Change],
        schema_of: impl Fn(usize) -> Option<i64>,
    ) -> Result<MergeReport, CrdtError> {
        let ours = schema_version(conn)?;
        self.apply(conn, changes, |i| schema_of(i).unwrap_or(ours), ours)
    }

    /// Sets the replicated schema version after a migration, and applies the changes held
    /// for it.
    pub fn set_schema_version(&self, conn: &Connection, version: i64) -> Result<usize, CrdtError> {
        conn.execute(
            "INSERT INTO crdt_meta (key, value) VALUES ('schema_version', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [version],
        )?;
        let held: Vec<(i64, i64, String)> = conn
            .prepare("SELECT id, schema_version, change FROM crdt_held ORDER BY id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut applied = 0;
        for (id, their_schema, line) in held {
            let change = wire::parse_change(&line)
                .map_err(|e| CrdtError::Invalid(format!("held change {id}: {e}")))?;
            let report =
                self.apply(conn, std::slice::from_ref(&change), |_| their_schema, version)?;
            if report.held == 0 {
                conn.execute("DELETE FROM crdt_held WHERE id = ?1", [id])?;
                applied += 1;
            }
        }
        Ok(applied)
    }

    fn apply(
        &self,
        conn: &Connection,
        changes: &[Change],
        their_schema: impl Fn(usize) -> i64,
        our_schema: i64,
    ) -> Result<MergeReport, CrdtError> {
        let catalog = Catalog::load(conn)?;
        let checked: Vec<Checked<'_>> = changes
            .iter()
            .enumerate()
            .map(|(i, c)| check(&catalog, i, c, their_schema(i) > our_schema))
            .collect::<Result<_, _>>()?;
        // Sites are interned before the merge so that the catalog is not borrowed mutably
        // while the checked changes refer to its tables.
        let new_sites: Vec<&[u8]> = changes
            .iter()
            .map(|c| c.site_id.as_slice())
            .filter(|s| !catalog.site_ordinals.contains_key(*s))
            .collect();
        let mut sites = catalog.site_ordinals.clone();
        let mut site_bytes = catalog.sites.clone();
        conn.execute_batch("SAVEPOINT crdt_merge")?;
        if let Err(e) = self.refresh(conn) {
            conn.execute_batch("ROLLBACK TO crdt_merge; RELEASE crdt_merge")?;
            return Err(e);
        }
        self.capturing.store(false, std::sync::atomic::Ordering::Relaxed);
        let result = (|| {
            for site in new_sites {
                if sites.contains_key(site) {
                    continue;
                }
                conn.prepare_cached("INSERT INTO crdt_sites (site_id) VALUES (?1)")?
                    .execute([site])?;
                let ordinal = u32::try_from(conn.last_insert_rowid())
                    .map_err(|_| CrdtError::Invalid("too many sites".into()))?;
                sites.insert(site.to_vec(), ordinal);
                site_bytes.insert(ordinal, site.to_vec());
            }
            let mut report = MergeReport::default();
            let mut i = 0;
            while i < changes.len() {
                let Checked::Apply { table, key, .. } = &checked[i] else {
                    conn.prepare_cached(
                        "INSERT INTO crdt_held (schema_version, change) VALUES (?1, ?2)",
                    )?
                    .execute(rusqlite::params![their_schema(i), wire::change_line(&changes[i])])?;
                    report.held += 1;
                    i += 1;
                    continue;
                };
                // The run of changes to the same row is merged at once.
                let mut end = i + 1;
                while end < changes.len()
                    && matches!(&checked[end], Checked::Apply { table: t, .. } if t.ordinal == table.ordinal)
                    && changes[end].pk == changes[i].pk
                {
                    end += 1;
                }
                let run: Vec<(&Change, Option<usize>, u32)> = (i..end)
                    .map(|j| {
                        let Checked::Apply { column, .. } = checked[j] else { unreachable!() };
                        (&changes[j], column, sites[&changes[j].site_id])
                    })
                    .collect();
                merge_row(conn, self, table, key, &changes[i].pk, &run, &site_bytes, &mut report)?;
                i = end;
            }
            self.flush(conn)?;
            Ok(report)
        })();
        self.capturing.store(true, std::sync::atomic::Ordering::Relaxed);
        match result {
            Ok(report) => {
                conn.execute_batch("RELEASE crdt_merge")?;
                Ok(report)
            }
            Err(e) => {
                conn.execute_batch("ROLLBACK TO crdt_merge; RELEASE crdt_merge")?;
                Err(e)
            }
        }
    }
}

/// What has to happen to the table row after merging a run of changes.
#[derive(Debug, Default)]
struct RowWrites {
    /// The row started a new life: its old values are gone.
    reset: bool,
    /// Columns whose value changed, with the new value.
    values: BTreeMap<usize, SqlValue>,
}

/// Merges a run of changes to one row.
#[allow(clippy::too_many_arguments)]
fn merge_row(
    conn: &Connection,
    replica: &Replica,
    table: &Table,
    key: &[Value],
    packed: &[u8],
    run: &[(&Change, Option<usize>, u32)],
    site_bytes: &std::collections::HashMap<u32, Vec<u8>>,
    report: &mut MergeReport,
) -> Result<(), CrdtError> {
    let keys = || params_from_iter(key.iter().map(Value::to_sql));
    let (mut clock, existed, mut current) = {
        let mut stmt = conn.prepare_cached(&table.row_sql())?;
        let mut rows = stmt.query(keys())?;
        match rows.next()? {
            None => (RowClock::default(), false, vec![SqlValue::Null; table.shape.others.len()]),
            Some(row) => {
                let clock = table.clock_of(row)?;
                let existed: bool = row.get(1)?;
                let current = (0..table.shape.others.len())
                    .map(|i| row.get(i + 2))
                    .collect::<Result<Vec<SqlValue>, _>>()?;
                (clock, existed, current)
            }
        }
    };
    let site_of = |ordinal: u32| site_bytes.get(&ordinal).map_or(&[][..], Vec::as_slice);
    let before = clock.clone();
    let mut writes = RowWrites::default();
    // Held only while the clock is computed: the writes below run triggers that lock it.
    let mut state = replica.lock();
    for &(change, column, site) in run {
        let changed = match change.cl.cmp(&clock.cl) {
            Ordering::Less => false,
            Ordering::Greater => {
                clock.cl = change.cl;
                clock.cells.clear();
                writes.values.clear();
                current.iter_mut().for_each(|v| *v = SqlValue::Null);
                writes.reset = true;
                // A first life known only from its columns has no sentinel, as at the site
                // that wrote it.
                clock.sentinel = (column.is_none() || change.cl >= 2).then(|| state.stamp(site));
                if let (Some(i), true) = (column, clock.alive()) {
                    clock.set_cell(
                        i,
                        Some(Cell { version: change.col_version, stamp: state.stamp(site) }),
                    );
                    writes.values.insert(i, change.val.clone());
                    current[i] = change.val.clone();
                }
                true
            }
            Ordering::Equal => match column {
                None => {
                    let larger = clock.sentinel.is_none_or(|s| site_of(site) > site_of(s.site));
                    if larger {
                        clock.sentinel = Some(state.stamp(site));
                    }
                    larger
                }
                Some(_) if !clock.alive() => false,
                Some(i) => {
                    let order = match clock.cell(i) {
                        None => Ordering::Greater,
                        Some(cell) => change
                            .col_version
                            .cmp(&cell.version)
                            .then_with(|| compare_values(&change.val, &current[i])),
                    };
                    match order {
                        Ordering::Greater => {
                            clock.set_cell(
                                i,
                                Some(Cell {
                                    version: change.col_version,
                                    stamp: state.stamp(site),
                                }),
                            );
                            writes.values.insert(i, change.val.clone());
                            current[i] = change.val.clone();
                            true
                        }
                        Ordering::Less => false,
                        Ordering::Equal => {
                            // Same value: only the clock's site, so that replicas agree on it.
                            let cell = clock.cell(i).map(|c| c.stamp.site);
                            let larger = cell.is_some_and(|s| site_of(site) > site_of(s));
                            if larger {
                                clock.set_cell(
                                    i,
                                    Some(Cell {
                                        version: change.col_version,
                                        stamp: state.stamp(site),
                                    }),
                                );
                            }
                            larger
                        }
                    }
                }
            },
        };
        if changed {
            report.applied += 1;
        } else {
            report.ignored += 1;
        }
    }
    drop(state);
    if clock == before {
        return Ok(());
    }
    write_row(conn, table, key, existed, clock.alive(), &writes)?;
    conn.prepare_cached(&format!(
        "INSERT INTO {} ({keys}, clock) VALUES ({params}, ?{n}) \
         ON CONFLICT ({keys}) DO UPDATE SET clock = excluded.clock",
        ident(&table.shape.clock_table()),
        keys = table.shape.key_list(""),
        params = (1..=key.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", "),
        n = key.len() + 1,
    ))?
    .execute(params_from_iter(key.iter().map(Value::to_sql).chain([
        rusqlite::types::ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Blob(&clock.encode())),
    ])))?;
    replica.lock().note(table.ordinal, packed.to_vec());
    Ok(())
}

/// Brings the table row in line with a merged clock (capture is off meanwhile).
fn write_row(
    conn: &Connection,
    table: &Table,
    key: &[Value],
    existed: bool,
    alive: bool,
    writes: &RowWrites,
) -> Result<(), CrdtError> {
    let s = &table.shape;
    let t = ident(&s.name);
    let key_cond = s.key_params("");
    let keys = || key.iter().map(Value::to_sql);
    let mut exists = existed;
    if exists && (!alive || writes.reset) {
        conn.prepare_cached(&format!("DELETE FROM {t} WHERE {key_cond}"))?
            .execute(params_from_iter(keys()))?;
        exists = false;
    }
    if !alive {
        return Ok(());
    }
    let columns: Vec<&str> = writes.values.keys().map(|&i| s.others[i].as_str()).collect();
    let values = writes.values.values().map(|v| rusqlite::types::ToSqlOutput::Borrowed(v.into()));
    if !exists {
        let names: String = s
            .pks
            .iter()
            .map(|(p, _)| p.as_str())
            .chain(columns.iter().copied())
            .map(ident)
            .collect::<Vec<_>>()
            .join(", ");
        let params =
            (1..=key.len() + columns.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
        conn.prepare_cached(&format!("INSERT INTO {t} ({names}) VALUES ({params})"))?
            .execute(params_from_iter(keys().chain(values)))?;
    } else if !columns.is_empty() {
        let n = key.len();
        let sets = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{} = ?{}", ident(c), n + i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        conn.prepare_cached(&format!("UPDATE {t} SET {sets} WHERE {key_cond}"))?
            .execute(params_from_iter(keys().chain(values)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE_B: [u8; 16] = [0xB; 16];

    fn node() -> (Connection, Replica) {
        let conn = Connection::open_in_memory().expect("open");
        let replica = Replica::install(&conn).expect("install");
        conn.execute_batch("CREATE TABLE rooms (id TEXT PRIMARY KEY NOT NULL, status TEXT)")
            .expect("ddl");
        replica.make_replicated(&conn, "rooms").expect("replicate");
        replica.set_schema_version(&conn, 1).expect("schema");
        (conn, replica)
    }

    fn change(table: &str, id: &str, cid: &str, val: &str) -> Change {
        Change {
            table: table.into(),
            pk: pk::pack(&[Value::Text(id.into())]).expect("pack"),
            cid: cid.into(),
            val: SqlValue::Text(val.into()),
            col_version: 1,
            db_version: 1,
            site_id: SITE_B.to_vec(),
            cl: 1,
            seq: 0,
        }
    }

    fn set(since: i64, until: i64, schema_version: i64, changes: Vec<Change>) -> Changeset {
        Changeset { site_id: SITE_B.to_vec(), schema_version, since, until, changes }
    }

    #[test]
    fn a_bad_change_fails_the_whole_batch_with_its_index() {
        let (conn, replica) = node();
        let mut bad_key = change("rooms", "102", "status", "x");
        bad_key.pk = vec![9];
        for (bad, reason) in [
            (change("nope", "102", "status", "x"), "unknown table"),
            (change("rooms", "102", "colour", "x"), "unknown column"),
            (bad_key, "pk"),
        ] {
            let batch = set(0, 1, 1, vec![change("rooms", "101", "status", "clean"), bad]);
            let err = replica.merge(&conn, &batch).expect_err("refused");
            assert!(
                matches!(&err, CrdtError::BadChange { index: 1, reason: r } if r.contains(reason)),
                "{err}"
            );
            let rooms: i64 =
                conn.query_row("SELECT count(*) FROM rooms", [], |r| r.get(0)).expect("count");
            assert_eq!(rooms, 0, "nothing of a refused batch is applied");
        }
    }

    #[test]
    fn a_null_for_a_not_null_column_is_refused_with_its_reason() {
        // Applied, it could never be written: the INSERT would fail the whole merge instead
        // of the one change being refused (and quarantined by the receiver).
        let (conn, replica) = node();
        conn.execute_batch(
            "CREATE TABLE desks (id TEXT PRIMARY KEY NOT NULL, floor INTEGER NOT NULL DEFAULT 0)",
        )
        .expect("ddl");
        replica.make_replicated(&conn, "desks").expect("replicate");
        let mut null_floor = change("desks", "d1", "floor", "x");
        null_floor.val = SqlValue::Null;
        let verdicts = replica
            .screen(&conn, &[null_floor.clone(), change("desks", "d2", "floor", "3")], |_| None)
            .expect("screen");
        assert_eq!(verdicts[0].as_deref(), Some("desks.floor may not be NULL"), "{verdicts:?}");
        assert_eq!(verdicts[1], None);
        let err = replica.merge(&conn, &set(0, 1, 1, vec![null_floor])).expect_err("refused");
        assert!(matches!(err, CrdtError::BadChange { index: 0, .. }), "{err}");
    }

    #[test]
    fn clocks_past_the_bound_are_refused_and_screen_names_each_bad_change() {
        let (conn, replica) = node();
        let mut max_version = change("rooms", "101", "status", "x");
        max_version.col_version = i64::MAX;
        let mut max_cl = change("rooms", "101", "status", "x");
        max_cl.cl = crate::MAX_CLOCK + 1;
        let mut at_bound = change("rooms", "101", "status", "poison");
        at_bound.col_version = crate::MAX_CLOCK;
        let changes = vec![
            change("rooms", "102", "status", "clean"),
            max_version.clone(),
            max_cl.clone(),
            change("rooms", "102", "colour", "x"),
            at_bound.clone(),
        ];
        let verdicts = replica.screen(&conn, &changes, |_| None).expect("screen");
        assert_eq!(verdicts[0], None);
        assert!(verdicts[1].as_deref().is_some_and(|r| r.contains("col_version")), "{verdicts:?}");
        assert!(verdicts[2].as_deref().is_some_and(|r| r.contains("cl ")), "{verdicts:?}");
        assert!(verdicts[3].as_deref().is_some_and(|r| r.contains("unknown column")));
        assert_eq!(verdicts[4], None, "the bound itself is accepted");
        for bad in [max_version, max_cl] {
            let err = replica.merge(&conn, &set(0, 1, 1, vec![bad])).expect_err("refused");
            assert!(matches!(err, CrdtError::BadChange { index: 0, .. }), "{err}");
        }

        // A row whose clock sits at the bound can still be written locally: the next write
        // is the bound + 1, computed without overflow, and it wins.
        replica.merge(&conn, &set(0, 1, 1, vec![at_bound])).expect("merge");
        conn.execute_batch("BEGIN; UPDATE rooms SET status = 'clean' WHERE id = '101';")
            .expect("update");
        replica.flush(&conn).expect("flush");
        conn.execute_batch("COMMIT").expect("commit");
        let mine = crate::changes_since(&conn, 1, None).expect("changes");
        let status = mine.iter().find(|c| c.cid == "status").expect("captured");
        assert_eq!(status.col_version, crate::MAX_CLOCK + 1);
    }

    #[test]
    fn changes_of_a_newer_schema_are_held_and_applied_after_the_migration() {
        let (conn, replica) = node();
        let batch = set(
            0,
            1,
            2,
            vec![
                change("rooms", "101", "status", "clean"),
                change("rooms", "101", "beds", "2"),
                change("minibars", "101", "brand", "Acme"),
            ],
        );
        let report = replica.merge(&conn, &batch).expect("merge");
        assert_eq!((report.applied, report.held), (1, 2));
        // The migration to schema 2.
        conn.execute_batch(
            "ALTER TABLE rooms ADD COLUMN beds TEXT;
             CREATE TABLE minibars (id TEXT PRIMARY KEY NOT NULL, brand TEXT);",
        )
        .expect("migrate");
        replica.make_replicated(&conn, "rooms").expect("new column");
        replica.make_replicated(&conn, "minibars").expect("new table");
        conn.execute_batch("BEGIN").expect("begin");
        assert_eq!(replica.set_schema_version(&conn, 2).expect("schema 2"), 2);
        replica.flush(&conn).expect("flush");
        conn.execute_batch("COMMIT").expect("commit");
        let row: (String, String, String) = conn
            .query_row("SELECT status, beds, brand FROM rooms JOIN minibars USING (id)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .expect("row");
        assert_eq!(row, ("clean".into(), "2".into(), "Acme".into()));
        let held: i64 =
            conn.query_row("SELECT count(*) FROM crdt_held", [], |r| r.get(0)).expect("held");
        assert_eq!(held, 0);
    }

    #[test]
    fn a_peers_cursor_follows_contiguous_batches_and_stops_at_a_gap() {
        let (conn, replica) = node();
        let peer = SITE_B.to_vec();
        replica.merge(&conn, &set(0, 5, 1, vec![change("rooms", "1", "status", "a")])).expect("m");
        assert_eq!(peer_cursor(&conn, &peer).expect("cursor").received, 5);
        // A batch that starts after the cursor leaves a gap: merged, but the cursor stays.
        replica.merge(&conn, &set(8, 9, 1, vec![change("rooms", "2", "status", "b")])).expect("m");
        assert_eq!(peer_cursor(&conn, &peer).expect("cursor").received, 5);
        // An overlapping batch moves it on; an older one never moves it back.
        replica.merge(&conn, &set(3, 9, 1, vec![])).expect("m");
        replica.merge(&conn, &set(0, 2, 1, vec![])).expect("m");
        assert_eq!(peer_cursor(&conn, &peer).expect("cursor").received, 9);
        set_acked(&conn, &peer, 4).expect("ack");
        set_acked(&conn, &peer, 3).expect("ack");
        assert_eq!(
            peer_cursor(&conn, &peer).expect("cursor"),
            PeerCursor { received: 9, acked: 4 }
        );
    }

    #[test]
    fn merged_changes_are_relayed_with_the_receivers_version_and_the_writers_site() {
        let (conn, replica) = node();
        conn.execute_batch("BEGIN; INSERT INTO rooms VALUES ('1', 'x');").expect("write");
        replica.flush(&conn).expect("flush");
        conn.execute_batch("COMMIT").expect("commit");
        replica.merge(&conn, &set(0, 40, 1, vec![change("rooms", "2", "status", "b")])).expect("m");
        let relayed = changeset_since(&conn, 1, None).expect("changes");
        assert_eq!(relayed.changes.len(), 1);
        assert_eq!(relayed.changes[0].db_version, 2);
        assert_eq!(relayed.changes[0].site_id, SITE_B);
        assert_eq!((relayed.since, relayed.until), (1, 2));
        // Asked by the writer itself, its own changes are left out.
        assert!(changeset_since(&conn, 1, Some(&SITE_B)).expect("changes").changes.is_empty());
    }

    #[test]
    fn bounded_batches_take_whole_versions_and_rows_after_counts_what_is_left() {
        let (conn, replica) = node();
        let base = crate::changes::rows_after(&conn, 0).expect("rows");
        let start: i64 = conn
            .query_row("SELECT coalesce(max(db_version), 0) FROM crdt_log", [], |r| r.get(0))
            .expect("version");
        // Three transactions of 3, 1 and 2 rows.
        for ids in [&["a", "b", "c"][..], &["d"], &["e", "f"]] {
            conn.execute_batch("BEGIN").expect("begin");
            for id in ids {
                conn.execute("INSERT INTO rooms VALUES (?1, 'x')", [id]).expect("insert");
            }
            replica.flush(&conn).expect("flush");
            conn.execute_batch("COMMIT").expect("commit");
        }
        assert_eq!(crate::changes::rows_after(&conn, start).expect("rows"), 6);
        assert_eq!(crate::changes::rows_after(&conn, 0).expect("rows"), base + 6);
        let own = crate::site_id(&conn).expect("site");
        let sites = crate::changes::Sites::Only(&own);
        // A bound of 2 rows still takes the first version whole (3 rows)...
        let first = changeset_batch(&conn, start, 2, sites).expect("batch");
        assert_eq!((first.until, first.changes.len()), (start + 1, 3));
        // ...and then stops before a version that would pass it.
        let second = changeset_batch(&conn, first.until, 2, sites).expect("batch");
        assert_eq!((second.until, second.changes.len()), (start + 2, 1));
        let rest = changeset_batch(&conn, second.until, 100, sites).expect("batch");
        assert_eq!((rest.until, rest.changes.len()), (start + 3, 2));
        assert_eq!(crate::changes::rows_after(&conn, rest.until).expect("rows"), 0);
        // Someone else's writes only: the range moves on with nothing in it.
        let other = [9u8; 16];
        let none =
            changeset_batch(&conn, start, 100, crate::changes::Sites::Only(&other)).expect("batch");
        assert_eq!((none.until, none.changes.len()), (start + 3, 0));
    }

    #[test]
    fn values_are_ordered_as_cr_sqlite_orders_them() {
        use SqlValue::{Blob, Integer, Null, Real, Text};
        let ascending = [
            Null,
            Blob(vec![]),
            Blob(vec![1]),
            Blob(vec![1, 0]),
            Text(String::new()),
            Text("ab".into()),
            Text("abc".into()),
            Text("b".into()),
            Real(-1.5),
            Real(3.0),
            Real(1e300),
            Integer(i64::MIN),
            Integer(1),
            Integer(3),
        ];
        for (i, a) in ascending.iter().enumerate() {
            for (j, b) in ascending.iter().enumerate() {
                assert_eq!(compare_values(a, b), i.cmp(&j), "{a:?} vs {b:?}");
            }
        }
    }
}
