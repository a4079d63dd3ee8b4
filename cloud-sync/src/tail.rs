//! The tail cache: the changes of the most recent hub versions, in memory, so that the pulls
//! of caught-up nodes — a thousand of them wake after every merge — are answered without a
//! PostgreSQL query.
//!
//! The cache holds, for every version in `(floor, top]`, exactly the cells that version's
//! merge changed, as `RETURNING` reported them (versions drawn by merges that rolled back, or
//! that changed nothing, are known to be empty). A pull is answered from it only when every
//! version it needs is inside that range; anything else — a node far behind, a version the
//! cache never saw because another process merged it — goes to the database.
//!
//! A cell changed by version `v` and superseded by a later version is still in the cache
//! under `v` while the database holds only the later value: a pull from the cache may send
//! both. That is what a pull made between the two versions would have sent, and merging is a
//! join, so a node ends the same either way. The cache never holds anything no pull could
//! have sent: only committed cells, with the scope, clock and value they were written with.

use std::collections::VecDeque;

use crdt::protocol::WireChange;

/// Changes kept by default: the pulls of a fleet that is minutes behind are answered from
/// memory, at tens of MiB at most.
pub const DEFAULT_CAPACITY: usize = 200_000;

/// A cell a merge changed, as a pull sends it, with the scope pulls filter on.
#[derive(Debug, Clone)]
pub struct TailChange {
    /// The owning property, or '' for chain-level rows.
    pub scope: String,
    pub change: WireChange,
}

/// One version's changes, in `seq` order.
#[derive(Debug)]
struct Version {
    version: i64,
    changes: Vec<TailChange>,
}

/// What a pull needs from the cache: the changes to send, the version the batch reaches, and
/// how many changes are left after it (0 when none).
#[derive(Debug)]
pub struct TailPull {
    pub changes: Vec<WireChange>,
    pub until: i64,
    pub remaining: u64,
}

/// The recent versions, oldest first. Not synchronized: the store wraps it in a mutex.
#[derive(Debug)]
pub struct Tail {
    capacity: usize,
    /// Every version in `(floor, top]` is known; versions with no entry in `versions` are
    /// empty.
    floor: i64,
    top: i64,
    /// Non-empty versions only, ascending.
    versions: VecDeque<Version>,
    /// Total changes in `versions`.
    len: usize,
}

impl Tail {
    /// An empty cache that knows nothing up to `head` (it starts where the database is).
    pub fn new(head: i64, capacity: usize) -> Self {
        Self { capacity, floor: head, top: head, versions: VecDeque::new(), len: 0 }
    }

    /// The versions the cache can answer for: `(floor, top]`.
    pub fn range(&self) -> (i64, i64) {
        (self.floor, self.top)
    }

    /// Records a committed version (empty when it changed nothing or rolled back). The
    /// caller appends in version order; a version that does not follow `top` means versions
    /// in between were committed elsewhere (another hub process, an import) or are unknown,
    /// so the cache forgets everything and starts again after the gap.
    pub fn append(&mut self, version: i64, changes: Vec<TailChange>) {
        if version <= self.top {
            // Already known, or from before the cache started: never rewrite the past.
            return;
        }
        if version != self.top + 1 {
            self.reset(version - 1);
        }
        self.top = version;
        if changes.is_empty() {
            return;
        }
        if changes.len() > self.capacity {
            // A version larger than the whole cache (a big import): pulls of it go to the
            // database, and the cache starts after it.
            self.reset(version);
            return;
        }
        self.len += changes.len();
        self.versions.push_back(Version { version, changes });
        while self.len > self.capacity {
            let Some(oldest) = self.versions.pop_front() else { break };
            self.len -= oldest.changes.len();
            self.floor = oldest.version;
        }
    }

    /// Forgets everything: the cache knows versions after `floor` from now on.
    fn reset(&mut self, floor: i64) {
        self.versions.clear();
        self.len = 0;
        self.floor = floor;
        self.top = floor;
    }

    /// Whether versions `(since, head]` hold anything for a node of `property` whose own site
    /// is `exclude`; `None` when the cache does not hold every version of the range.
    pub fn has_news(&self, property: &str, exclude: &[u8], since: i64, head: i64) -> Option<bool> {
        if since < self.floor || head > self.top {
            return None;
        }
        let start = self.versions.partition_point(|v| v.version <= since);
        let news = self.versions.range(start..).take_while(|v| v.version <= head).any(|v| {
            v.changes
                .iter()
                .any(|t| (t.scope.is_empty() || t.scope == property) && t.change.site_id != exclude)
        });
        Some(news)
    }

