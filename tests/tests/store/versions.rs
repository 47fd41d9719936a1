//! Versioned log entries in a mixed-version cluster: the leader batches commands into one
//! entry (format 2) only once every member applies format 2, and a store that meets an
//! entry of a format it does not apply stops applying (out of the quorum, with a clear
//! error) instead of diverging.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use agenda_shared::command::Accepted;
use agenda_shared::rpc::kind::ErrorKind;
use agenda_tests::requests::{register, request};
use agenda_tests::{TestCluster, eventually};
use futures::future::join_all;
use tracing::info;
use uuid::Uuid;

/// Register `n` users at once, spread over the running slots; every write must succeed.
/// Returns the ids and the highest revision.
async fn burst(cluster: &TestCluster, n: usize, tag: &str) -> (Vec<Uuid>, u64) {
    burst_via(cluster, &cluster.running(), n, tag).await
}

/// [`burst`] through the slots `running` only.
async fn burst_via(cluster: &TestCluster, running: &[usize], n: usize, tag: &str) -> (Vec<Uuid>, u64) {
    let writes = (0..n).map(|k| {
        let via = running[k % running.len()];
        let (id, cmd) = register(&format!("{tag}{k}"));
        async move {
            let result = cluster.execute(via, &request(None, cmd)).await.expect("register");
            assert!(
                matches!(result.outcome, Ok(Accepted::User { .. })),
                "{:?}",
                result.outcome
            );
            (id, result.revision)
        }
    });
    let done = join_all(writes).await;
    let top = done.iter().map(|(_, r)| *r).max().unwrap_or(0);
    (done.into_iter().map(|(id, _)| id).collect(), top)
}

/// Entries of many commands proposed so far by every running slot.
fn batches(cluster: &TestCluster) -> u64 {
    cluster
        .running()
        .into_iter()
        .map(|i| cluster.node(i).proposal_stats().batches.load(Ordering::Relaxed))
        .sum()
}

/// Bursts until some leader has proposed a batch (bounded).
async fn until_batched(cluster: &TestCluster, tag: &str) -> u64 {
    let before = batches(cluster);
    let mut top = 0;
    for round in 0..20 {
        let (_, revision) = burst(cluster, 48, &format!("{tag}{round}x")).await;
        top = top.max(revision);
        if batches(cluster) > before {
            return top;
        }
    }
    panic!("twenty bursts of 48 concurrent writes never produced one batch entry");
}

/// The users lines of slot `i`'s canonical dump.
async fn users(cluster: &TestCluster, i: usize) -> BTreeSet<String> {
    cluster
        .dump(i)
        .await
        .lines()
        .filter(|l| l.starts_with("users|"))
        .map(str::to_owned)
        .collect()
}

/// Wait until the leader writes `format` (it asks the members about once a second).
async fn cluster_format(cluster: &TestCluster, format: u32) {
    eventually(
        &format!("the leader writes entry format {format}"),
        Duration::from_secs(20),
        || async {
            let leader = cluster.leader().await;
            (cluster.status(leader).cluster_entry_format == Some(format)).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_wait_until_the_last_old_store_is_upgraded() {
    let mut cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let old = (leader + 1) % 3;
    info!(old, "--- one store goes back to the version without batches");
    cluster.stop(old).await;
    cluster.set_max_entry_format(old, Some(1));
    cluster.restart(old).await;
    cluster_format(&cluster, 1).await;
    let leader = cluster.leader().await;
    let seen = cluster
        .status(leader)
        .members
        .iter()
        .find(|m| m.node_name == cluster.name(old))
        .and_then(|m| m.max_entry_format);
    assert_eq!(seen, Some(1), "the leader shows what the old store applies");

    info!("--- concurrent writes in the mixed cluster: one command per entry");
    let before = batches(&cluster);
    let (ids, revision) = (async {
        let mut all = Vec::new();
        let mut top = 0;
        for round in 0..4 {
            let (ids, r) = burst(&cluster, 48, &format!("mixed{round}x")).await;
            all.extend(ids);
            top = top.max(r);
        }
        (all, top)
    })
    .await;
    assert_eq!(ids.len(), 192);
    assert_eq!(
        batches(&cluster),
        before,
        "no batch entry while a member applies format 1 only"
    );
    cluster.wait_applied(&[0, 1, 2], revision).await;
    assert_eq!(cluster.status(old).halted, None);
    assert_eq!(cluster.status(old).applied_entry_format, 1);

    info!("--- the old store is upgraded: the gate opens");
    cluster.stop(old).await;
    cluster.set_max_entry_format(old, None);
    cluster.restart(old).await;
    cluster_format(&cluster, 2).await;
    let revision = until_batched(&cluster, "upgraded").await;
    cluster.wait_applied(&[0, 1, 2], revision).await;
    let reference = cluster.dump(0).await;
    for i in 1..3 {
        assert_eq!(
            cluster.dump(i).await,
            reference,
            "slot {i} applied the batches differently"
        );
    }
    for i in 0..3 {
        assert_eq!(cluster.status(i).applied_entry_format, 2, "slot {i}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_that_meets_a_format_it_cannot_apply_halts_instead_of_diverging() {
    let mut cluster = TestCluster::start(3).await;
    cluster_format(&cluster, 2).await;
    until_batched(&cluster, "early").await;
    let leader = cluster.leader().await;
    let old = (leader + 1) % 3;
    info!(old, "--- a store is stopped, and comes back as an older version");
    cluster.stop(old).await;
    let revision = until_batched(&cluster, "while-down").await;
    let healthy: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    cluster.wait_applied(&healthy, revision).await;
    cluster.set_max_entry_format(old, Some(1));
    cluster.restart(old).await;

    let reason = eventually("the old store halts", Duration::from_secs(20), || async {
        cluster.status(old).halted
    })
    .await;
    assert!(
        reason.contains("entry format 2") && reason.contains("applies formats up to 1") && reason.contains("upgrade"),
        "{reason}"
    );
    let stuck = cluster.status(old).applied_index.unwrap_or(0);
    assert!(
        stuck < revision,
        "it applied {stuck}, past the entries it cannot read ({revision})"
    );

    info!("--- it sends writers elsewhere; the others keep writing, it applies nothing more");
    let refused = cluster
        .execute(old, &request(None, register("refused").1))
        .await
        .expect_err("a halted store takes no write");
    assert_eq!(refused.kind(), Some(ErrorKind::ShuttingDown), "{refused:?}");
    let (late, late_revision) = burst_via(&cluster, &healthy, 8, "late").await;
    cluster.wait_applied(&healthy, late_revision).await;
    assert_eq!(cluster.status(old).applied_index.unwrap_or(0), stuck);
    let mine = users(&cluster, old).await;
    let theirs = users(&cluster, healthy[0]).await;
    assert!(
        mine.is_subset(&theirs),
        "the halted store holds users the cluster does not"
    );
    assert!(mine.len() < theirs.len());

    info!("--- upgraded again, it catches up");
    cluster.stop(old).await;
    cluster.set_max_entry_format(old, None);
    cluster.restart(old).await;
    cluster.wait_applied(&[0, 1, 2], late_revision).await;
    assert_eq!(cluster.status(old).halted, None);
    assert_eq!(cluster.dump(old).await, cluster.dump(healthy[0]).await);
    for id in late {
        let line = users(&cluster, old).await;
        assert!(
            line.iter().any(|l| l.contains(&id.to_string())),
            "{id} missing after catch-up"
        );
    }
    cluster.shutdown().await;
}
