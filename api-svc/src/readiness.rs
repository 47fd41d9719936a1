//! The answer of `GET /readyz` (a store is reachable and knows a leader), worked out at
//! most once per [`READINESS_TTL`] and shared by every caller.
//!
//! `/readyz` needs no credentials, and working the answer out costs signed `Status` RPCs
//! to the stores (each filling their replay caches). Load balancers poll it every few
//! seconds; a flood of anonymous calls must not become a flood of store RPCs. So one caller
//! asks the stores while the others wait for its answer (single flight), and the answer
//! serves everybody for a second.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long one answer serves every caller.
pub const READINESS_TTL: Duration = Duration::from_secs(1);

/// A ready answer: the store that answered and the leader it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// The store's address.
    pub store: String,
    /// The leader's Raft id.
    pub leader_id: u64,
}

/// The latest readiness answer (`None`: not ready) and when it was worked out.
#[derive(Debug)]
pub struct Readiness {
    ttl: Duration,
    latest: Mutex<Option<(Instant, Option<Ready>)>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new(READINESS_TTL)
    }
}

impl Readiness {
    /// Answers kept for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            latest: Mutex::new(None),
        }
    }

    /// The latest answer if it is younger than the TTL, else the one `probe` works out.
    /// Callers arriving while a probe runs wait for it (the lock is fair) and take its
    /// answer; if the prober goes away (its request was cancelled), the next one probes.
    pub async fn get<F, Fut>(&self, probe: F) -> Option<Ready>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Option<Ready>>,
    {
        let mut latest = self.latest.lock().await;
        if let Some((at, answer)) = latest.as_ref()
            && at.elapsed() < self.ttl
        {
            return answer.clone();
        }
        let answer = probe().await;
        *latest = Some((Instant::now(), answer.clone()));
        answer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn ready(leader_id: u64) -> Option<Ready> {
        Some(Ready {
            store: "store-1:7000".into(),
            leader_id,
        })
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_probe() {
        let readiness = Arc::new(Readiness::new(Duration::from_secs(3600)));
        let probes = Arc::new(AtomicUsize::new(0));
        let probe = {
            let probes = probes.clone();
            move || {
                let probes = probes.clone();
                async move {
                    let n = probes.fetch_add(1, Ordering::SeqCst) as u64;
                    // A slow store: the other callers arrive while this one asks.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    ready(n)
                }
            }
        };
        let callers: Vec<_> = (0..100)
            .map(|_| {
                let (readiness, probe) = (readiness.clone(), probe.clone());
                tokio::spawn(async move { readiness.get(probe).await })
            })
            .collect();
        for caller in callers {
            assert_eq!(caller.await.unwrap(), ready(0));
        }
        assert_eq!(probes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn answers_ready_or_not_are_kept_for_the_ttl_only() {
        let kept = Readiness::new(Duration::from_secs(3600));
        assert_eq!(kept.get(|| async { None }).await, None);
        assert_eq!(
            kept.get(|| async { ready(7) }).await,
            None,
            "a not-ready answer is shared too"
        );
        let expired = Readiness::new(Duration::ZERO);
        assert_eq!(expired.get(|| async { None }).await, None);
        assert_eq!(expired.get(|| async { ready(7) }).await, ready(7));
    }
}
