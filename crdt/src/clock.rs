//! The clock of one row: its causal length, the row sentinel's stamp and one register per
//! column. Stored as one compact blob per row in `<table>__crdt_clock`, keyed by the row's
//! primary key — one extra b-tree entry per row instead of one per (row, column), which is
//! what keeps local writes cheap (BENCHMARKS.md, "crdt").
//!
//! Logically this is exactly cr-sqlite's per-(row, column) clock table: every present cell
//! is one `crsql_changes` row with `cid` = the column, and an explicit sentinel is the row
//! with `cid = '-1'` and `col_version = cl`.

use serde::{Deserialize, Serialize};

/// Where and when a register was last written: the local database version and the order
/// within that transaction, and the writing site as an ordinal into `crdt_sites` (0 = this
/// database).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub db_version: i64,
    pub seq: i64,
    pub site: u32,
}

/// One column's register: its version, and the stamp of the write that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub version: i64,
    pub stamp: Stamp,
}

/// A row's clock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowClock {
    /// Causal length: odd while the row exists, even once deleted; 0 = never seen.
    pub cl: i64,
    /// The sentinel, once it exists. cr-sqlite writes none for a row's first insert (the
    /// causal length is then 1), so neither do we.
    pub sentinel: Option<Stamp>,
    /// One register per non-key column, in column order; `None` = never written in this
    /// causal length. Columns added later extend the vector.
    pub cells: Vec<Option<Cell>>,
}

/// The blob format's version, the first byte of every clock blob.
const FORMAT: u8 = 1;

impl RowClock {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, vec![FORMAT]).expect("serialising into a Vec cannot fail")
    }

    pub fn decode(blob: &[u8]) -> Result<Self, ClockError> {
        match blob.split_first() {
            Some((&FORMAT, rest)) => postcard::from_bytes(rest).map_err(|_| ClockError),
            _ => Err(ClockError),
        }
    }

    /// The register of column `i`, if written.
    pub fn cell(&self, i: usize) -> Option<Cell> {
        self.cells.get(i).copied().flatten()
    }

    pub fn set_cell(&mut self, i: usize, cell: Option<Cell>) {
        if self.cells.len() <= i {
            self.cells.resize(i + 1, None);
        }
        self.cells[i] = cell;
    }

    /// Whether the row exists: an odd causal length.
    pub fn alive(&self) -> bool {
        self.cl % 2 == 1
    }

    /// The stamps of this clock with `db_version > since`: `(column, stamp)` with `None` for
    /// the sentinel.
    pub fn stamps_since(&self, since: i64) -> impl Iterator<Item = (Option<usize>, Stamp)> + '_ {
        let sentinel = self.sentinel.filter(|s| s.db_version > since).map(|s| (None, s));
        sentinel.into_iter().chain(self.cells.iter().enumerate().filter_map(move |(i, c)| {
            c.filter(|c| c.stamp.db_version > since).map(|c| (Some(i), c.stamp))
        }))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a row clock is corrupt")]
pub struct ClockError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_round_trip_and_garbage_is_refused() {
        let stamp = Stamp { db_version: 1_000_000, seq: 3, site: 2 };
        let clock = RowClock {
            cl: 3,
            sentinel: Some(stamp),
            cells: vec![Some(Cell { version: 7, stamp }), None],
        };
        assert_eq!(RowClock::decode(&clock.encode()).expect("decode"), clock);
        assert!(RowClock::decode(&[]).is_err());
        assert!(RowClock::decode(&[9, 1, 2]).is_err());
        assert!(RowClock::decode(&[FORMAT, 0xFF]).is_err());
    }
}
