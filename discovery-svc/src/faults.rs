//! Fault injection for tests: cut an agent off from gossip without killing it.
//!
//! The gossip client asks [`Faults::blocked`] before sending, and the `Gossip` server
//! refuses (`UNAVAILABLE`, nothing merged) a digest whose sender or receiver is isolated.
//! `Members`, `WatchMembers` and `UpdateLocal` are not affected, so a test can still read an
//! isolated agent's view.

pub use agenda_shared::faults::Faults;
