//! `writer`: keep creating appointments through every slot while the script breaks
//! things (kills the leader's store, rolls the API service), then prove nothing was lost.
//!
//! Each appointment gets its own half-hour (back to back, so no two overlap and a retry
//! can never be mistaken for a double booking) and its own `Idempotency-Key`, kept across
//! retries: a request whose answer was lost is retried on the next slot and the store
//! answers the recorded outcome instead of booking twice. A request *fails* when it gets
//! a final answer other than 201, or no final answer within the retry budget.
//!
//! After writing, every acknowledged appointment must be listed (linearizable read), and
//! nothing beyond the acknowledged plus the failed ones may exist. Each worker writes as
//! a user of its own (a user may hold 10,000 appointments that have not ended).

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::api::{Api, Call};
use crate::args::WriterOptions;
use crate::cluster::probe_token;
use crate::report::Report;

/// Length of (and distance between) two appointments.
const STEP_MINUTES: i64 = 30;
/// A listing window, under the API's 366-day cap.
const WINDOW_STEPS: u64 = 300 * 24 * 2;
/// Failure messages kept for the summary.
const KEEP_FAILURES: usize = 20;

/// What the workers record.
#[derive(Debug, Default)]
struct Stats {
    ok: u64,
    failed: u64,
    /// Requests that needed more than one attempt but succeeded.
    retried: u64,
    attempts: u64,
    latencies_ms: Vec<u64>,
    /// Completion times of successes, ms since the start.
    done_at_ms: Vec<u64>,
    per_slot_ok: BTreeMap<String, u64>,
    acknowledged: HashSet<String>,
    failures: Vec<String>,
}

fn rfc3339(t: OffsetDateTime) -> anyhow::Result<String> {
    t.format(&Rfc3339).context("format a time")
}

/// Stop when the duration has passed or on SIGTERM/SIGINT (`docker stop`).
async fn stop_after(duration: Duration, stop: watch::Sender<bool>, report: &Report) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = tokio::time::sleep(duration) => report.note("duration reached; finishing in-flight requests"),
        () = terminated => report.note("SIGTERM: finishing in-flight requests"),
        _ = tokio::signal::ctrl_c() => report.note("SIGINT: finishing in-flight requests"),
    }
    let _ = stop.send(true);
}

