//! Online backup and restore: a copy taken from a follower while writes go on holds every
//! write acknowledged at or below its revision and none above; a new cluster seeded with
//! it starts at that revision with a new cluster id and serves the same agenda; damaged
//! or truncated files are refused with a clear message.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agenda_shared::command::Accepted;
use agenda_shared::proto::Consistency;
use agenda_shared::query::{CredentialsQuery, Query, QueryResult, UserQuery};
use agenda_tests::TestCluster;
use agenda_tests::requests::{register, request};
use consensus_svc::backup;
use tracing::info;
use uuid::Uuid;

async fn has_user(cluster: &TestCluster, i: usize, id: Uuid) -> bool {
    let (_, outcome) = cluster
        .query(i, &Query::User(UserQuery { user_id: id }), Consistency::Linearizable, 0)
        .await
        .expect("query");
    matches!(outcome, Ok(QueryResult::User { user }) if user.id == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_under_writes_restores_every_acknowledged_write_up_to_its_revision() {
    let cluster = Arc::new(TestCluster::start(3).await);
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    // Derived from the cluster's first entry, once applied.
    let original_id = agenda_tests::eventually("the cluster's id", Duration::from_secs(20), || async {
        cluster.status(leader).cluster_id
    })
    .await;

    info!("--- a bounded writer, through every store");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (cluster, stop) = (cluster.clone(), stop.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for k in 0..400 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (id, cmd) = register(&format!("user{k}"));
                let result = cluster.execute(k % 3, &request(None, cmd)).await.expect("register");
                assert!(matches!(result.outcome, Ok(Accepted::User { .. })));
                acked.push((id, result.revision));
            }
            acked
        })
    };
    // Let some writes land first.
    agenda_tests::eventually("writes under way", Duration::from_secs(20), || async {
        (cluster.status(leader).applied_index.unwrap_or(0) > 60).then_some(())
    })
    .await;

    info!(follower, "--- backup from a follower, while writing");
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("agenda.backup");
    let header = consensus_svc::cli::download(cluster.admin(follower), &file)
        .await
        .expect("backup");
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.expect("writer");
    assert_eq!(header.node, cluster.name(follower));
    assert_eq!(header.cluster_id.as_deref(), Some(original_id.as_str()));
    let before: Vec<Uuid> = acked
        .iter()
        .filter(|(_, r)| *r <= header.revision)
        .map(|(id, _)| *id)
        .collect();
    let after: Vec<Uuid> = acked
        .iter()
        .filter(|(_, r)| *r > header.revision)
        .map(|(id, _)| *id)
        .collect();
    assert!(
        before.len() > 10,
        "the backup holds writes: {} before, {} after",
        before.len(),
        after.len()
    );
    assert!(!after.is_empty(), "writes went on after the copy was taken");
    assert_eq!(backup::verify(&file).expect("verifies"), header);

    info!(revision = header.revision, "--- restore into a new cluster");
    let restored = TestCluster::start_seeded(|data, addr| {
        let made = backup::restore(&file, data, "agenda-1", addr).expect("restore");
        assert_eq!(made.header.revision, header.revision);
    })
    .await;
    let status = restored.status(0);
    assert!(status.applied_index.unwrap_or(0) >= header.revision);
    let new_id = status.cluster_id.expect("the restored cluster has an id");
    assert_ne!(new_id, original_id, "a restored cluster is a new cluster");
    for id in &before {
        assert!(
            has_user(&restored, 0, *id).await,
            "{id}, acknowledged before the backup, is missing"
        );
    }
    for id in &after {
        assert!(
            !has_user(&restored, 0, *id).await,
            "{id}, written after the backup, is there"
        );
    }
    // The login material came with the users.
    let (_, creds) = restored
        .query(
            0,
            &Query::Credentials(CredentialsQuery { login: "user0".into() }),
            Consistency::Linearizable,
            0,
        )
        .await
        .expect("query");
    assert!(matches!(creds, Ok(QueryResult::Credentials { .. })), "{creds:?}");

    info!("--- the restored cluster takes writes after the backup's revision");
    let (late, cmd) = register("after-restore");
    let result = restored.execute(0, &request(None, cmd)).await.expect("write");
    assert!(result.revision > header.revision);
    assert!(has_user(&restored, 0, late).await);
    restored.shutdown().await;
    Arc::try_unwrap(cluster).ok().expect("one owner").shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn damaged_and_truncated_backups_are_refused_by_verify_and_restore() {
    let cluster = TestCluster::start(1).await;
    for k in 0..5 {
        let (_, cmd) = register(&format!("user{k}"));
        cluster.execute(0, &request(None, cmd)).await.expect("register");
    }
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("good.backup");
    consensus_svc::cli::download(cluster.admin(0), &good)
        .await
        .expect("backup");
    let bytes = std::fs::read(&good).expect("read");

    let flipped = dir.path().join("flipped.backup");
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    std::fs::write(&flipped, &damaged).expect("write");
    let err = backup::verify(&flipped).expect_err("a flipped byte").to_string();
    assert!(err.contains("checksum"), "{err}");

    let short = dir.path().join("short.backup");
    std::fs::write(&short, &bytes[..bytes.len() - 5000]).expect("write");
    let err = backup::verify(&short).expect_err("truncated").to_string();
    assert!(err.contains("truncated"), "{err}");

    let not = dir.path().join("not.backup");
    std::fs::write(&not, b"hello\n").expect("write");
    let err = backup::verify(&not).expect_err("not a backup").to_string();
    assert!(err.contains("AGENDA-BACKUP"), "{err}");

    for bad in [&flipped, &short] {
        let target = dir.path().join("restore-here");
        let err = backup::restore(bad, &target, "agenda-1", "127.0.0.1:1")
            .expect_err("refused")
            .to_string();
        assert!(err.contains("not a usable backup"), "{err}");
        assert!(
            !target.join("state.db").exists() && !target.join("log.db").exists(),
            "nothing written"
        );
    }
    let occupied = dir.path().join("occupied");
    backup::restore(&good, &occupied, "agenda-1", "127.0.0.1:1").expect("a good backup restores");
    let err = backup::restore(&good, &occupied, "agenda-1", "127.0.0.1:1")
        .expect_err("never over a store")
        .to_string();
    assert!(err.contains("already holds a store"), "{err}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_leader_takes_automatic_backups_from_a_follower_and_keeps_the_newest() {
    let cluster = TestCluster::start_with_backups(3, Duration::from_millis(400), 2).await;
    let mut top = 0;
    for k in 0..10 {
        let (_, cmd) = register(&format!("user{k}"));
        top = cluster
            .execute(k % 3, &request(None, cmd))
            .await
            .expect("register")
            .revision;
    }
    let leader = cluster.leader().await;
    agenda_tests::eventually("three automatic backups", Duration::from_secs(30), || async {
        (cluster.node(leader).backups_taken() >= 3).then_some(())
    })
    .await;
    for i in (0..3).filter(|&i| i != leader) {
        assert_eq!(
            cluster.node(i).backups_taken(),
            0,
            "only the leader takes them (slot {i})"
        );
    }
    let files: Vec<_> = std::fs::read_dir(cluster.backup_dir(leader))
        .expect("the leader's backup folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "backup"))
        .collect();
    assert!(!files.is_empty() && files.len() <= 2, "BACKUP_KEEP=2 kept {files:?}");
    let newest = files
        .iter()
        .map(|f| backup::verify(f).expect("each verifies"))
        .max_by_key(|h| h.revision);
    let newest = newest.expect("a backup");
    assert!(
        newest.revision >= top,
        "the newest backup holds every acknowledged write"
    );
    assert_ne!(newest.node, cluster.name(leader), "copied from a follower");
    cluster.shutdown().await;
}
