//! Seven stores in one process: replication, forwarding, failover, quorum loss,
//! restarts, snapshots, idempotency and rejections.

use agenda_shared::command::CreateAppointment;
use agenda_shared::query::{AgendaQuery, UserQuery};
use std::time::Duration;

use agenda_shared::command::{Accepted, Command, Rejection};
use agenda_shared::proto::Consistency;
use agenda_shared::query::{Query, QueryResult};
use agenda_shared::rpc::kind::ErrorKind;
use agenda_tests::requests::{appointment, register, request};
use agenda_tests::{TestCluster, eventually, test_timings};
use tracing::info;
use uuid::Uuid;

/// Register `name` through slot `via`; returns the user id and the write's revision.
async fn register_user(cluster: &TestCluster, via: usize, name: &str) -> (Uuid, u64) {
    let (id, cmd) = register(name);
    let result = cluster.execute(via, &request(None, cmd)).await.expect("register");
    assert!(
        matches!(result.outcome, Ok(Accepted::User { .. })),
        "{:?}",
        result.outcome
    );
    (id, result.revision)
}

/// Whether slot `i` (locally) knows user `id`.
async fn has_user(cluster: &TestCluster, i: usize, id: Uuid) -> bool {
    let (_, outcome) = cluster
        .query(i, &Query::User(UserQuery { user_id: id }), Consistency::Local, 0)
        .await
        .expect("local query");
    matches!(outcome, Ok(QueryResult::User { user }) if user.id == id)
}

