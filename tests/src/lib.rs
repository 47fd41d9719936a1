//! `agenda-tests`: the in-process harnesses and the end-to-end suites, in four test
//! binaries: `rules` (the agenda rules against one state machine), `store` (clusters of
//! stores, the domain on seven nodes, RPC security, self-organising membership), `api`
//! (the API over HTTP and WebSocket, and the fault suite `nemesis`) and `discovery` (the
//! agents). [`linearizability`] checks the fault suite's histories.
//!
//! A `TestCluster` runs N stores in this process on 127.0.0.1 with port 0 and temporary
//! data folders. It can stop a store (its data stays), restart it on the same address
//! with the same data, wipe it (new incarnation with an empty volume), and cut it off from
//! the others through the stores' fault-injection layer. Every wait polls a condition
//! with a deadline; nothing sleeps to synchronise. Every link is mutual TLS with the test
//! CA ([`pki`]), as in a deployment.

pub mod api;
mod cluster;
pub mod fleet;
pub mod linearizability;
pub mod machine;
pub mod pki;
pub mod ports;
pub mod relay;
pub mod requests;

pub use cluster::{ClientError, SignedStoreClient, TestCluster, test_timings};

/// Poll `check` until it returns `Some`, or panic with `what` after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= until {
            panic!("timed out after {deadline:?} waiting for: {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
