//! When each store builds its snapshot. openraft's own policy (`LogsSinceLast`) has every
//! store copy its database at the same log index, so all seven copy at the same moment and
//! every write waits behind them. Here each store snapshots at its own phase of the
//! interval (spread evenly over the voters, by the store's place among them), and the
//! interval grows with the database, so the copying per applied entry stays bounded as
//! the state grows.
//!
//! - Interval: `SNAPSHOT_EVERY` entries while the database is under [`SIZE_STEP`], and one
//!   more `SNAPSHOT_EVERY` for every further [`SIZE_STEP`] (a 200 MiB database: 4 ×).
//! - Phase: the voter at place `p` of `n` (by Raft id) snapshots when its applied index
//!   crosses `m × interval − p × interval / n`, and never within half an interval of its
//!   last snapshot (one installed from the leader may sit just before its own boundary).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::node::StoreNode;
use crate::types::RaftId;

/// Database size per extra interval.
pub const SIZE_STEP: u64 = 64 * 1024 * 1024;

/// How often the schedule looks at the applied index, at most.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// Longest wait for a triggered snapshot to be reported before looking again.
const BUILD_WAIT: Duration = Duration::from_secs(60);

/// Entries between two snapshots of one store, for a database of `db_bytes`.
pub fn interval(every: u64, db_bytes: u64) -> u64 {
    every.max(1).saturating_mul(1 + db_bytes / SIZE_STEP)
}

/// This store's phase: where in the interval it snapshots, `place` of `voters`.
pub fn phase(interval: u64, place: usize, voters: usize) -> u64 {
    if voters == 0 {
        return 0;
    }
    let place = (place % voters) as u128;
    (interval as u128 * place / voters as u128) as u64
}

/// Whether a store that last snapshotted at `last` and has applied `applied` builds one now.
pub fn due(applied: u64, last: u64, interval: u64, phase: u64) -> bool {
    let interval = interval.max(1);
    if applied <= last || (last > 0 && applied - last < interval.div_ceil(2)) {
        return false;
    }
    // The store's boundaries are at `m × interval − phase`: one was crossed since `last`.
    (applied + phase) / interval > (last + phase) / interval
}

/// This store's place among the voters (by Raft id), and how many there are; a store that
/// is not a voter takes place 0 of 1.
pub fn place(me: RaftId, voters: impl IntoIterator<Item = RaftId>) -> (usize, usize) {
    let mut ids: Vec<RaftId> = voters.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    match ids.iter().position(|id| *id == me) {
        Some(p) => (p, ids.len()),
        None => (0, 1),
    }
}

/// Build snapshots on this store's schedule until `shutdown`.
pub async fn run(node: StoreNode, shutdown: CancellationToken) {
    let every = node.timings.snapshot_every;
    let db = node.state.dir().join("state.db");
    let mut applied_rx = node.state.applied_index();
    let mut metrics = node.raft.metrics();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            changed = applied_rx.changed() => if changed.is_err() { return },
        }
        let applied = *applied_rx.borrow_and_update();
        let (last, voters) = {
            let m = metrics.borrow();
            let voters: Vec<RaftId> = m.membership_config.membership().voter_ids().collect();
            (m.snapshot.map_or(0, |l| l.index), voters)
        };
        let bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
        let interval = interval(every, bytes);
        let (place, count) = place(node.raft_id, voters);
        if due(applied, last, interval, phase(interval, place, count)) {
            tracing::debug!(applied, last, interval, place, count, "snapshot due");
            if node.raft.trigger().snapshot().await.is_err() {
                return;
            }
            // Wait for it to be reported (or give up waiting), so it is asked for once.
            let reported = async {
                while metrics.borrow().snapshot.map_or(0, |l| l.index) <= last {
                    if metrics.changed().await.is_err() {
                        return;
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::timeout(BUILD_WAIT, reported) => {}
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The applied indexes in `1..=upto` at which a store snapshots (each time it is due).
    fn schedule(interval: u64, place: usize, voters: usize, upto: u64) -> Vec<u64> {
        let mut last = 0;
        let mut at = Vec::new();
        for applied in 1..=upto {
            if due(applied, last, interval, phase(interval, place, voters)) {
                at.push(applied);
                last = applied;
            }
        }
        at
    }

    #[test]
    fn seven_stores_never_snapshot_together_and_each_keeps_its_interval() {
        let interval = 10_000;
        let all: Vec<Vec<u64>> = (0..7).map(|p| schedule(interval, p, 7, 100_000)).collect();
        for (p, at) in all.iter().enumerate() {
            assert!(at.len() >= 9, "store {p} snapshotted only at {at:?}");
            // Exactly one interval apart.
            for pair in at.windows(2) {
                assert_eq!(pair[1] - pair[0], interval, "store {p}: {at:?}");
            }
        }
        // Any two stores are at least interval / 7 − 1 entries apart, from the first.
        let mut every: Vec<u64> = all.iter().flatten().copied().collect();
        every.sort_unstable();
        for pair in every.windows(2) {
            assert!(pair[1] - pair[0] >= interval / 7 - 1, "two stores too close: {pair:?}");
        }
    }

    #[test]
    fn the_interval_grows_with_the_database() {
        assert_eq!(interval(10_000, 0), 10_000);
        assert_eq!(interval(10_000, SIZE_STEP - 1), 10_000);
        assert_eq!(interval(10_000, SIZE_STEP), 20_000);
        assert_eq!(interval(10_000, 200 * 1024 * 1024), 40_000);
        assert_eq!(interval(0, 0), 1, "a zero setting is treated as 1");
    }

    #[test]
    fn never_twice_within_half_an_interval() {
        // A snapshot installed from the leader just before this store's boundary.
        assert!(!due(10_100, 9_990, 10_000, 0));
        assert!(due(15_000, 9_990, 10_000, 5_000));
        assert!(!due(100, 100, 10_000, 0));
        assert!(!due(50, 100, 10_000, 0), "behind the snapshot: not due");
    }

    #[test]
    fn place_is_by_raft_id_among_voters() {
        assert_eq!(place(30, [50, 10, 30, 20]), (2, 4));
        assert_eq!(place(99, [50, 10]), (0, 1), "not a voter");
        assert_eq!(phase(7_000, 3, 7), 3_000);
        assert_eq!(phase(7_000, 0, 0), 0);
    }
}
