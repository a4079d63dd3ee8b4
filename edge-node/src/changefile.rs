//! `stayos-edge changes export|import`: a property's changes carried as a file — on a USB
//! stick to the hub when the internet is down for days, or between nodes — in DESIGN.md's
//! JSON Lines format (`crdt::wire`).
//!
//! Export reads one consistent snapshot and writes the file atomically (a temporary file
//! renamed into place), so a cut-off export never leaves a half file under the final name.
//! Import checks every line before anything is applied — bad JSON, a malformed key, an
//! unknown table or column — and names the first bad line; then it merges them all in one
//! transaction through the same rules as network sync. Changes for a newer schema than this
//! node's are kept and applied after it upgrades.

use std::io::{BufRead as _, BufReader, BufWriter};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::db::{self, DB_FILE, DbError};

#[derive(Debug, thiserror::Error)]
pub enum ChangeFileError {
    #[error("{} holds no StayOS database; run `stayos-edge init` first", .0.display())]
    NotInitialised(PathBuf),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}, line {line}: {reason}", path.display())]
    BadLine { path: PathBuf, line: usize, reason: String },
    #[error("{} holds no changes", .0.display())]
    Empty(PathBuf),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub changes: usize,
    /// The database versions covered: `since < v <= until`.
    pub since: i64,
    pub until: i64,
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    pub lines: usize,
    pub report: crdt::MergeReport,
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
    conn.execute_batch("BEGIN").map_err(DbError::from)?;
    let schema = crdt::schema_version(&conn).map_err(crdt_err)?;
    let until: i64 = conn
        .query_row("SELECT coalesce(max(db_version), 0) FROM crdt_log", [], |r| r.get(0))
        .map_err(DbError::from)?;

    let write_all = |out: &mut dyn std::io::Write, target: &Path| {
        let mut count = 0;
        let mut failed_write = None;
        let read = crdt::for_each_change_since(&conn, since, None, |c| {
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
        Ok::<_, ChangeFileError>(count)
    };
    let changes = match output {
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
    Ok(ExportReport { changes, since, until: until.max(since) })
}

/// Checks every line of `file`, then merges them all in one transaction.
pub fn import(data_dir: &Path, file: &Path) -> Result<ImportReport, ChangeFileError> {
    let bad = |line: usize, reason: String| ChangeFileError::BadLine {
        path: file.to_path_buf(),
        line,
        reason,
    };
    let reader = BufReader::new(std::fs::File::open(file).map_err(io(file))?);
    let mut changes = Vec::new();
    let mut schemas = Vec::new();
    let mut line_numbers = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| bad(i + 1, format!("not UTF-8 text: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let (change, schema) =
            crdt::wire::parse_line(&line).map_err(|e| bad(i + 1, e.to_string()))?;
        changes.push(change);
        schemas.push(schema);
        line_numbers.push(i + 1);
    }
    if changes.is_empty() {
        return Err(ChangeFileError::Empty(file.to_path_buf()));
    }

    let path = database(data_dir)?;
    let mut conn = db::open_writer(&path)?;
    let replica = db::prepare(&mut conn)?;
    let tx =
        conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(DbError::from)?;
    let merged =
        replica.refresh(&tx).and_then(|()| replica.merge_changes(&tx, &changes, |i| schemas[i]));
    let report = match merged {
        Ok(report) => report,
        Err(crdt::CrdtError::BadChange { index, reason }) => {
            return Err(bad(line_numbers[index], reason));
        }
        Err(other) => return Err(DbError::from(other).into()),
    };
    replica.flush(&tx).map_err(DbError::from)?;
    tx.commit().map_err(DbError::from)?;
    conn.close().map_err(|(_, e)| DbError::from(e))?;
    Ok(ImportReport { lines: changes.len(), report })
}
