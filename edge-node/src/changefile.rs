//! `stayos-edge changes export|import`: a property's changes carried as a file — on a USB
//! stick to the hub when the internet is down for days, or between nodes — in DESIGN.md's
//! JSON Lines format (`crdt::wire`).
//!
//! Export reads one consistent snapshot and writes the file atomically (a temporary file
//! renamed into place), so a cut-off export never leaves a half file under the final name.
//! It leaves out the node-scope tables of `replication.toml` (staff accounts: password
//! hashes and MFA secrets stay on their node).
//!
//! Import reads every line and screens every change with `sync::guard`, as a pull from the
//! hub is: a line that is not a change (bad JSON, a malformed key or literal) or a change the
//! guard refuses (unknown table or column, a clock past the bound, a staff row, a row of
//! another property, this node's own site id) is reported with its line number and kept in
//! the quarantine; the rest are merged in one transaction through the same rules as network
//! sync. Changes for a newer schema than this node's are kept and applied after it upgrades.

use std::io::{BufRead as _, BufReader, BufWriter};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crdt::protocol::Scope;

use crate::db::{self, DB_FILE, DbError};
use crate::sync::guard::{self, ReasonKind, Refusal, Source};

#[derive(Debug, thiserror::Error)]
pub enum ChangeFileError {
    #[error("{} holds no StayOS database; run `stayos-edge init` first", .0.display())]
    NotInitialised(PathBuf),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} holds no line that is a change", path.display())]
    Empty { path: PathBuf, refused: Vec<RefusedLine> },
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub changes: usize,
    /// Changes of node-scope tables (staff accounts), left out.
    pub left_out: usize,
    /// The database versions covered: `since < v <= until`.
    pub since: i64,
    pub until: i64,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Lines that were changes.
    pub lines: usize,
    /// What merging the accepted ones did.
    pub report: crdt::MergeReport,
    /// The lines refused (not a change, or refused by the guard), in line order; each is
    /// in the quarantine.
    pub refused: Vec<RefusedLine>,
}

/// A line of a changes file that was not merged, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedLine {
    /// 1-based.
    pub line: usize,
    pub kind: ReasonKind,
    pub reason: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ChangeFileError + '_ {
    move |source| ChangeFileError::Io { path: path.to_path_buf(), source }
}

fn database(data_dir: &Path) -> Result<PathBuf, ChangeFileError> {
    let path = data_dir.join(DB_FILE);
    if !path.exists() {
        return Err(ChangeFileError::NotInitialised(data_dir.to_path_buf()));
    }
    Ok(path)
}

/// Writes every change after database version `since` to `output` (standard output when
/// `None`). Works while the node is serving: it only reads.
pub fn export(
    data_dir: &Path,
    since: i64,
    output: Option<&Path>,
) -> Result<ExportReport, ChangeFileError> {
    let path = database(data_dir)?;
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(DbError::from)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(DbError::from)?;
    let crdt_err = |e: crdt::CrdtError| ChangeFileError::Db(DbError::from(e));
    let scopes = crate::sync::agent::scopes();
    conn.execute_batch("BEGIN").map_err(DbError::from)?;
    let schema = crdt::schema_version(&conn).map_err(crdt_err)?;
    let until: i64 = conn
        .query_row("SELECT coalesce(max(db_version), 0) FROM crdt_log", [], |r| r.get(0))
        .map_err(DbError::from)?;

    let write_all = |out: &mut dyn std::io::Write, target: &Path| {
        let (mut count, mut left_out) = (0, 0);
        let mut failed_write = None;
        let read = crdt::for_each_change_since(&conn, since, None, |c| {
            if scopes.get(&c.table) == Some(Scope::Node) {
                left_out += 1;
                return Ok(());
            }
            let line = crdt::wire::change_line_with_schema(&c, Some(schema));
            writeln!(out, "{line}").map_err(|e| {
                failed_write = Some(e);
                crdt::CrdtError::Invalid("writing the export failed".into())
            })?;
            count += 1;
            Ok(())
        });
        if let Some(e) = failed_write {
            return Err(io(target)(e));
        }
        read.map_err(crdt_err)?;
        out.flush().map_err(io(target))?;
        Ok::<_, ChangeFileError>((count, left_out))
    };
    let (changes, left_out) = match output {
        None => write_all(&mut BufWriter::new(std::io::stdout().lock()), Path::new("stdout"))?,
        Some(target) => {
            let dir =
                target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(target))?;
            let count = write_all(&mut BufWriter::new(tmp.as_file_mut()), target)?;
            tmp.as_file().sync_all().map_err(io(target))?;
            tmp.persist(target).map_err(|e| io(target)(e.error))?;
            count
        }
    };
    conn.execute_batch("COMMIT").map_err(DbError::from)?;
    Ok(ExportReport { changes, left_out, since, until: until.max(since) })
}

