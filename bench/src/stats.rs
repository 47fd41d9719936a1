//! What one run measures: per-request latencies by kind, errors, and the summaries written
//! as JSON (percentiles from the sorted samples: exact, and cheap at these sample counts).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Error messages kept per kind and run.
const KEEP_ERRORS: usize = 5;

/// What one worker saw, merged into the run's totals when it stops.
#[derive(Debug, Default)]
pub(crate) struct Local {
    kinds: BTreeMap<&'static str, KindLocal>,
    /// Wall-clock time (Unix microseconds) of every success, when asked for
    /// ([`Local::recording_acks`]): what the failover measurement needs.
    acks_us: Option<Vec<u64>>,
}

#[derive(Debug, Default)]
struct KindLocal {
    latencies_us: Vec<u64>,
    errors: u64,
    samples: Vec<String>,
}

impl Local {
    /// A recorder that also keeps the wall-clock time of every success.
    pub(crate) fn recording_acks() -> Self {
        Self {
            acks_us: Some(Vec::new()),
            ..Self::default()
        }
    }

    /// A request of `kind` answered as expected after `elapsed`.
    pub(crate) fn ok(&mut self, kind: &'static str, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.kinds.entry(kind).or_default().latencies_us.push(us);
        if let Some(acks) = &mut self.acks_us {
            acks.push(unix_us(SystemTime::now()));
        }
    }

    /// A request of `kind` failed (transport error or unexpected status).
    pub(crate) fn error(&mut self, kind: &'static str, message: impl FnOnce() -> String) {
        let k = self.kinds.entry(kind).or_default();
        k.errors += 1;
        if k.samples.len() < KEEP_ERRORS {
            k.samples.push(message());
        }
    }

    /// Successful requests so far.
    pub(crate) fn successes(&self) -> u64 {
        self.kinds.values().map(|k| k.latencies_us.len() as u64).sum()
    }

    /// Failed requests so far.
    pub(crate) fn errors(&self) -> u64 {
        self.kinds.values().map(|k| k.errors).sum()
    }

    /// Fold `other` into `self`.
    pub(crate) fn merge(&mut self, other: Local) {
        if let Some(theirs) = other.acks_us {
            self.acks_us.get_or_insert_with(Vec::new).extend(theirs);
        }
        for (kind, k) in other.kinds {
            let mine = self.kinds.entry(kind).or_default();
            mine.latencies_us.extend(k.latencies_us);
            mine.errors += k.errors;
            for s in k.samples {
                if mine.samples.len() < KEEP_ERRORS {
                    mine.samples.push(s);
                }
            }
        }
    }

    /// The run's summary.
    pub(crate) fn summarise(self, concurrency: usize, elapsed: Duration, stopped_by: &str) -> LevelResult {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let mut all = Vec::new();
        let mut by_kind = BTreeMap::new();
        let mut errors = 0;
        let mut error_samples = Vec::new();
        for (kind, mut k) in self.kinds {
            all.extend_from_slice(&k.latencies_us);
            errors += k.errors;
            error_samples.extend(k.samples.iter().map(|s| format!("{kind}: {s}")));
            let latency = Latency::of(&mut k.latencies_us);
            by_kind.insert(
                kind.to_owned(),
                KindResult {
                    ok: latency.count,
                    errors: k.errors,
                    per_s: latency.count as f64 / secs,
                    latency,
                },
            );
        }
        let latency = Latency::of(&mut all);
        let mut acks_us = self.acks_us.unwrap_or_default();
        acks_us.sort_unstable();
        LevelResult {
            concurrency,
            elapsed_s: secs,
            stopped_by: stopped_by.to_owned(),
            ok: latency.count,
            errors,
            requests_per_s: latency.count as f64 / secs,
            latency,
            by_kind,
            error_samples,
            acks_us,
            push: None,
        }
    }
}

/// Microseconds since the Unix epoch (0 before it).
pub(crate) fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Latency percentiles of the successful requests, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Latency {
    pub(crate) count: u64,
    pub(crate) mean_ms: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

impl Latency {
    /// The percentiles of `samples_us` (microseconds; sorted in place).
    pub(crate) fn of(samples_us: &mut [u64]) -> Self {
        samples_us.sort_unstable();
        let ms = |us: u64| us as f64 / 1000.0;
        // Nearest-rank percentile: the smallest sample with at least q of them at or below.
        let pick = |q: f64| -> f64 {
            if samples_us.is_empty() {
                return 0.0;
            }
            let rank = (q * samples_us.len() as f64).ceil() as usize;
            ms(samples_us[rank.clamp(1, samples_us.len()) - 1])
        };
        let sum: u128 = samples_us.iter().map(|&v| u128::from(v)).sum();
        Self {
            count: samples_us.len() as u64,
            mean_ms: if samples_us.is_empty() {
                0.0
            } else {
                sum as f64 / samples_us.len() as f64 / 1000.0
            },
            p50_ms: pick(0.50),
            p95_ms: pick(0.95),
            p99_ms: pick(0.99),
            max_ms: samples_us.last().map_or(0.0, |&v| ms(v)),
        }
    }
}

/// One kind of request within a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KindResult {
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    pub(crate) per_s: f64,
    pub(crate) latency: Latency,
}

