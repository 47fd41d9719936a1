//! Full disks (the NOSPACE alarm): a store whose volume runs low takes no writes and, as
//! leader, hands leadership over; nearly full, it appends nothing either and stays out
//! of the quorum; the others go on; when space returns the alarm clears by itself and the
//! store catches up with nothing lost. (The harness's stores want 16 MiB free.)

use std::time::Duration;

use agenda_shared::command::Accepted;
use agenda_shared::proto::Consistency;
use agenda_shared::query::{Query, QueryResult, UserQuery};
use agenda_shared::rpc::kind::ErrorKind;
use agenda_tests::requests::{register, request};
use agenda_tests::{TestCluster, eventually};
use tracing::info;
use uuid::Uuid;

const MIB: u64 = 1 << 20;

async fn write(cluster: &TestCluster, via: usize, name: &str) -> (Uuid, u64) {
    let (id, cmd) = register(name);
    let result = cluster.execute(via, &request(None, cmd)).await.expect("write");
    assert!(
        matches!(result.outcome, Ok(Accepted::User { .. })),
        "{:?}",
        result.outcome
    );
    (id, result.revision)
}

async fn alarm(cluster: &TestCluster, i: usize) -> String {
    eventually("the NOSPACE alarm", Duration::from_secs(10), || async {
        cluster.status(i).alarm
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_with_a_full_disk_drops_out_and_catches_up_when_space_returns() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let full = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let (early, early_revision) = write(&cluster, leader, "early").await;
    cluster.wait_applied(&[0, 1, 2], early_revision).await;

    info!(full, "--- its volume is full");
    cluster.free_space(full, Some(MIB));
    let raised = alarm(&cluster, full).await;
    assert!(
        raised.starts_with("NOSPACE") && raised.contains("nor appending"),
        "{raised}"
    );
    let refused = cluster
        .execute(full, &request(None, register("refused").1))
        .await
        .expect_err("no writes on a full volume");
    assert_eq!(
        refused.kind(),
        Some(ErrorKind::ShuttingDown),
        "callers go elsewhere: {refused:?}"
    );

    let mut later = Vec::new();
    let mut top = 0;
    for k in 0..20 {
        let (id, revision) = write(&cluster, [leader, other][k % 2], &format!("later{k}")).await;
        later.push(id);
        top = revision;
    }
    cluster.wait_applied(&[leader, other], top).await;
    assert!(
        cluster.status(full).applied_index.unwrap_or(0) < top,
        "a full store appended nothing"
    );
    // What it holds it still serves.
    let (_, outcome) = cluster
        .query(
            full,
            &Query::User(UserQuery { user_id: early }),
            Consistency::MinRevision,
            early_revision,
        )
        .await
        .expect("read");
    assert!(matches!(outcome, Ok(QueryResult::User { .. })));

    info!("--- space returns");
    cluster.free_space(full, None);
    cluster.wait_applied(&[0, 1, 2], top).await;
    assert_eq!(cluster.status(full).alarm, None, "the alarm clears by itself");
    assert_eq!(
        cluster.dump(full).await,
        cluster.dump(leader).await,
        "nothing lost, nothing corrupted"
    );
    write(&cluster, full, "after").await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_whose_disk_runs_low_hands_over_and_the_cluster_keeps_writing() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    info!(leader, "--- the leader's volume runs low");
    cluster.free_space(leader, Some(12 * MIB));
    let raised = alarm(&cluster, leader).await;
    assert!(raised.contains("not taking writes"), "{raised}");
    let next = eventually(
        "leadership moved off the full volume",
        Duration::from_secs(20),
        || async {
            let l = cluster.leader().await;
            (l != leader).then_some(l)
        },
    )
    .await;
    let (id, revision) = write(&cluster, next, "after-hand-over").await;
    // Low, not full: it still appends and applies, and serves linearizable reads.
    cluster.wait_applied(&[0, 1, 2], revision).await;
    let (_, outcome) = cluster
        .query(
            leader,
            &Query::User(UserQuery { user_id: id }),
            Consistency::Linearizable,
            0,
        )
        .await
        .expect("read");
    assert!(matches!(outcome, Ok(QueryResult::User { .. })));
    assert!(
        cluster
            .execute(leader, &request(None, register("refused").1))
            .await
            .is_err()
    );

    cluster.free_space(leader, None);
    eventually("the alarm clears", Duration::from_secs(10), || async {
        cluster.status(leader).alarm.is_none().then_some(())
    })
    .await;
    write(&cluster, leader, "space-again").await;
    cluster.shutdown().await;
}