    /// A pull of versions `(since, head]` for a node of `property` whose own site is
    /// `exclude`, with the same cut as the database pull (`Store::pull`): whole versions,
    /// about `limit` changes, one version larger than `limit` sent whole, and when nothing
    /// is left the batch reaches `head`. `None` when the cache does not hold every version
    /// of the range.
    pub fn pull(
        &self,
        property: &str,
        exclude: &[u8],
        since: i64,
        head: i64,
        limit: usize,
    ) -> Option<TailPull> {
        if since < self.floor || head > self.top {
            return None;
        }
        let wanted = |t: &&TailChange| {
            (t.scope.is_empty() || t.scope == property) && t.change.site_id != exclude
        };
        let start = self.versions.partition_point(|v| v.version <= since);
        let in_range = || self.versions.range(start..).take_while(|v| v.version <= head);

        let mut changes: Vec<WireChange> = Vec::new();
        let mut cut = false;
        for v in in_range() {
            let count = v.changes.iter().filter(wanted).count();
            if count == 0 {
                continue;
            }
            if changes.len() + count > limit {
                if changes.is_empty() {
                    // One version larger than the limit: sent whole.
                    changes.extend(v.changes.iter().filter(wanted).map(|t| t.change.clone()));
                }
                cut = true;
                break;
            }
            changes.extend(v.changes.iter().filter(wanted).map(|t| t.change.clone()));
        }
        if !cut {
            return Some(TailPull { changes, until: since.max(head), remaining: 0 });
        }
        let mut until = changes.last().map_or(since, |c| c.db_version);
        let remaining = in_range()
            .filter(|v| v.version > until)
            .map(|v| v.changes.iter().filter(wanted).count() as u64)
            .sum::<u64>();
        if remaining == 0 {
            // Nothing for this node after the batch: its cursor may move to the head.
            until = until.max(head);
        }
        Some(TailPull { changes, until, remaining })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crdt::protocol::WireValue;

    fn change(scope: &str, site: u8, version: i64, seq: i64) -> TailChange {
        TailChange {
            scope: scope.into(),
            change: WireChange {
                table: "rooms".into(),
                pk: vec![seq as u8],
                cid: "status".into(),
                val: WireValue::Null,
                col_version: 1,
                db_version: version,
                site_id: vec![site; 16],
                cl: 1,
                seq,
            },
        }
    }

    fn versions(tail: &mut Tail, sizes: &[(i64, usize)]) {
        for &(v, n) in sizes {
            tail.append(v, (0..n as i64).map(|s| change("P1", 1, v, s)).collect());
        }
    }

    fn shape(p: &TailPull) -> (Vec<i64>, i64, u64) {
        (p.changes.iter().map(|c| c.db_version).collect(), p.until, p.remaining)
    }

    #[test]
    fn pulls_cut_at_whole_versions_and_reach_the_head_when_nothing_is_left() {
        let mut tail = Tail::new(0, 100);
        versions(&mut tail, &[(1, 3), (2, 0), (3, 4), (4, 2)]);
        let pull = |since, head, limit| tail.pull("P1", &[], since, head, limit).expect("cached");
        assert_eq!(shape(&pull(0, 4, 2)), (vec![1, 1, 1], 1, 6), "a big version is sent whole");
        assert_eq!(shape(&pull(1, 4, 5)), (vec![3, 3, 3, 3], 3, 2));
        assert_eq!(shape(&pull(0, 4, 100)).1, 4);
        assert_eq!(shape(&pull(0, 3, 100)), (vec![1, 1, 1, 3, 3, 3, 3], 3, 0), "up to the head");
        assert_eq!(shape(&pull(3, 4, 1)), (vec![4, 4], 4, 0), "whole and nothing left: the head");
        assert_eq!(shape(&pull(4, 4, 5)), (vec![], 4, 0));
        assert!(tail.pull("P2", &[], 0, 4, 5).expect("cached").changes.is_empty());
        assert!(tail.pull("P1", &[1; 16], 0, 4, 5).expect("cached").changes.is_empty());
        assert_eq!(tail.has_news("P1", &[], 1, 2), Some(false), "version 2 is empty");
        assert_eq!(tail.has_news("P1", &[], 1, 3), Some(true));
        assert_eq!(tail.has_news("P2", &[], 0, 4), Some(false), "another property's rows");
        assert_eq!(tail.has_news("P1", &[1; 16], 0, 4), Some(false), "its own writes");
        assert_eq!(tail.has_news("P1", &[], 0, 5), None, "a head the cache never saw");
    }

    #[test]
    fn a_gap_or_an_old_cursor_is_not_answered_from_the_cache() {
        let mut tail = Tail::new(10, 5);
        versions(&mut tail, &[(11, 2), (12, 2)]);
        assert!(tail.pull("P1", &[], 9, 12, 100).is_none(), "before the cache started");
        assert!(tail.pull("P1", &[], 10, 13, 100).is_none(), "a head the cache never saw");
        versions(&mut tail, &[(13, 2)]);
        assert_eq!(tail.range(), (11, 13), "the oldest version made room");
        assert!(tail.pull("P1", &[], 10, 13, 100).is_none());
        assert_eq!(tail.pull("P1", &[], 11, 13, 100).expect("cached").changes.len(), 4);
        versions(&mut tail, &[(15, 1)]);
        assert_eq!(tail.range(), (14, 15), "version 14 was never seen: start after it");
        versions(&mut tail, &[(16, 9)]);
        assert_eq!(tail.range(), (16, 16), "a version larger than the cache is not kept");
    }
}
