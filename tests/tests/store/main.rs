//! Stores in one process: online backup and restore (`backup`); full disks (`disk`); availability under pauses and partitions (`availability`);
//! replication, forwarding, failover, quorum loss, restarts,
//! snapshots, lost volumes, idempotency (`cluster`); the domain on seven nodes (`domain`);
//! the size cap on commands and catch-up past the gRPC message cap (`entry_size`); signed
//! RPCs (`rpc_security`); mutual TLS, pre-body checks, receivers and certificate rotation
//! (`links`); snapshots streamed as files (`snapshots`); stores, agents and APIs organising themselves
//! (`self_organising`); versioned entries and batches in a mixed-version cluster
//! (`versions`); leader transfer (`transfer`).

mod availability;
mod backup;
mod cluster;
mod disk;
mod domain;
mod entry_size;
mod links;
mod rpc_security;
mod self_organising;
mod snapshots;
mod transfer;
mod versions;
