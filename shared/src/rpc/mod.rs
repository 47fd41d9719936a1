//! The RPC vocabulary every sidecar shares, so that no service crate needs another:
//!
//! - [`kind`]: the error kinds a store reports and the gRPC metadata keys carrying them;
//! - [`tls`]: mutual TLS with the cluster CA, sidecar roles, the client connector;
//! - [`serve`]: accepting connections (handshakes in their own tasks, per-peer limits) and
//!   the HTTP/2 limits of every cluster server;
//! - [`policy`]: which role may call which RPC, and each RPC's request budget;
//! - [`channel`]: signed, lazily connected TLS channels and a per-address cache;
//! - [`store`]: a typed client of the store's `Store` service (the JSON codec of commands,
//!   queries and answers written once) and the one [`store::ReadConsistency`];
//! - [`member`] and [`agent`]: a slot as the discovery agents see it, and the client of an
//!   agent (members, the `WatchMembers` follower, local reports).

pub mod agent;
pub mod channel;
pub mod kind;
pub mod member;
pub mod policy;
pub mod serve;
pub mod store;
pub mod tls;
