//! Full disks: a store watches the free space of its data volume and acts before SQLite
//! meets `SQLITE_FULL` (which would stop its Raft core), like etcd's NOSPACE alarm.
//!
//! - **Low** (less than `MIN_FREE_MB` free): the alarm is raised (status, the API's
//!   cluster page and `/metrics`); the store takes no client write (callers go to
//!   another store) and, when it leads, hands leadership to another voter. Reads go on.
//! - **Critical** (less than half of that): it also refuses to append what the leader
//!   replicates, so its log never fills the disk; it is out of the quorum meanwhile.
//! - When space comes back the alarm clears by itself and the store catches up from the
//!   leader: nothing was written half-way, so nothing is lost or corrupted.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::ServerState;
use tokio_util::sync::CancellationToken;

use crate::node::StoreNode;

/// How often the free space is read.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

/// How full the data volume is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// Enough.
    Ok,
    /// Below the minimum: no client writes here.
    Low,
    /// Below half the minimum: no appends either.
    Critical,
}

/// The data volume's free space as last read, and the alarm it raises.
#[derive(Debug)]
pub struct DiskGuard {
    dir: PathBuf,
    min_free: u64,
    free: AtomicU64,
    alarm: Mutex<Option<String>>,
}

impl DiskGuard {
    /// Watch `dir`, wanting `min_free` bytes free.
    pub fn new(dir: PathBuf, min_free: u64) -> Self {
        Self {
            dir,
            min_free,
            free: AtomicU64::new(u64::MAX),
            alarm: Mutex::new(None),
        }
    }

    /// Bytes free when last read.
    pub fn free(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    /// The state of the volume when last read.
    pub fn space(&self) -> Space {
        classify(self.free(), self.min_free)
    }

    /// The alarm, while raised.
    pub fn alarm(&self) -> Option<String> {
        self.alarm.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Record a reading; returns the state before and after.
    fn record(&self, free: u64) -> (Space, Space) {
        let before = self.space();
        self.free.store(free, Ordering::Relaxed);
        let after = self.space();
        let alarm = (after != Space::Ok).then(|| {
            format!(
                "NOSPACE: {} MiB free on the data volume, below MIN_FREE_MB ({} MiB){}",
                free / (1024 * 1024),
                self.min_free / (1024 * 1024),
                if after == Space::Critical {
                    "; not taking writes nor appending the log until space is freed"
                } else {
                    "; not taking writes until space is freed"
                }
            )
        });
        *self.alarm.lock().unwrap_or_else(|p| p.into_inner()) = alarm;
        (before, after)
    }
}

fn classify(free: u64, min_free: u64) -> Space {
    if free < min_free / 2 {
        Space::Critical
    } else if free < min_free {
        Space::Low
    } else {
        Space::Ok
    }
}

/// Free bytes of the file system holding `dir`.
fn read_free(dir: &std::path::Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// A leader on a low volume tries to hand over at most this often.
const HAND_OVER_EVERY: Duration = Duration::from_secs(5);

/// Watch the volume until `stop`; a leader whose volume runs low hands over.
pub async fn run(node: StoreNode, stop: CancellationToken) {
    let mut last_hand_over: Option<tokio::time::Instant> = None;
    loop {
        let free = match node.faults.free_bytes(&node.name) {
            Some(f) => Ok(f),
            None => {
                let dir = node.disk.dir.clone();
                tokio::task::spawn_blocking(move || read_free(&dir))
                    .await
                    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            }
        };
        match free {
            Ok(free) => {
                let (before, after) = node.disk.record(free);
                if before != after {
                    match after {
                        Space::Ok => tracing::info!(free, "data volume has space again: alarm cleared"),
                        _ => tracing::error!(free, "{}", node.disk.alarm().unwrap_or_default()),
                    }
                }
                let (leads, others) = {
                    let m = node.raft.metrics().borrow().clone();
                    let others = m
                        .membership_config
                        .membership()
                        .voter_ids()
                        .any(|id| id != node.raft_id);
                    (m.state == ServerState::Leader, others)
                };
                let due = last_hand_over.is_none_or(|t| t.elapsed() >= HAND_OVER_EVERY);
                if after != Space::Ok && leads && others && due {
                    last_hand_over = Some(tokio::time::Instant::now());
                    tracing::warn!("this leader's volume is nearly full: handing leadership over");
                    if let Err(e) = node.transfer_leadership(None).await {
                        tracing::warn!(error = %e, "no hand-over; writes stay refused here");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the data volume's free space"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_the_minimum_is_low_below_half_is_critical_and_the_alarm_follows() {
        let guard = DiskGuard::new(PathBuf::from("."), 256 << 20);
        assert_eq!(guard.space(), Space::Ok);
        assert_eq!(guard.record(300 << 20), (Space::Ok, Space::Ok));
        assert_eq!(guard.alarm(), None);
        assert_eq!(guard.record(200 << 20), (Space::Ok, Space::Low));
        let alarm = guard.alarm().expect("raised");
        assert!(
            alarm.starts_with("NOSPACE: 200 MiB free") && alarm.contains("256 MiB"),
            "{alarm}"
        );
        assert_eq!(guard.record(100 << 20), (Space::Low, Space::Critical));
        assert!(guard.alarm().expect("raised").contains("nor appending"));
        assert_eq!(guard.record(1 << 30), (Space::Critical, Space::Ok));
        assert_eq!(guard.alarm(), None, "cleared by itself");
    }

    #[test]
    fn the_real_volume_can_be_read() {
        let dir = tempfile::tempdir().expect("dir");
        assert!(read_free(dir.path()).expect("statvfs") > 0);
    }
}
