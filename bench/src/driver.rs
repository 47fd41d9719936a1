//! The closed-loop driver: `concurrency` workers, each issuing one operation after the
//! other, until the duration passes or the request budget is spent. Every request has its
//! own timeout (in the workload's HTTP client), so a run always ends. A worker whose
//! operation failed rests [`REST_AFTER_ERROR`] before the next, so a worker whose endpoint
//! is down (a failover measurement kills it on purpose) does not spin on refused
//! connections and starve the others of CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::stats::{LevelResult, Local};

/// The pause after a failed operation.
const REST_AFTER_ERROR: Duration = Duration::from_millis(20);

/// Something the driver can run: one operation (one or more requests) per call.
pub(crate) trait Workload: Send + Sync + 'static {
    /// Run one operation as worker `worker`, recording each request in `rec`.
    fn op(&self, worker: usize, rec: &mut Local) -> impl Future<Output = ()> + Send;
}

/// Bounds of one run.
#[derive(Debug, Clone)]
pub(crate) struct Bounds {
    pub(crate) duration: Duration,
    /// Requests (successful or not) after which no new operation starts.
    pub(crate) max_requests: u64,
    /// Keep the wall-clock time of every success ([`crate::stats::LevelResult::acks_us`]).
    pub(crate) record_acks: bool,
    /// Once set, no new operation starts (`--stop-file`, see main.rs): the failover
    /// measurement runs its load until its faults are done.
    pub(crate) stop: Arc<AtomicBool>,
}

/// Run `workload` with `concurrency` workers within `bounds`.
pub(crate) async fn run_level<W: Workload>(workload: Arc<W>, concurrency: usize, bounds: Bounds) -> LevelResult {
    let started = Instant::now();
    let deadline = started + bounds.duration;
    let issued = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let workload = workload.clone();
        let issued = issued.clone();
        let max = bounds.max_requests;
        let stop = bounds.stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut local = if bounds.record_acks {
                Local::recording_acks()
            } else {
                Local::default()
            };
            let mut last = 0;
            while Instant::now() < deadline && !stop.load(Ordering::Relaxed) && issued.load(Ordering::Relaxed) < max {
                let errors_before = local.errors();
                workload.op(worker, &mut local).await;
                // Count what this operation sent (successes and errors) against the budget.
                let now = local.successes() + local.errors();
                issued.fetch_add(now - last, Ordering::Relaxed);
                last = now;
                if local.errors() > errors_before {
                    tokio::time::sleep(REST_AFTER_ERROR).await;
                }
            }
            local
        }));
    }
    let mut total = Local::default();
    for task in tasks {
        match task.await {
            Ok(local) => total.merge(local),
            Err(e) => total.error("worker", || format!("worker task failed: {e}")),
        }
    }
    let elapsed = started.elapsed();
    let stopped_by = if issued.load(Ordering::Relaxed) >= bounds.max_requests {
        "max_requests"
    } else if bounds.stop.load(Ordering::Relaxed) {
        "stop"
    } else {
        "duration"
    };
    total.summarise(concurrency, elapsed, stopped_by)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sleepy;

    impl Workload for Sleepy {
        async fn op(&self, worker: usize, rec: &mut Local) {
            tokio::time::sleep(Duration::from_millis(1)).await;
            if worker == 0 {
                rec.error("nap", || "worker 0 always fails".into());
            } else {
                rec.ok("nap", Duration::from_millis(1));
            }
        }
    }

    #[tokio::test]
    async fn the_request_budget_stops_a_run() {
        let bounds = Bounds {
            duration: Duration::from_secs(60),
            max_requests: 40,
            record_acks: false,
            stop: Arc::default(),
        };
        let level = run_level(Arc::new(Sleepy), 4, bounds).await;
        assert_eq!(level.stopped_by, "max_requests");
        // Each worker may finish the operation it started: at most one per worker over.
        let sent = level.ok + level.errors;
        assert!((40..=44).contains(&sent), "sent {sent}");
        assert!(level.errors > 0 && level.ok > level.errors);
        assert!(
            (1..=5).contains(&level.error_samples.len()),
            "{:?}",
            level.error_samples
        );
    }

    #[tokio::test]
    async fn the_duration_stops_a_run() {
        let bounds = Bounds {
            duration: Duration::from_millis(50),
            max_requests: u64::MAX,
            record_acks: true,
            stop: Arc::default(),
        };
        let level = run_level(Arc::new(Sleepy), 2, bounds).await;
        assert_eq!(level.stopped_by, "duration");
        assert!(level.ok > 0);
        assert!(level.elapsed_s < 30.0);
        assert_eq!(level.acks_us.len() as u64, level.ok, "every success has its time");
    }

    struct Refused;

    impl Workload for Refused {
        async fn op(&self, _worker: usize, rec: &mut Local) {
            rec.error("put", || "connection refused".into());
        }
    }

    #[tokio::test]
    async fn a_worker_whose_requests_fail_rests_instead_of_spinning() {
        let bounds = Bounds {
            duration: Duration::from_millis(200),
            max_requests: u64::MAX,
            record_acks: false,
            stop: Arc::default(),
        };
        let level = run_level(Arc::new(Refused), 2, bounds).await;
        // 200 ms / 20 ms rest = 10 tries per worker at most (one more for the last).
        assert!(
            (1..=2 * 11).contains(&level.errors),
            "{} failed tries in 200 ms",
            level.errors
        );
    }

    #[tokio::test]
    async fn the_stop_flag_ends_a_run_before_its_duration() {
        let stop = Arc::new(AtomicBool::new(false));
        let bounds = Bounds {
            duration: Duration::from_secs(600),
            max_requests: u64::MAX,
            record_acks: false,
            stop: stop.clone(),
        };
        let run = tokio::spawn(run_level(Arc::new(Sleepy), 2, bounds));
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.store(true, Ordering::Relaxed);
        let level = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("the run ended once stopped")
            .expect("the run did not panic");
        assert_eq!(level.stopped_by, "stop");
        assert!(level.ok > 0);
    }
}
