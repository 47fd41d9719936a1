//! Snapshots as files: built as a page copy, streamed chunk by chunk into another store
//! (as openraft does between leader and follower), installed atomically; what a crash
//! leaves in `snapshots/` is cleared when the store opens again.

use std::io::SeekFrom;

use agenda_tests::machine::{HOUR, Machine};
use agenda_tests::requests::now_ms;
use consensus_svc::state::StateStore;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

#[tokio::test]
async fn a_snapshot_streams_from_its_file_into_another_store_in_chunks() {
    let mut leader = Machine::new();
    let alice = leader.user("alice").await;
    for k in 0..40 {
        let start = now_ms() + (k + 1) * HOUR;
        leader.book(alice, start, start + HOUR / 2).await.expect("book");
    }
    let mut built = leader
        .sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");
    // The data is the file under snapshots/, not a copy in memory.
    let path = built.snapshot.path().to_path_buf();
    assert!(path.starts_with(leader.sm.dir().join("snapshots")), "{path:?}");
    let size = std::fs::metadata(&path).expect("snapshot file").len();
    assert_eq!(built.snapshot.seek(SeekFrom::End(0)).await.expect("seek"), size);

    // A follower receives it 4 KiB at a time, at explicit offsets, as openraft sends it.
    let dir = TempDir::new().expect("dir");
    let mut follower = StateStore::open(dir.path()).expect("open");
    let mut receiving = follower.begin_receiving_snapshot().await.expect("begin");
    let mut offset = 0u64;
    let mut chunk = vec![0u8; 4096];
    while offset < size {
        built.snapshot.seek(SeekFrom::Start(offset)).await.expect("seek");
        let n = built.snapshot.read(&mut chunk).await.expect("read");
        assert!(n > 0, "short snapshot file at {offset}");
        receiving.seek(SeekFrom::Start(offset)).await.expect("seek");
        receiving.write_all(&chunk[..n]).await.expect("write");
        offset += n as u64;
    }
    receiving.shutdown().await.expect("flush");
    follower
        .install_snapshot(&built.meta, receiving)
        .await
        .expect("install");

    assert_eq!(
        follower.canonical_dump().await.expect("dump"),
        leader.sm.canonical_dump().await.expect("dump"),
        "the follower holds exactly the leader's state"
    );
    let current = follower
        .get_current_snapshot()
        .await
        .expect("current")
        .expect("a snapshot");
    assert_eq!(current.meta, built.meta);
    // Only the installed snapshot and its record are left: the received file was renamed.
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("snapshots"))
        .expect("snapshots dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(names[1], "current.json", "{names:?}");
    assert_eq!(current.snapshot.path().file_name().unwrap().to_string_lossy(), names[0]);
}

#[tokio::test]
async fn a_half_received_snapshot_is_cleared_when_the_store_opens_again() {
    let dir = TempDir::new().expect("dir");
    {
        let mut store = StateStore::open(dir.path()).expect("open");
        let mut receiving = store.begin_receiving_snapshot().await.expect("begin");
        receiving
            .write_all(b"SQLite format 3\0 and then the leader went away")
            .await
            .expect("write");
        receiving.shutdown().await.expect("flush");
        assert!(receiving.path().exists());
        // No install: the store stops here.
    }
    let store = StateStore::open(dir.path()).expect("reopen");
    let left: Vec<String> = std::fs::read_dir(store.dir().join("snapshots"))
        .expect("snapshots dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "leftovers: {left:?}");
}
