//! `consensus-svc`: Agenda's store sidecar.
//!
//! An openraft node whose log lives in SQLite (`log.db`) and whose state machine is the
//! whole agenda in a second SQLite database (`state.db`). Commands are typed
//! ([`agenda_shared::command`]); apply is total and deterministic and authorises every
//! write against the state at its log position.
//!
//! It serves three gRPC services, all behind the cluster HMAC layer:
//! - `Raft` (to other stores): AppendEntries, Vote, InstallSnapshot;
//! - `Store` (to api-svc and to other stores forwarding to the leader): Execute, Query,
//!   Watch, Status;
//! - `Admin` (operators, tests, the discovery reconciler): Initialize, AddLearner,
//!   ChangeMembership, Metrics.
//!
//! Modules: [`app`] (build/run), [`config`], [`node`] (request logic), `grpc` (servers),
//! `network`/`peers` (Raft and forwarding clients), [`log_store`], [`state`] (state
//! machine, apply, reads, snapshots), [`faults`] (test fault injection), [`error`].

pub mod app;
pub mod backup;
pub mod backup_schedule;
pub mod cli;
pub mod config;
pub mod disk;
pub mod election;
pub mod entry;
pub mod error;
pub mod faults;
pub mod freshness;
mod grpc;
pub mod log_store;
pub mod membership;
mod network;
pub mod node;
mod peers;
pub mod snapshot_schedule;
mod sqlite;
pub mod state;
pub mod types;
pub mod version;

pub use app::{App, AppError};
pub use config::MembershipConfig;
pub use config::{Config, EnvConfig, Timings};
pub use network::Network;
