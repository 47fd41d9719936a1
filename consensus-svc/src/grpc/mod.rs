//! The store's gRPC services: Raft transport, Store (API-facing) and Admin.

pub(crate) mod admin;
pub(crate) mod raft;
pub(crate) mod store;