/// One worker: write until told to stop.
async fn work(
    api: &Api,
    token: &str,
    base: OffsetDateTime,
    next: &AtomicU64,
    stop: watch::Receiver<bool>,
    stats: &Mutex<Stats>,
    started: Instant,
) -> anyhow::Result<()> {
    while !*stop.borrow() {
        let seq = next.fetch_add(1, Ordering::Relaxed);
        let start = base + time::Duration::minutes(STEP_MINUTES * i64::try_from(seq)?);
        let body = json!({
            "title": format!("w-{seq}"),
            "start_time": rfc3339(start)?,
            "end_time": rfc3339(start + time::Duration::minutes(STEP_MINUTES))?,
        });
        let slot = usize::try_from(seq)? % api.len();
        let outcome = api
            .call(&Call::post("/api/appointments", body).token(token), slot)
            .await;
        let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(reply) if reply.status == 201 => {
                s.ok += 1;
                s.attempts += u64::from(reply.attempts);
                if reply.attempts > 1 {
                    s.retried += 1;
                }
                s.latencies_ms
                    .push(u64::try_from(reply.elapsed.as_millis()).unwrap_or(u64::MAX));
                s.done_at_ms
                    .push(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
                *s.per_slot_ok.entry(api.name(reply.slot).to_owned()).or_default() += 1;
                if let Some(id) = reply.body["id"].as_str() {
                    s.acknowledged.insert(id.to_owned());
                }
            }
            Ok(reply) => {
                s.failed += 1;
                s.attempts += u64::from(reply.attempts);
                if s.failures.len() < KEEP_FAILURES {
                    let line = format!(
                        "w-{seq}: {} answered {} {}",
                        api.name(reply.slot),
                        reply.status,
                        crate::api::short(&reply.body)
                    );
                    s.failures.push(line);
                }
            }
            Err(e) => {
                s.failed += 1;
                s.attempts += u64::from(e.attempts);
                if s.failures.len() < KEEP_FAILURES {
                    s.failures.push(format!("w-{seq}: {e}"));
                }
            }
        }
    }
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // Nearest rank; the index is within bounds by construction.
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Every appointment of the writer user in `[base, base + steps × 30 min)`, by id: each
/// range window page by page (`next_cursor`), as a listing is answered in bounded pages.
async fn list_all(api: &Api, token: &str, base: OffsetDateTime, steps: u64) -> anyhow::Result<HashSet<String>> {
    let mut ids = HashSet::new();
    let mut from = 0u64;
    while from < steps {
        let to = (from + WINDOW_STEPS).min(steps);
        let start = base + time::Duration::minutes(STEP_MINUTES * i64::try_from(from)?);
        let end = base + time::Duration::minutes(STEP_MINUTES * i64::try_from(to)?);
        let window = format!("/api/appointments?start={}&end={}", rfc3339(start)?, rfc3339(end)?);
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("{window}&cursor={c}"),
                None => window.clone(),
            };
            let page = api
                .call(&Call::get(path).token(token), 0)
                .await?
                .expect(200)
                .context("list the written appointments")?;
            for a in page["appointments"].as_array().context("appointments")? {
                if let Some(id) = a["id"].as_str() {
                    ids.insert(id.to_owned());
                }
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        from = to;
    }
    Ok(ids)
}

/// The mode: write, verify, print one JSON summary line; fail on any lost or failed write.
pub(crate) async fn run(api: &Api, options: &WriterOptions) -> anyhow::Result<()> {
    let report = Report::new("writer");
    report.phase(&format!(
        "writing through {} slots for up to {:?} with {} workers",
        api.len(),
        options.duration,
        options.concurrency
    ));
    // One user per worker: a fast run writes more than one user's quota of appointments
    // that have not ended (10,000) would allow.
    let mut tokens = Vec::with_capacity(options.concurrency);
    for _ in 0..options.concurrency {
        tokens.push(probe_token(api, "writer").await?);
    }
    let base = OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT) + time::Duration::days(2);
    let next = AtomicU64::new(0);
    let stats = Mutex::new(Stats::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let workers = futures::future::try_join_all(
        tokens
            .iter()
            .map(|token| work(api, token, base, &next, stop_rx.clone(), &stats, started)),
    );
    let (_, written) = tokio::join!(stop_after(options.duration, stop_tx, &report), workers);
    written?;
    let elapsed = started.elapsed();
    let mut s = stats.into_inner().unwrap_or_else(|p| p.into_inner());
    let issued = next.load(Ordering::Relaxed);
    report.note(&format!(
        "{} acknowledged, {} failed in {:.1}s; verifying",
        s.ok,
        s.failed,
        elapsed.as_secs_f64()
    ));
    let mut listed: anyhow::Result<HashSet<String>> = Ok(HashSet::new());
    for token in &tokens {
        match list_all(api, token, base, issued).await {
            Ok(ids) => {
                if let Ok(all) = listed.as_mut() {
                    all.extend(ids);
                }
            }
            Err(e) => {
                listed = Err(e);
                break;
            }
        }
    }
    let (verified, listed_count, missing) = match &listed {
        Ok(ids) => {
            let missing: Vec<&String> = s.acknowledged.iter().filter(|id| !ids.contains(*id)).collect();
            let extra_ok = ids.len() as u64 <= s.ok + s.failed;
            (missing.is_empty() && extra_ok, ids.len(), missing.len())
        }
        Err(_) => (false, 0, 0),
    };
    s.latencies_ms.sort_unstable();
    s.done_at_ms.sort_unstable();
    let max_gap_ms = s.done_at_ms.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    let summary: Value = json!({
        "mode": "writer",
        "seconds": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        "ok": s.ok,
        "failed": s.failed,
        "retried": s.retried,
        "attempts": s.attempts,
        "writes_per_second": if elapsed.as_secs_f64() > 0.0 { (s.ok as f64 / elapsed.as_secs_f64() * 10.0).round() / 10.0 } else { 0.0 },
        "latency_ms": {
            "p50": percentile(&s.latencies_ms, 0.5),
            "p99": percentile(&s.latencies_ms, 0.99),
            "max": s.latencies_ms.last().copied().unwrap_or(0),
        },
        "longest_gap_between_successes_ms": max_gap_ms,
        "per_slot_ok": s.per_slot_ok,
        "listed": listed_count,
        "missing_acknowledged": missing,
        "verified": verified,
        "failures": s.failures,
    });
    println!("{summary}");
    if let Err(e) = listed {
        bail!("could not list the written appointments: {e:#}");
    }
    if s.failed > 0 {
        bail!("{} of {} requests failed definitively", s.failed, s.ok + s.failed);
    }
    if !verified {
        bail!(
            "verification failed: {missing} acknowledged appointments missing, {listed_count} listed for {} acknowledged",
            s.ok
        );
    }
    if s.ok == 0 {
        bail!("nothing was written");
    }
    if options.every_api {
        let idle: Vec<&str> = (0..api.len())
            .map(|i| api.name(i))
            .filter(|name| !s.per_slot_ok.contains_key(*name))
            .collect();
        if !idle.is_empty() {
            bail!("no write was acknowledged through {}", idle.join(", "));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[7], 0.99), 7);
    }
}