/// Reads every line of `file` and merges the changes that pass `sync::guard`, in one
/// transaction. A line that is not a change, or a change the guard refuses, does not stop
/// the others: it is reported with its line number and kept in the quarantine.
pub fn import(data_dir: &Path, file: &Path) -> Result<ImportReport, ChangeFileError> {
    let mut reader = BufReader::new(std::fs::File::open(file).map_err(io(file))?);
    let mut changes = Vec::new();
    let mut schemas = Vec::new();
    let mut line_numbers = Vec::new();
    let mut malformed: Vec<(usize, String, Refusal)> = Vec::new();
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf).map_err(io(file))? == 0 {
            break;
        }
        number += 1;
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        let parsed = match std::str::from_utf8(&buf) {
            Err(e) => Err(format!("not UTF-8 text: {e}")),
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => crdt::wire::parse_line(line).map_err(|e| e.to_string()),
        };
        match parsed {
            Ok((change, schema)) => {
                changes.push(change);
                schemas.push(schema);
                line_numbers.push(number);
            }
            Err(reason) => malformed.push((
                number,
                String::from_utf8_lossy(&buf).into_owned(),
                Refusal { kind: ReasonKind::Malformed, reason },
            )),
        }
    }
    let mut refused: Vec<RefusedLine> = malformed
        .iter()
        .map(|(line, _, r)| RefusedLine { line: *line, kind: r.kind, reason: r.reason.clone() })
        .collect();
    if changes.is_empty() {
        return Err(ChangeFileError::Empty { path: file.to_path_buf(), refused });
    }

    let path = database(data_dir)?;
    let mut conn = db::open_writer(&path)?;
    let replica = db::prepare(&mut conn)?;
    let scopes = crate::sync::agent::scopes();
    let tx =
        conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(DbError::from)?;
    replica.refresh(&tx).map_err(DbError::from)?;
    let me = guard::Identity::load(&tx)?;
    let verdicts = guard::screen(&tx, &replica, &scopes, &me, &changes, |i| schemas[i])?;
    // Every refused line in the quarantine in line order, so the newest entry is the last line.
    let mut held: Vec<(usize, guard::Quarantined<'_>)> = malformed
        .iter()
        .map(|(line, raw, refusal)| {
            let q = guard::Quarantined {
                table: "",
                pk: String::new(),
                cid: "",
                change: raw.clone(),
                refusal,
            };
            (*line, q)
        })
        .collect();
    for (i, verdict) in verdicts.iter().enumerate() {
        if let Some(refusal) = verdict {
            let c = &changes[i];
            held.push((
                line_numbers[i],
                guard::Quarantined {
                    table: &c.table,
                    pk: guard::readable_pk(&c.pk),
                    cid: &c.cid,
                    change: crdt::wire::change_line_with_schema(c, schemas[i]),
                    refusal,
                },
            ));
            refused.push(RefusedLine {
                line: line_numbers[i],
                kind: refusal.kind,
                reason: refusal.reason.clone(),
            });
        }
    }
    held.sort_by_key(|(line, _)| *line);
    guard::quarantine(&tx, Source::File, held.into_iter().map(|(_, q)| q))?;
    refused.sort_by_key(|r| r.line);
    let lines = changes.len();
    let (mut kept, mut kept_schemas) = (Vec::new(), Vec::new());
    for ((c, schema), verdict) in changes.into_iter().zip(schemas).zip(verdicts) {
        if verdict.is_none() {
            kept.push(c);
            kept_schemas.push(schema);
        }
    }
    let report = replica.merge_changes(&tx, &kept, |i| kept_schemas[i]).map_err(DbError::from)?;
    replica.flush(&tx).map_err(DbError::from)?;
    tx.commit().map_err(DbError::from)?;
    conn.close().map_err(|(_, e)| DbError::from(e))?;
    Ok(ImportReport { lines, report, refused })
}
