//! Leader transfer: on request, leadership moves to the voter asked for while writes go
//! on through the followers, and no acknowledged write is lost; a leader that stops
//! gracefully hands over before it goes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agenda_shared::command::Accepted;
use agenda_shared::proto::{Consistency, TransferLeaderRequest};
use agenda_shared::query::{Query, QueryResult, UserQuery};
use agenda_tests::requests::{register, request};
use agenda_tests::{TestCluster, eventually};
use consensus_svc::node::Transferred;
use tracing::info;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leadership_moves_to_the_asked_voter_under_writes_and_no_acknowledged_write_is_lost() {
    let cluster = Arc::new(TestCluster::start(5).await);
    let leader = cluster.leader().await;
    let target = (leader + 2) % 5;
    let via: Vec<usize> = (0..5).filter(|&i| i != leader).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (cluster, stop, via) = (cluster.clone(), stop.clone(), via.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for k in 0..2_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (id, cmd) = register(&format!("writer{k}"));
                // Through the followers: a write that meets the hand-over follows it.
                let result = cluster.execute(via[k % via.len()], &request(None, cmd)).await;
                let result = result.unwrap_or_else(|e| panic!("write {k} failed during the transfer: {e:?}"));
                assert!(
                    matches!(result.outcome, Ok(Accepted::User { .. })),
                    "{:?}",
                    result.outcome
                );
                acked.push((id, result.revision));
            }
            acked
        })
    };
    eventually("writes under way", Duration::from_secs(20), || async {
        (cluster.status(leader).applied_index.unwrap_or(0) > 30).then_some(())
    })
    .await;

    info!(leader, target, "--- transfer");
    let reply = cluster
        .admin(leader)
        .transfer_leader(TransferLeaderRequest {
            to: cluster.raft_id(target),
        })
        .await
        .expect("transfer")
        .into_inner();
    let done: Transferred = serde_json::from_slice(&reply.data).expect("answer");
    assert_eq!(done.target, cluster.raft_id(target));
    assert_eq!(done.leader, Some(cluster.raft_id(target)), "the asked voter leads");
    assert_eq!(cluster.leader().await, target);

    // Writes go on under the new leader, then stop.
    let before = cluster.status(target).applied_index.unwrap_or(0);
    eventually("writes under the new leader", Duration::from_secs(20), || async {
        (cluster.status(target).applied_index.unwrap_or(0) > before + 20).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.expect("the writer saw no failure");
    let top = acked.iter().map(|(_, r)| *r).max().expect("writes");
    cluster.wait_applied(&[0, 1, 2, 3, 4], top).await;
    for i in 0..5 {
        for (id, _) in &acked {
            let (_, outcome) = cluster
                .query(i, &Query::User(UserQuery { user_id: *id }), Consistency::Local, 0)
                .await
                .expect("query");
            assert!(matches!(outcome, Ok(QueryResult::User { .. })), "slot {i} lost {id}");
        }
    }
    Arc::try_unwrap(cluster).ok().expect("one owner").shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_leader_transfers_and_only_to_a_voter() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    let refused = cluster
        .admin(follower)
        .transfer_leader(TransferLeaderRequest { to: 0 })
        .await
        .expect_err("a follower cannot hand over");
    assert_eq!(
        agenda_shared::rpc::kind::ErrorKind::of(&refused),
        Some(agenda_shared::rpc::kind::ErrorKind::NotLeader)
    );
    let refused = cluster
        .admin(leader)
        .transfer_leader(TransferLeaderRequest { to: 424_242 })
        .await
        .expect_err("not a voter");
    assert!(refused.message().contains("not another voter"), "{refused:?}");
    assert_eq!(cluster.leader().await, leader, "nothing moved");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_stopping_gracefully_hands_over_before_it_is_gone() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let (_, cmd) = register("before");
    cluster.execute(leader, &request(None, cmd)).await.expect("write");
    info!(leader, "--- stop the leader gracefully");
    cluster.stop(leader).await;
    // Without a hand-over the others would still be waiting out their election timeout
    // now: the old leader heartbeats until its Raft stops.
    let leading: Vec<usize> = cluster
        .running()
        .into_iter()
        .filter(|&i| cluster.status(i).role == "leader")
        .collect();
    assert_eq!(
        leading.len(),
        1,
        "a successor already leads when the old leader is gone"
    );
    cluster.restart(leader).await;
    cluster.shutdown().await;
}
