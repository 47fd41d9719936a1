//! How far behind the leader this replica may be, for `local` reads.
//!
//! A `local` read answers from this replica's state without asking the leader. To bound its
//! staleness, a follower remembers when the leader last told it the commit index
//! (`AppendEntries`, heartbeats included) and what that index was: once the replica has
//! applied that index, it was up to date *as of that moment*. The staleness of a local read
//! is the time since the latest such moment. A leader is as fresh as its last quorum
//! acknowledgement (openraft's `millis_since_quorum_ack`): a partitioned leader stops being
//! fresh too.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Leader contacts remembered while they wait to be applied (later contacts replace
/// earlier ones once applied, so the queue stays short unless apply falls far behind).
const MAX_CONTACTS: usize = 1024;

/// The contacts from the leader not yet known to be applied, and the latest applied one.
#[derive(Debug, Default)]
pub struct Freshness {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// `(received at, leader's commit index)`, in arrival order (commit indexes never
    /// decrease: a committed index stays committed under every later leader).
    waiting: VecDeque<(Instant, u64)>,
    /// The latest moment this replica was known to hold everything committed.
    fresh_at: Option<Instant>,
}

impl Freshness {
    /// The leader told us, at `at`, that everything up to `commit` is committed.
    pub fn leader_contact(&self, at: Instant, commit: u64) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.waiting.len() >= MAX_CONTACTS {
            s.waiting.pop_front();
        }
        s.waiting.push_back((at, commit));
    }

    /// How long ago this follower was last known to be up to date, given that it has
    /// applied `applied`; `None` when it never was.
    pub fn staleness(&self, applied: u64, now: Instant) -> Option<Duration> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(&(at, commit)) = s.waiting.front() {
            if commit > applied {
                break;
            }
            s.fresh_at = Some(s.fresh_at.map_or(at, |f| f.max(at)));
            s.waiting.pop_front();
        }
        s.fresh_at.map(|f| now.saturating_duration_since(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_is_as_fresh_as_the_latest_contact_it_has_applied() {
        let f = Freshness::default();
        let t0 = Instant::now();
        assert_eq!(f.staleness(10, t0), None, "never heard from a leader");
        f.leader_contact(t0, 5);
        f.leader_contact(t0 + Duration::from_secs(1), 8);
        f.leader_contact(t0 + Duration::from_secs(2), 12);
        let now = t0 + Duration::from_secs(10);
        // Applied 9: up to date as of the second contact, not the third.
        assert_eq!(f.staleness(9, now), Some(Duration::from_secs(9)));
        // Applied 12: as of the third.
        assert_eq!(f.staleness(12, now), Some(Duration::from_secs(8)));
        // No new contact: staleness grows with time.
        assert_eq!(
            f.staleness(12, now + Duration::from_secs(5)),
            Some(Duration::from_secs(13))
        );
    }

    #[test]
    fn the_queue_of_contacts_is_bounded() {
        let f = Freshness::default();
        let t0 = Instant::now();
        for i in 0..(MAX_CONTACTS as u64 * 3) {
            f.leader_contact(t0, 100 + i);
        }
        assert!(f.state.lock().unwrap().waiting.len() <= MAX_CONTACTS);
        assert_eq!(f.staleness(u64::MAX, t0), Some(Duration::ZERO));
    }
}