/// One run: a scenario at one concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LevelResult {
    pub(crate) concurrency: usize,
    pub(crate) elapsed_s: f64,
    /// `duration`, `max_requests` or `stop`.
    pub(crate) stopped_by: String,
    /// Successful requests.
    pub(crate) ok: u64,
    pub(crate) errors: u64,
    /// Successful requests per second.
    pub(crate) requests_per_s: f64,
    /// Over every successful request of the run.
    pub(crate) latency: Latency,
    pub(crate) by_kind: BTreeMap<String, KindResult>,
    pub(crate) error_samples: Vec<String>,
    /// Sorted wall-clock times of the successes, when recorded; not part of the JSON.
    #[serde(skip)]
    pub(crate) acks_us: Vec<u64>,
    /// What the `push` scenario measured (its requests above are the bookings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) push: Option<PushResult>,
}

/// The notifications of the `push` scenario: each acknowledged booking should reach every
/// listener of the writer's group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PushResult {
    /// Users booking (concurrently, closed loop).
    pub(crate) writers: usize,
    /// Users connected to `/ws`, spread over the writers' groups.
    pub(crate) listeners: usize,
    /// Acknowledged bookings.
    pub(crate) bookings: u64,
    /// Notifications the acknowledged bookings owed: each booking times the listeners of
    /// its group.
    pub(crate) expected: u64,
    /// Owed notifications that arrived (each counted once).
    pub(crate) delivered: u64,
    /// Owed notifications that had not arrived at the end of the grace period.
    pub(crate) missing: u64,
    /// Deliveries that arrived before the writer had its answer (counted as 0 ms).
    pub(crate) before_ack: u64,
    /// Notifications owed by no acknowledged booking (e.g. of a booking whose answer
    /// was lost), and repeats of a delivered one.
    pub(crate) unmatched: u64,
    /// Listener sockets that closed before the end.
    pub(crate) lost_listeners: u64,
    /// How long, after the last booking's answer, late notifications were awaited.
    pub(crate) grace_s: f64,
    /// Arrival at the listener minus the writer's answer, over the deliveries.
    pub(crate) latency: Latency,
}

/// A scenario at every concurrency: one JSON file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScenarioResult {
    /// `agenda` or `etcd`.
    pub(crate) system: String,
    /// `create`, `read`, `mixed` or `push` (agenda), `put` or `range` (etcd).
    pub(crate) scenario: String,
    pub(crate) description: String,
    /// Endpoints the requests were spread over.
    pub(crate) endpoints: usize,
    pub(crate) started_at: String,
    pub(crate) levels: Vec<LevelResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut local = Local::default();
        for ms in 1..=100u64 {
            local.ok("create", Duration::from_millis(ms));
        }
        local.error("create", || "boom".into());
        let level = local.summarise(4, Duration::from_secs(2), "duration");
        assert_eq!(level.ok, 100);
        assert_eq!(level.errors, 1);
        assert!((level.requests_per_s - 50.0).abs() < 1e-9);
        assert!((level.latency.p50_ms - 50.0).abs() < 1e-9);
        assert!((level.latency.p95_ms - 95.0).abs() < 1e-9);
        assert!((level.latency.p99_ms - 99.0).abs() < 1e-9);
        assert!((level.latency.max_ms - 100.0).abs() < 1e-9);
        assert!((level.latency.mean_ms - 50.5).abs() < 1e-9);
        assert_eq!(level.error_samples, vec!["create: boom".to_owned()]);
    }

    #[test]
    fn merging_keeps_every_sample_and_kind() {
        let mut a = Local::default();
        a.ok("read", Duration::from_millis(2));
        let mut b = Local::default();
        b.ok("read", Duration::from_millis(4));
        b.ok("accept", Duration::from_millis(8));
        a.merge(b);
        assert_eq!(a.successes(), 3);
        let level = a.summarise(2, Duration::from_secs(1), "max_requests");
        assert_eq!(level.by_kind["read"].ok, 2);
        assert_eq!(level.by_kind["accept"].ok, 1);
        assert!((level.by_kind["read"].latency.max_ms - 4.0).abs() < 1e-9);
    }

    #[test]
    fn acks_are_kept_only_when_asked_for_and_come_out_sorted() {
        let mut plain = Local::default();
        plain.ok("put", Duration::from_millis(1));
        assert!(
            plain
                .summarise(1, Duration::from_secs(1), "duration")
                .acks_us
                .is_empty()
        );

        let mut a = Local::recording_acks();
        let mut b = Local::recording_acks();
        b.ok("put", Duration::from_millis(1));
        a.ok("put", Duration::from_millis(1));
        a.error("put", || "refused".into());
        let mut total = Local::default();
        total.merge(a);
        total.merge(b);
        let level = total.summarise(2, Duration::from_secs(1), "duration");
        assert_eq!(level.acks_us.len(), 2, "one per success, none for the error");
        assert!(level.acks_us[0] <= level.acks_us[1]);
        let now = unix_us(SystemTime::now());
        assert!(level.acks_us.iter().all(|&t| t <= now && now - t < 60_000_000));
    }

    #[test]
    fn an_empty_run_has_zero_percentiles() {
        let level = Local::default().summarise(1, Duration::from_secs(1), "duration");
        assert_eq!(level.ok, 0);
        assert!(level.latency.p99_ms.abs() < 1e-9);
    }
}
