//! Entry sizes: a command larger than a log entry may be is refused before the log, and a
//! follower that was down while the log filled with entries of the largest size allowed
//! catches up from the log (more of them than one gRPC message can carry).

use std::time::Duration;

use agenda_shared::command::{Command, CreateGroup, ExecuteResult, MAX_COMMAND_BYTES, Rejection, Request};
use agenda_shared::model::GroupType;
use agenda_shared::rpc::kind::ErrorKind;
use agenda_shared::rpc::store::MAX_MESSAGE;
use agenda_tests::requests::{register, request};
use agenda_tests::{ClientError, TestCluster, eventually, test_timings};
use consensus_svc::error::StoreError;
use futures::StreamExt;
use tracing::info;
use uuid::Uuid;

/// A group creation by `actor` whose request is `bytes` long as the log holds it. Its name
/// is far over the name limit, so apply refuses it: what an unvalidated front would send.
fn oversized_group(actor: Uuid, bytes: usize) -> Request {
    let with_name = |len: usize| {
        request(
            Some(actor),
            Command::CreateGroup(CreateGroup {
                group_id: Uuid::now_v7(),
                name: "n".repeat(len),
                description: String::new(),
                group_type: GroupType::NonHierarchical,
                creator_rank: None,
            }),
        )
    };
    let frame = with_name(0).encoded_len();
    let req = with_name(bytes - frame);
    assert_eq!(req.encoded_len(), bytes);
    req
}

fn error_kind(e: &ClientError) -> Option<ErrorKind> {
    match e {
        ClientError::Status(s) => ErrorKind::of(s),
        ClientError::Decode(_) => None,
    }
}

/// Execute `req` through slot `via`, again with the same request id while the outcome is
/// unknown (`quorum_unavailable`: a debug build on a loaded machine can miss the write
/// timeout under a flood), as the API does; the store applies it once.
async fn execute_until_answered(cluster: &TestCluster, via: usize, req: &Request) -> ExecuteResult {
    eventually("the write is answered", Duration::from_secs(60), || async {
        match cluster.execute(via, req).await {
            Ok(result) => Some(result),
            Err(e) if error_kind(&e).is_some_and(ErrorKind::is_transient) => None,
            Err(e) => panic!("{e:?}"),
        }
    })
    .await
}

async fn register_user(cluster: &TestCluster, via: usize, name: &str) -> (Uuid, u64) {
    let (id, cmd) = register(name);
    let result = execute_until_answered(cluster, via, &request(None, cmd)).await;
    assert!(result.outcome.is_ok(), "{:?}", result.outcome);
    (id, result.revision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_over_the_size_cap_is_refused_and_never_reaches_the_log() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let (alice, _) = register_user(&cluster, leader, "alice").await;
    let before = cluster.status(leader).last_log_index.expect("a log");
    let huge = oversized_group(alice, MAX_COMMAND_BYTES + 1);

    info!("--- through the Store RPC, on the leader and on a follower (no forwarding)");
    for via in [leader, follower] {
        let err = cluster.execute(via, &huge).await.expect_err("too large");
        assert_eq!(err.code(), Some(tonic::Code::InvalidArgument), "{err:?}");
        assert_eq!(error_kind(&err), Some(ErrorKind::CommandTooLarge), "{err:?}");
    }
    info!("--- through the node itself (how the store's own proposals enter)");
    let err = cluster
        .node(leader)
        .execute(huge.clone(), false)
        .await
        .expect_err("too large");
    assert!(
        matches!(err, StoreError::CommandTooLarge { bytes } if bytes == MAX_COMMAND_BYTES + 1),
        "{err:?}"
    );
    assert_eq!(cluster.status(leader).last_log_index, Some(before), "nothing appended");

    info!("--- at the cap exactly, it reaches the log (and apply refuses the name)");
    let at_cap = oversized_group(alice, MAX_COMMAND_BYTES);
    let result = cluster.execute(follower, &at_cap).await.expect("at the cap");
    assert_eq!(result.revision, before + 1, "the refused ones took no index");
    assert!(
        matches!(result.outcome, Err(Rejection::Invalid { ref field, .. }) if field == "name"),
        "{:?}",
        result.outcome
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_down_during_a_flood_of_maximum_size_commands_catches_up_from_the_log() {
    // No snapshot may overtake the follower: it has to be served from the log.
    let timings = consensus_svc::Timings {
        snapshot_every: 1_000_000,
        ..test_timings()
    };
    let mut cluster = TestCluster::start_with(3, timings).await;
    let leader = cluster.leader().await;
    let victim = (leader + 1) % 3;
    let (mallory, _) = register_user(&cluster, leader, "mallory").await;

    info!(
        victim,
        "--- stop a follower, flood the leader with commands of the largest size"
    );
    cluster.stop(victim).await;
    const FLOOD: usize = 400;
    // More than one gRPC message can carry, inside one window of `max_payload_entries`.
    const { assert!(FLOOD * MAX_COMMAND_BYTES > MAX_MESSAGE + MAX_MESSAGE / 2) };
    let flood = futures::stream::iter(0..FLOOD)
        .map(|_| {
            let cluster = &cluster;
            async move {
                let req = oversized_group(mallory, MAX_COMMAND_BYTES);
                let result = execute_until_answered(cluster, leader, &req).await;
                assert!(
                    matches!(result.outcome, Err(Rejection::Invalid { .. })),
                    "{:?}",
                    result.outcome
                );
                result.revision
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<u64>>()
        .await;
    let (_, last) = register_user(&cluster, leader, "after-the-flood").await;
    assert!(flood.iter().all(|&r| r < last));
    assert_eq!(cluster.status(leader).snapshot_index, None, "no snapshot was built");

    info!(last, "--- restart the follower: it must reach the leader's revision");
    cluster.restart(victim).await;
    eventually(
        "the restarted follower applied everything written while it was down",
        Duration::from_secs(90),
        || async { (cluster.status(victim).applied_index.unwrap_or(0) >= last).then_some(()) },
    )
    .await;
    assert_eq!(cluster.status(victim).snapshot_index, None, "caught up from the log");
    assert_eq!(cluster.dump(victim).await, cluster.dump(leader).await);
    cluster.shutdown().await;
}
