//! The replay cache: the `(node, nonce)` pairs of requests whose timestamps are still
//! fresh, bounded in size, and never failing closed.
//!
//! An entry is only needed while its request's signed timestamp is within the skew window:
//! after that the request is refused as stale anyway. Entries are ordered by that timestamp
//! and dropped once it leaves the window. If authenticated traffic ever fills the cache
//! before entries expire, the entry with the oldest timestamp is evicted and the cache
//! remembers the highest timestamp it evicted (the floor): a request at or below the floor
//! could be a replay of an evicted one and is refused, every newer request is still judged
//! exactly. Valid requests are signed just before they are sent, so they stay above the floor
//! unless the cache holds less than their transit time of traffic; the cache never refuses
//! everything the way a full set with no eviction did.

use std::collections::{BTreeSet, HashSet};

use sha2::{Digest, Sha256};

type Key = [u8; 16];

/// Remembers the nonces of recent requests; see the module documentation.
///
/// Keys are the first 128 bits of SHA-256(node `\n` nonce): fixed size whatever the header
/// lengths, and a collision merely rejects one honest request.
#[derive(Debug)]
pub(super) struct ReplayCache {
    keys: HashSet<Key>,
    by_time: BTreeSet<(i64, Key)>,
    capacity: usize,
    /// Highest timestamp evicted before it expired; requests at or below it are refused.
    floor_ms: Option<i64>,
}

impl ReplayCache {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            keys: HashSet::new(),
            by_time: BTreeSet::new(),
            capacity: capacity.max(1),
            floor_ms: None,
        }
    }

    fn key(node: &str, nonce: &str) -> Key {
        let digest = Sha256::new()
            .chain_update(node.as_bytes())
            .chain_update(b"\n")
            .chain_update(nonce.as_bytes())
            .finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        key
    }

    /// Records the pair of a request signed at `timestamp_ms` (already checked to be within
    /// `window_ms` of `now_ms`) and returns `true` if it is new; `false` on a replay, or when
    /// the request is older than what the cache still remembers.
    pub(super) fn check_and_insert(
        &mut self,
        node: &str,
        nonce: &str,
        timestamp_ms: i64,
        now_ms: i64,
        window_ms: i64,
    ) -> bool {
        // Forget what can no longer be replayed: timestamps out of the window.
        let oldest_fresh = now_ms.saturating_sub(window_ms);
        while let Some(&(ts, key)) = self.by_time.first() {
            if ts >= oldest_fresh {
                break;
            }
            self.by_time.pop_first();
            self.keys.remove(&key);
        }
        if self.floor_ms.is_some_and(|floor| floor < oldest_fresh) {
            self.floor_ms = None;
        }

        if self.floor_ms.is_some_and(|floor| timestamp_ms <= floor) {
            return false;
        }
        let key = Self::key(node, nonce);
        if !self.keys.insert(key) {
            return false;
        }
        self.by_time.insert((timestamp_ms, key));
        while self.keys.len() > self.capacity {
            let Some((ts, evicted)) = self.by_time.pop_first() else {
                break;
            };
            self.keys.remove(&evicted);
            self.floor_ms = Some(self.floor_ms.map_or(ts, |f| f.max(ts)));
        }
        // The request just inserted may itself have been the oldest.
        if self.floor_ms.is_some_and(|floor| timestamp_ms <= floor) {
            return false;
        }
        true
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 30_000;

    #[test]
    fn replays_are_refused_while_fresh_and_forgotten_after() {
        let mut c = ReplayCache::new(10);
        assert!(c.check_and_insert("a", "1", 1_000, 1_000, W));
        assert!(!c.check_and_insert("a", "1", 1_000, 2_000, W), "replay");
        assert!(c.check_and_insert("b", "1", 1_000, 2_000, W), "another node's nonce");
        // Out of the window, the entries go (the request itself would be stale).
        assert!(c.check_and_insert("a", "2", 40_000, 40_000, W));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_full_cache_evicts_the_oldest_and_still_accepts_new_requests() {
        let mut c = ReplayCache::new(3);
        let now = 100_000;
        for (i, ts) in [(1, now - 3), (2, now - 2), (3, now - 1)] {
            assert!(c.check_and_insert("flood", &i.to_string(), ts, now, W));
        }
        // Full: a new, valid request is still accepted; the oldest entry is evicted.
        assert!(c.check_and_insert("honest", "x", now, now, W));
        assert_eq!(c.len(), 3);
        // The evicted request (ts now-3) cannot be replayed: it is at the floor.
        assert!(!c.check_and_insert("flood", "1", now - 3, now, W));
        // Neither can anything older than the floor, but newer requests pass.
        assert!(!c.check_and_insert("late", "y", now - 5, now, W));
        assert!(c.check_and_insert("on-time", "z", now + 1, now + 1, W));
        // Live entries are still refused exactly.
        assert!(!c.check_and_insert("honest", "x", now, now + 1, W));
    }

    #[test]
    fn a_flood_of_a_million_never_shuts_out_valid_traffic() {
        let mut c = ReplayCache::new(1_000);
        let mut now = 1_000_000;
        for i in 0..20_000 {
            if i % 100 == 0 {
                now += 1;
            }
            assert!(c.check_and_insert("flood", &i.to_string(), now, now, W));
            if i % 1_000 == 0 {
                assert!(
                    c.check_and_insert("honest", &format!("h{i}"), now, now, W),
                    "valid request {i} refused"
                );
            }
        }
        assert!(c.len() <= 1_000);
    }
}
