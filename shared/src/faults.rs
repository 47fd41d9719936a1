//! Fault injection for tests: cut nodes off, cut one direction of a link, freeze a node or
//! slow its disk, without killing anything.
//!
//! The stores' Raft and forwarding clients, the API fronts' store clients and the discovery
//! agents' gossip ask [`Faults::blocked`] before sending, and wait out
//! [`Faults::frozen_link`] (a frozen node neither sends nor answers: as a process stopped
//! with SIGSTOP, calls to it hang instead of failing). Tests share one [`Faults`] across
//! the nodes of an in-process cluster; production configs carry an empty one, which costs
//! one atomic load per message.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The injected faults.
#[derive(Debug, Default)]
pub struct Faults {
    any: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Nodes cut off both ways.
    isolated: HashSet<String>,
    /// One-way cuts: messages from `.0` to `.1` are dropped.
    cut: HashSet<(String, String)>,
    /// Frozen nodes: messages from or to them hang until they thaw.
    frozen: HashSet<String>,
    /// Slow disks: each fsync of the node's Raft log takes this much longer.
    slow_disk: HashMap<String, Duration>,
    /// Full disks: the free space the node sees, whatever the file system says.
    free_bytes: HashMap<String, u64>,
}

impl State {
    fn is_empty(&self) -> bool {
        self.isolated.is_empty()
            && self.cut.is_empty()
            && self.frozen.is_empty()
            && self.slow_disk.is_empty()
            && self.free_bytes.is_empty()
    }
}

/// How often a message stalled by a frozen node looks again.
const THAW_POLL: Duration = Duration::from_millis(10);

impl Faults {
    fn update(&self, f: impl FnOnce(&mut State)) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state);
        self.any.store(!state.is_empty(), Ordering::SeqCst);
    }

    fn read<T>(&self, f: impl FnOnce(&State) -> T) -> Option<T> {
        if !self.any.load(Ordering::SeqCst) {
            return None;
        }
        Some(f(&self.state.lock().unwrap_or_else(|p| p.into_inner())))
    }

    /// Cut `node` off: nothing it sends arrives, nothing sent to it arrives.
    pub fn isolate(&self, node: &str) {
        self.update(|s| {
            s.isolated.insert(node.to_owned());
        });
    }

    /// Reconnect `node` (its one-way cuts stay).
    pub fn heal(&self, node: &str) {
        self.update(|s| {
            s.isolated.remove(node);
        });
    }

    /// Drop what `from` sends to `to` (the other direction still works).
    pub fn cut(&self, from: &str, to: &str) {
        self.update(|s| {
            s.cut.insert((from.to_owned(), to.to_owned()));
        });
    }

    /// Freeze `node`: what it sends and what is sent to it hangs until [`Faults::thaw`].
    pub fn freeze(&self, node: &str) {
        self.update(|s| {
            s.frozen.insert(node.to_owned());
        });
    }

    /// Let `node` run again.
    pub fn thaw(&self, node: &str) {
        self.update(|s| {
            s.frozen.remove(node);
        });
    }

    /// Make every fsync of `node`'s Raft log take `extra` longer (a slow or saturated
    /// disk); `Duration::ZERO` restores it.
    pub fn slow_disk(&self, node: &str, extra: Duration) {
        self.update(|s| {
            if extra.is_zero() {
                s.slow_disk.remove(node);
            } else {
                s.slow_disk.insert(node.to_owned(), extra);
            }
        });
    }

    /// `node` sees `free` bytes free on its data volume (`None`: what the file system says).
    pub fn free_space(&self, node: &str, free: Option<u64>) {
        self.update(|s| match free {
            Some(f) => {
                s.free_bytes.insert(node.to_owned(), f);
            }
            None => {
                s.free_bytes.remove(node);
            }
        });
    }

    /// The free space `node` is made to see, if any.
    pub fn free_bytes(&self, node: &str) -> Option<u64> {
        self.read(|s| s.free_bytes.get(node).copied()).flatten()
    }

    /// How much longer an fsync of `node`'s log takes now.
    pub fn disk_delay(&self, node: &str) -> Option<Duration> {
        self.read(|s| s.slow_disk.get(node).copied()).flatten()
    }

    /// Reconnect, thaw and speed up everybody.
    pub fn heal_all(&self) {
        self.update(|s| *s = State::default());
    }

    /// Whether `node` is cut off.
    pub fn is_isolated(&self, node: &str) -> bool {
        self.read(|s| s.isolated.contains(node)).unwrap_or(false)
    }

    /// Whether a message from `from` to `to` is dropped.
    pub fn blocked(&self, from: &str, to: &str) -> bool {
        self.read(|s| {
            s.isolated.contains(from) || s.isolated.contains(to) || s.cut.contains(&(from.to_owned(), to.to_owned()))
        })
        .unwrap_or(false)
    }

    /// Whether a message between `from` and `to` would hang (either end is frozen).
    pub fn frozen_link(&self, from: &str, to: &str) -> bool {
        self.read(|s| s.frozen.contains(from) || s.frozen.contains(to))
            .unwrap_or(false)
    }

    /// Wait while a message from `from` to `to` would hang; returns at once when neither
    /// end is frozen. Callers put their own deadline around it, as around the call.
    pub async fn wait_thawed(&self, from: &str, to: &str) {
        while self.frozen_link(from, to) {
            tokio::time::sleep(THAW_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_cuts_both_ways_and_one_way_cuts_one() {
        let f = Faults::default();
        assert!(!f.blocked("a", "b"));
        f.isolate("a");
        assert!(f.blocked("a", "b") && f.blocked("b", "a"));
        assert!(!f.blocked("b", "c"));
        f.heal("a");
        f.cut("b", "c");
        assert!(f.blocked("b", "c"));
        assert!(!f.blocked("c", "b"), "the other direction still works");
        f.heal_all();
        assert!(!f.blocked("b", "c"));
    }

    #[test]
    fn a_slow_disk_is_per_node_and_heals() {
        let f = Faults::default();
        assert_eq!(f.disk_delay("a"), None);
        f.slow_disk("a", Duration::from_millis(200));
        assert_eq!(f.disk_delay("a"), Some(Duration::from_millis(200)));
        assert_eq!(f.disk_delay("b"), None);
        f.slow_disk("a", Duration::ZERO);
        assert_eq!(f.disk_delay("a"), None);
        f.slow_disk("b", Duration::from_millis(5));
        f.heal_all();
        assert_eq!(f.disk_delay("b"), None);
    }

    #[tokio::test]
    async fn a_frozen_node_stalls_its_links_until_it_thaws() {
        let f = std::sync::Arc::new(Faults::default());
        f.freeze("a");
        assert!(f.frozen_link("b", "a") && f.frozen_link("a", "c"));
        assert!(!f.frozen_link("b", "c"));
        assert!(!f.blocked("b", "a"), "frozen is not cut: messages wait");
        let waiter = tokio::spawn({
            let f = f.clone();
            async move { f.wait_thawed("b", "a").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "still frozen");
        f.thaw("a");
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("released once thawed")
            .expect("task");
    }
}
