//! `agenda-shared`: the contract every Agenda sidecar shares.
//!
//! - [`proto`]: the gRPC services (Raft transport, Store, Admin) generated from
//!   `proto/agenda.proto` without a system `protoc`.
//! - [`command`], [`query`], [`model`], [`status`]: the typed documents carried inside those
//!   RPCs (commands proposed to the log, their outcomes, reads, store status).
//! - [`auth`]: HMAC-SHA256 signing and verification of every cluster RPC (tower layers).
//! - [`rpc`]: the RPC vocabulary: error kinds and metadata keys, signed channels, the typed
//!   store client and codec, the discovery member type and agent client.
//! - [`faults`]: test-only fault injection shared by the store and discovery clients.
//! - `pki` (feature `pki`): issuing the cluster CA and the sidecars' certificates.
//! - [`ids`]: [`ids::SlotId`] (a slot, `agenda-N`) and [`ids::RaftId`] (a store incarnation).
//! - [`secret`]: the one type for secret text, and how secrets are read from files.
//! - [`config`], [`telemetry`], [`shutdown`]: helpers the binaries use to load layered
//!   configuration, start tracing and turn SIGINT/SIGTERM into a cancellation token.
//!
//! The crate has no side effects of its own: nothing here reads the environment or
//! installs handlers unless a binary calls it.

pub mod auth;
pub mod command;
pub mod config;
pub mod faults;
pub mod ids;
pub mod model;
#[cfg(feature = "pki")]
pub mod pki;
pub mod query;
pub mod rpc;
pub mod secret;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod validate;

/// Generated protobuf/gRPC code (package `agenda.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("agenda.v1");
}

/// Generated protobuf/gRPC code of the discovery agent (package `agenda.discovery.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod discovery_proto {
    tonic::include_proto!("agenda.discovery.v1");
}
