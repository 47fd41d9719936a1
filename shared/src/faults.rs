//! Fault injection for tests: cut a node off from the others without killing it.
//!
//! The stores' Raft and forwarding clients and the discovery agents' gossip ask
//! [`Faults::blocked`] before sending. Tests share one [`Faults`] across the nodes of an
//! in-process cluster; production configs carry an empty one, which costs one atomic
//! load per message.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The set of isolated node names.
#[derive(Debug, Default)]
pub struct Faults {
    any: AtomicBool,
    isolated: Mutex<HashSet<String>>,
}

impl Faults {
    /// Cut `node` off: nothing it sends arrives, nothing sent to it arrives.
    pub fn isolate(&self, node: &str) {
        let mut set = self.isolated.lock().unwrap_or_else(|p| p.into_inner());
        set.insert(node.to_owned());
        self.any.store(true, Ordering::SeqCst);
    }

    /// Reconnect `node`.
    pub fn heal(&self, node: &str) {
        let mut set = self.isolated.lock().unwrap_or_else(|p| p.into_inner());
        set.remove(node);
        self.any.store(!set.is_empty(), Ordering::SeqCst);
    }

    /// Reconnect everybody.
    pub fn heal_all(&self) {
        let mut set = self.isolated.lock().unwrap_or_else(|p| p.into_inner());
        set.clear();
        self.any.store(false, Ordering::SeqCst);
    }

    /// Whether `node` is cut off.
    pub fn is_isolated(&self, node: &str) -> bool {
        if !self.any.load(Ordering::SeqCst) {
            return false;
        }
        let set = self.isolated.lock().unwrap_or_else(|p| p.into_inner());
        set.contains(node)
    }

    /// Whether a message from `from` to `to` is dropped.
    pub fn blocked(&self, from: &str, to: &str) -> bool {
        if !self.any.load(Ordering::SeqCst) {
            return false;
        }
        let set = self.isolated.lock().unwrap_or_else(|p| p.into_inner());
        set.contains(from) || set.contains(to)
    }
}