fn follower_of(leader: usize, n: usize) -> usize {
    (leader + 1) % n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_sent_to_a_follower_is_applied_on_all_seven() {
    let cluster = TestCluster::start(7).await;
    let leader = cluster.leader().await;
    let follower = follower_of(leader, 7);
    info!(leader, follower, "--- write through a follower");
    let (id, revision) = register_user(&cluster, follower, "alice").await;
    cluster.wait_applied(&(0..7).collect::<Vec<_>>(), revision).await;
    for i in 0..7 {
        assert!(has_user(&cluster, i, id).await, "slot {i} lacks the user");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_elects_a_new_one_and_keeps_every_acknowledged_write() {
    let mut cluster = TestCluster::start(7).await;
    let old = cluster.leader().await;
    let mut acknowledged = Vec::new();
    for k in 0..10 {
        let (id, _) = register_user(&cluster, k % 7, &format!("user{k}")).await;
        acknowledged.push(id);
    }
    info!(old, "--- kill the leader");
    cluster.stop(old).await;
    let new = cluster.leader().await;
    assert_ne!(new, old);
    let via = cluster.running().into_iter().find(|&i| i != new).expect("a follower");
    let (late, revision) = register_user(&cluster, via, "late").await;
    acknowledged.push(late);
    let survivors = cluster.running();
    cluster.wait_applied(&survivors, revision).await;
    for &i in &survivors {
        for id in &acknowledged {
            assert!(has_user(&cluster, i, *id).await, "slot {i} lost {id}");
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_three_stores_down_writes_still_succeed() {
    let mut cluster = TestCluster::start(7).await;
    let leader = cluster.leader().await;
    info!("--- stop three stores, the leader among them");
    let mut down = vec![leader];
    down.extend((0..7).filter(|&i| i != leader).take(2));
    for &i in &down {
        cluster.stop(i).await;
    }
    let alive = cluster.running();
    assert_eq!(alive.len(), 4);
    let (id, revision) = register_user(&cluster, alive[0], "survivor").await;
    cluster.wait_applied(&alive, revision).await;
    for &i in &alive {
        assert!(has_user(&cluster, i, id).await);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_four_down_writes_fail_unavailable_and_nothing_acknowledged_is_lost() {
    let mut cluster = TestCluster::start(7).await;
    let mut acknowledged = Vec::new();
    for k in 0..5 {
        acknowledged.push(register_user(&cluster, k, &format!("before{k}")).await.0);
    }
    let leader = cluster.leader().await;
    let mut down = vec![leader];
    down.extend((0..7).filter(|&i| i != leader).take(3));
    info!(?down, "--- stop four stores");
    for &i in &down {
        cluster.stop(i).await;
    }
    let alive = cluster.running();
    let started = tokio::time::Instant::now();
    let (_, cmd) = register("doomed");
    let err = cluster
        .execute(alive[0], &request(None, cmd))
        .await
        .expect_err("a write without quorum must fail");
    assert_eq!(err.code(), Some(tonic::Code::Unavailable), "{err:?}");
    // Bounded: the write timeout plus a leader wait, never an endless hang.
    assert!(started.elapsed() < Duration::from_secs(20));

    info!("--- two stores return: quorum again");
    cluster.restart(down[1]).await;
    cluster.restart(down[2]).await;
    let leader = cluster.leader().await;
    let (id, revision) = register_user(&cluster, leader, "after").await;
    acknowledged.push(id);
    let alive = cluster.running();
    cluster.wait_applied(&alive, revision).await;
    for &i in &alive {
        for id in &acknowledged {
            assert!(has_user(&cluster, i, *id).await, "slot {i} lost {id}");
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_store_catches_up_from_its_own_data() {
    let mut cluster = TestCluster::start(7).await;
    let leader = cluster.leader().await;
    let victim = follower_of(leader, 7);
    let (early, _) = register_user(&cluster, leader, "early").await;
    info!(victim, "--- stop a follower, write while it is away");
    cluster.stop(victim).await;
    let (missed, revision) = register_user(&cluster, leader, "missed").await;
    cluster.restart(victim).await;
    cluster.wait_applied(&[victim], revision).await;
    assert!(has_user(&cluster, victim, early).await);
    assert!(has_user(&cluster, victim, missed).await);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_that_missed_a_purged_stretch_catches_up_through_a_snapshot() {
    let timings = consensus_svc::Timings {
        snapshot_every: 20,
        keep_logs: 0,
        ..test_timings()
    };
    let mut cluster = TestCluster::start_with(7, timings).await;
    let leader = cluster.leader().await;
    let victim = follower_of(leader, 7);
    cluster.stop(victim).await;
    info!("--- write past several snapshots while a follower is down");
    let mut ids = Vec::new();
    let mut last = 0;
    for k in 0..60 {
        let (id, rev) = register_user(&cluster, leader, &format!("bulk{k}")).await;
        ids.push(id);
        last = rev;
    }
    eventually("the leader purged its log", Duration::from_secs(30), || async {
        let m = cluster.node(leader).raft().metrics().borrow().clone();
        m.purged.filter(|p| p.index > 10).map(|_| ())
    })
    .await;
    cluster.restart(victim).await;
    cluster.wait_applied(&[victim], last).await;
    let snap = cluster.status(victim).snapshot_index;
    assert!(snap.is_some(), "the follower should hold the installed snapshot");
    for id in ids {
        assert!(has_user(&cluster, victim, id).await);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stores_snapshot_at_different_indexes_not_all_at_once() {
    // openraft's `LogsSinceLast` had all seven copy their database at the same index,
    // that is at the same moment. Each store now has its own phase of the interval.
    let timings = consensus_svc::Timings {
        snapshot_every: 70,
        ..test_timings()
    };
    let cluster = TestCluster::start_with(7, timings).await;
    let leader = cluster.leader().await;
    let mut last = 0;
    for k in 0..150 {
        last = register_user(&cluster, leader, &format!("snap{k}")).await.1;
    }
    cluster.wait_applied(&[0, 1, 2, 3, 4, 5, 6], last).await;
    let indexes = eventually("every store has a snapshot", Duration::from_secs(30), || async {
        let all: Vec<u64> = (0..7).filter_map(|i| cluster.status(i).snapshot_index).collect();
        (all.len() == 7).then_some(all)
    })
    .await;
    let mut distinct = indexes.clone();
    distinct.sort_unstable();
    distinct.dedup();
    info!(?indexes, "latest snapshot of each store");
    // Phases 10 entries apart: the latest snapshots spread over most of an interval (the
    // old policy put them all within a few entries of each other).
    let spread = distinct[distinct.len() - 1] - distinct[0];
    assert!(
        distinct.len() >= 4 && spread >= 30,
        "snapshots bunched together: {indexes:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_retried_with_the_same_id_is_applied_once() {
    let cluster = TestCluster::start(7).await;
    let (alice, _) = register_user(&cluster, 0, "alice").await;
    let (appt, cmd) = appointment("standup", 1_000_000, 2_000_000);
    let req = request(Some(alice), cmd);
    let first = cluster.execute(1, &req).await.expect("first");
    assert!(!first.replayed);
    info!("--- retry the same request through other slots");
    for via in [2, 5] {
        let again = cluster.execute(via, &req).await.expect("retry");
        assert!(again.replayed, "a retry must return the recorded outcome");
        assert_eq!(again.revision, first.revision);
        assert_eq!(again.outcome, first.outcome);
    }
    let (_, agenda) = cluster
        .query(
            3,
            &Query::Agenda(AgendaQuery {
                actor: alice,
                start_ms: 0,
                end_ms: 10_000_000,
                include_pending: true,
                include_declined: true,
                limit: None,
                after: None,
            }),
            Consistency::Linearizable,
            0,
        )
        .await
        .expect("agenda");
    match agenda {
        Ok(QueryResult::Appointments { appointments, .. }) => {
            assert_eq!(appointments.iter().map(|a| a.id).collect::<Vec<_>>(), vec![appt]);
        }
        other => panic!("unexpected {other:?}"),
    }
    info!("--- the same key for a different request is refused");
    let mut different = req.clone();
    different.request_hash = "something else".into();
    different.command = appointment("other", 5_000_000, 6_000_000).1;
    let refused = cluster.execute(4, &different).await.expect("executed");
    assert_eq!(refused.outcome, Err(Rejection::IdempotencyMismatch));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_apply_must_reject_is_recorded_and_the_cluster_keeps_accepting_writes() {
    let cluster = TestCluster::start(7).await;
    let ghost = Uuid::now_v7();
    let (_, cmd) = appointment("for nobody", 1_000, 2_000);
    let result = cluster.execute(2, &request(Some(ghost), cmd)).await.expect("executed");
    assert_eq!(result.outcome, Err(Rejection::not_found("user")));
    let bad = Command::CreateAppointment(CreateAppointment {
        appointment_id: Uuid::now_v7(),
        group_id: None,
        title: "backwards".into(),
        description: String::new(),
        start_ms: 5_000,
        end_ms: 1_000,
        privacy: Default::default(),
    });
    let (alice, _) = register_user(&cluster, 3, "alice").await;
    let result = cluster.execute(4, &request(Some(alice), bad)).await.expect("executed");
    assert!(matches!(result.outcome, Err(Rejection::Invalid { ref field, .. }) if field == "end"));
    info!("--- the log is not wedged");
    let (bob, revision) = register_user(&cluster, 5, "bob").await;
    cluster.wait_applied(&(0..7).collect::<Vec<_>>(), revision).await;
    for i in 0..7 {
        assert!(has_user(&cluster, i, bob).await);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_cut_off_is_replaced_and_rejoins_after_the_heal() {
    let cluster = TestCluster::start(7).await;
    let old = cluster.leader().await;
    info!(old, "--- cut the leader off");
    cluster.isolate(old);
    let others: Vec<usize> = (0..7).filter(|&i| i != old).collect();
    let new = cluster.wait_for_leader(&others).await;
    assert_ne!(new, old);
    let (id, revision) = register_user(&cluster, others[0], "during-partition").await;
    // The isolated node cannot have it: a local read there either refuses (it lost touch
    // with the leader longer ago than the staleness bound) or does not know the user.
    match cluster
        .query(old, &Query::User(UserQuery { user_id: id }), Consistency::Local, 0)
        .await
    {
        Err(e) => assert_eq!(error_kind(&e), Some(ErrorKind::StaleReplica), "{e:?}"),
        Ok((_, outcome)) => assert!(!matches!(outcome, Ok(QueryResult::User { .. }))),
    }
    info!("--- heal");
    cluster.heal(old);
    cluster.wait_applied(&[old], revision).await;
    assert!(has_user(&cluster, old, id).await);
    let leader = cluster.leader().await;
    assert_eq!(cluster.status(old).leader_id, Some(cluster.raft_id(leader)));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_honour_linearizable_local_and_min_revision() {
    let cluster = TestCluster::start(7).await;
    let leader = cluster.leader().await;
    let (id, revision) = register_user(&cluster, leader, "reader").await;
    for i in 0..7 {
        let (rev, outcome) = cluster
            .query(
                i,
                &Query::User(UserQuery { user_id: id }),
                Consistency::MinRevision,
                revision,
            )
            .await
            .expect("min_revision read");
        assert!(rev >= revision);
        assert!(matches!(outcome, Ok(QueryResult::User { .. })));
        let (rev, outcome) = cluster
            .query(i, &Query::User(UserQuery { user_id: id }), Consistency::Linearizable, 0)
            .await
            .expect("linearizable read");
        assert!(
            rev >= revision,
            "linearizable read on slot {i} saw revision {rev} < {revision}"
        );
        assert!(matches!(outcome, Ok(QueryResult::User { .. })));
    }
    info!("--- a revision nobody reached times out as unavailable");
    let err = cluster
        .query(
            0,
            &Query::User(UserQuery { user_id: id }),
            Consistency::MinRevision,
            revision + 1_000_000,
        )
        .await
        .expect_err("unreachable revision");
    assert_eq!(err.code(), Some(tonic::Code::Unavailable));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linearizable_reads_on_followers_see_every_acknowledged_write() {
    let cluster = TestCluster::start(7).await;
    let leader = cluster.leader().await;
    info!("--- 35 writes, each read back at once on another slot, all at the same time");
    // Reads on followers ask the leader for a read index and share leadership rounds: a
    // read that joined a round started before its write was acknowledged would miss it.
    let checks = (0..35usize).map(|k| {
        let cluster = &cluster;
        async move {
            let writer = k % 7;
            let reader = (k + 1 + k / 7) % 7;
            let (id, revision) = register_user(cluster, writer, &format!("lin-{k}")).await;
            let (rev, outcome) = cluster
                .query(
                    reader,
                    &Query::User(UserQuery { user_id: id }),
                    Consistency::Linearizable,
                    0,
                )
                .await
                .expect("linearizable read");
            assert!(
                rev >= revision,
                "slot {reader} answered at {rev}, before the write acknowledged at {revision}"
            );
            assert!(
                matches!(&outcome, Ok(QueryResult::User { user }) if user.id == id),
                "slot {reader} did not see user {k}: {outcome:?}"
            );
        }
    });
    futures::future::join_all(checks).await;

    info!("--- reads arriving together share leadership rounds");
    let before = cluster.node(leader).read_rounds();
    let probe = Query::User(UserQuery { user_id: Uuid::nil() });
    let reads = (0..40).map(|_| cluster.query(leader, &probe, Consistency::Linearizable, 0));
    for result in futures::future::join_all(reads).await {
        let (_, outcome) = result.expect("linearizable read on the leader");
        assert!(matches!(outcome, Err(Rejection::NotFound { .. })), "{outcome:?}");
    }
    let rounds = cluster.node(leader).read_rounds() - before;
    assert!((1..40).contains(&rounds), "40 concurrent reads took {rounds} rounds");

    info!("--- a follower cut off from the others cannot serve a linearizable read");
    let cut = follower_of(leader, 7);
    let (id, _) = register_user(&cluster, leader, "after-the-cut").await;
    cluster.isolate(cut);
    let err = cluster
        .query(
            cut,
            &Query::User(UserQuery { user_id: id }),
            Consistency::Linearizable,
            0,
        )
        .await
        .expect_err("an isolated follower must not answer a linearizable read");
    assert_eq!(err.code(), Some(tonic::Code::Unavailable), "{err:?}");
    cluster.heal(cut);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_slot_comes_back_as_a_new_incarnation_and_replaces_its_old_voter() {
    let mut cluster = TestCluster::start(7).await;
    let leader = cluster.leader().await;
    let victim = follower_of(leader, 7);
    let (before, _) = register_user(&cluster, leader, "before-wipe").await;
    let old_id = cluster.raft_id(victim);
    info!(victim, "--- lose the slot's volume");
    cluster.wipe(victim).await;
    assert_ne!(cluster.raft_id(victim), old_id, "an empty volume is a new incarnation");
    assert_eq!(
        cluster.status(victim).members.len(),
        0,
        "the new incarnation knows no cluster"
    );
    cluster.replace_voter(victim, old_id).await;
    let (after, revision) = register_user(&cluster, leader, "after-wipe").await;
    cluster.wait_applied(&[victim], revision).await;
    let members = cluster.status(leader).members;
    assert_eq!(members.iter().filter(|m| m.voter).count(), 7);
    assert!(members.iter().all(|m| m.raft_id != old_id));
    assert!(has_user(&cluster, victim, before).await);
    assert!(has_user(&cluster, victim, after).await);
    cluster.shutdown().await;
}

/// The store's error kind of a failed call.
fn error_kind(e: &agenda_tests::ClientError) -> Option<ErrorKind> {
    match e {
        agenda_tests::ClientError::Status(s) => ErrorKind::of(s),
        agenda_tests::ClientError::Decode(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_cut_off_from_the_leader_refuses_local_reads_until_it_hears_from_it_again() {
    let cluster = TestCluster::start(5).await;
    let leader = cluster.leader().await;
    let lagging = follower_of(leader, 5);
    let healthy = follower_of(lagging, 5);
    let (id, revision) = register_user(&cluster, leader, "fresh").await;
    cluster.wait_applied(&(0..5).collect::<Vec<_>>(), revision).await;
    assert!(
        has_user(&cluster, lagging, id).await,
        "a connected replica serves local reads"
    );

    info!(lagging, "--- cut one follower off; the others keep writing");
    cluster.isolate(lagging);
    let (late, _) = register_user(&cluster, leader, "late").await;
    let refused = eventually(
        "the cut-off replica refuses local reads",
        Duration::from_secs(20),
        || async {
            cluster
                .query(
                    lagging,
                    &Query::User(UserQuery { user_id: late }),
                    Consistency::Local,
                    0,
                )
                .await
                .err()
        },
    )
    .await;
    assert_eq!(refused.code(), Some(tonic::Code::Unavailable));
    assert_eq!(error_kind(&refused), Some(ErrorKind::StaleReplica));
    // A replica still in touch with the leader answers local reads, and has the write.
    assert!(has_user(&cluster, healthy, late).await);
    // Reads that wait for a revision are unaffected by the bound: they fail on their own
    // terms (the revision is not reached) rather than answering stale data.
    let (_, outcome) = cluster
        .query(
            lagging,
            &Query::User(UserQuery { user_id: id }),
            Consistency::MinRevision,
            revision,
        )
        .await
        .expect("an old revision is served");
    assert!(matches!(outcome, Ok(QueryResult::User { .. })));

    info!("--- reconnected, it catches up and serves local reads again");
    cluster.heal(lagging);
    eventually(
        "the reconnected replica serves the late write locally",
        Duration::from_secs(20),
        || async {
            let answer = cluster
                .query(
                    lagging,
                    &Query::User(UserQuery { user_id: late }),
                    Consistency::Local,
                    0,
                )
                .await;
            matches!(answer, Ok((_, Ok(QueryResult::User { .. })))).then_some(())
        },
    )
    .await;
    cluster.shutdown().await;
}
