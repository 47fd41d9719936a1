//! Fault injection for tests: cut a store off from the others without killing it.
//!
//! Every outgoing gRPC client of a store (Raft replication and forwarding) asks
//! [`Faults::blocked`] before sending.

pub use agenda_shared::faults::Faults;
