//! `agenda-bench`: drive a running Agenda cluster (or etcd, with the same client) at
//! several concurrencies and report throughput and latency percentiles.
//!
//! See [`USAGE`]. Each run is closed-loop (every virtual user waits for its answer before
//! the next request), bounded by a duration and a request count, and stops by itself.
//! `scripts/bench.sh` runs the whole comparison and writes `docs/benchmarks.md`.
//!
//! Modules: `cli` (the command line), `driver` (the closed loop), `client` (requests to an
//! Agenda cluster), `agenda`, `push` (+ `deliveries`) and `etcd` (the workloads), `stats`
//! (what a run measured, as JSON), `report`, `chart` and `failover` (what is made of it).

mod agenda;
mod chart;
mod cli;
mod client;
mod deliveries;
mod driver;
mod etcd;
mod failover;
mod push;
mod report;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::agenda::{Agenda, Mix, Scenario};
use crate::cli::{Cmd, Common, USAGE, parse};
use crate::driver::{Bounds, Workload, run_level};
use crate::etcd::{Etcd, EtcdScenario};
use crate::push::Push;
use crate::stats::ScenarioResult;

/// Run `workload` at every concurrency of `common`, printing one line per run.
async fn run_levels<W: Workload>(workload: Arc<W>, name: &str, common: &Common) -> Vec<stats::LevelResult> {
    let bounds = Bounds {
        duration: common.duration,
        max_requests: common.max_requests,
        record_acks: common.acks.is_some(),
        stop: Arc::default(),
    };
    if let Some(path) = common.stop_file.clone() {
        let stop = bounds.stop.clone();
        tokio::spawn(async move {
            while !path.exists() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    let mut levels = Vec::new();
    for (i, &c) in common.concurrency.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(common.pause).await;
        }
        let level = run_level(workload.clone(), c, bounds.clone()).await;
        eprintln!(
            "{name:>14} users={c:<4} {:>8.0} req/s  p50={:>7.1}ms p95={:>7.1}ms p99={:>7.1}ms max={:>7.1}ms  ok={} errors={}",
            level.requests_per_s,
            level.latency.p50_ms,
            level.latency.p95_ms,
            level.latency.p99_ms,
            level.latency.max_ms,
            level.ok,
            level.errors
        );
        for sample in level.error_samples.iter().take(3) {
            eprintln!("{:>14}   error: {sample}", "");
        }
        levels.push(level);
    }
    if let Some(path) = &common.acks {
        let mut acks: Vec<u64> = levels.iter().flat_map(|l| l.acks_us.iter().copied()).collect();
        acks.sort_unstable();
        let text: String = acks.iter().map(|t| format!("{t}\n")).collect();
        match std::fs::write(path, text) {
            Ok(()) => eprintln!("wrote {} acknowledgement times to {}", acks.len(), path.display()),
            Err(e) => eprintln!("could not write {}: {e}", path.display()),
        }
    }
    levels
}

/// The `push` scenario: its own users, one run with its writers and listeners.
async fn run_push(api: &[String], settings: push::PushSettings, common: &Common) -> anyhow::Result<ScenarioResult> {
    let push = Push::set_up(api.to_vec(), settings, common.timeout).await?;
    let started_at = now();
    let level = push.run(common.duration, common.max_requests).await?;
    if let Some(p) = &level.push {
        eprintln!(
            "{:>14} writers={} listeners={} {:.0} bookings/s  push p50={:.1}ms p95={:.1}ms p99={:.1}ms \
             max={:.1}ms  delivered={}/{} missing={} before-ack={} unmatched={} lost-sockets={} booking-errors={}",
            "agenda push",
            p.writers,
            p.listeners,
            level.requests_per_s,
            p.latency.p50_ms,
            p.latency.p95_ms,
            p.latency.p99_ms,
            p.latency.max_ms,
            p.delivered,
            p.expected,
            p.missing,
            p.before_ack,
            p.unmatched,
            p.lost_listeners,
            level.errors
        );
    }
    for sample in level.error_samples.iter().take(3) {
        eprintln!("{:>14}   error: {sample}", "");
    }
    Ok(ScenarioResult {
        system: "agenda".into(),
        scenario: "push".into(),
        description: settings.describe(),
        endpoints: api.len(),
        started_at,
        levels: vec![level],
    })
}

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

fn write(dir: &std::path::Path, result: &ScenarioResult) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join(format!("{}-{}.json", result.system, result.scenario));
    std::fs::write(&path, serde_json::to_vec_pretty(result)?).with_context(|| format!("write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

fn read_results(inputs: &[PathBuf]) -> anyhow::Result<Vec<ScenarioResult>> {
    inputs
        .iter()
        .map(|p| {
            let bytes = std::fs::read(p).with_context(|| format!("read {}", p.display()))?;
            serde_json::from_slice(&bytes).with_context(|| format!("{} is not a result file", p.display()))
        })
        .collect()
}

async fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Agenda {
            api,
            scenarios,
            mix,
            push,
            common,
        } => {
            let out = common.out.clone().unwrap_or_default();
            let mut agenda = None;
            for name in scenarios {
                if name == "push" {
                    let result = run_push(&api, push, &common).await?;
                    write(&out, &result)?;
                    tokio::time::sleep(common.pause).await;
                    continue;
                }
                let agenda = match &agenda {
                    Some(agenda) => Arc::clone(agenda),
                    None => {
                        let users = common.concurrency.iter().copied().max().unwrap_or(1);
                        let set_up = Agenda::set_up(api.clone(), users, common.timeout).await?;
                        eprintln!("{} users ready on {} slots", set_up.user_count(), api.len());
                        agenda.insert(set_up).clone()
                    }
                };
                let (scenario_mix, description) = match name.as_str() {
                    "create" => (
                        Mix::parse("create=1").map_err(anyhow::Error::msg)?,
                        "Each user books personal appointments back to back (`POST /api/appointments`)."
                            .to_owned(),
                    ),
                    "read" => (
                        Mix::parse("read=1").map_err(anyhow::Error::msg)?,
                        "Each user reads their week (`GET /api/agenda`, linearizable: the slot's store gets a read index from the leader, then reads locally)."
                            .to_owned(),
                    ),
                    _ => (
                        mix,
                        format!(
                            "Operations drawn at random with weights {}; a group booking is one \
                             `POST /api/appointments` for a group of four, then an accept by each \
                             of the three others on their own slots.",
                            mix.describe()
                        ),
                    ),
                };
                let scenario = Arc::new(Scenario {
                    agenda,
                    mix: scenario_mix,
                });
                let started_at = now();
                let levels = run_levels(scenario, &format!("agenda {name}"), &common).await;
                write(
                    &out,
                    &ScenarioResult {
                        system: "agenda".into(),
                        scenario: name,
                        description,
                        endpoints: api.len(),
                        started_at,
                        levels,
                    },
                )?;
                tokio::time::sleep(common.pause).await;
            }
            Ok(())
        }
        Cmd::Etcd {
            endpoints,
            scenarios,
            value_size,
            common,
        } => {
            let etcd = Arc::new(Etcd::new(endpoints.clone(), value_size, common.timeout).await?);
            for (i, kind) in scenarios.into_iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(common.pause).await;
                }
                let description = match kind {
                    EtcdScenario::Put => {
                        format!("Each user writes fresh keys with {value_size}-byte values (`POST /v3/kv/put`).")
                    }
                    EtcdScenario::Range => {
                        let readers = common.concurrency.iter().copied().max().unwrap_or(1);
                        etcd.write_read_keys(readers).await?;
                        format!(
                            "Each user reads one of the {} keys ({value_size}-byte values) it wrote in a \
                             warm-up through its own member (`POST /v3/kv/range`, `serializable: false`, \
                             etcd's default, i.e. linearizable: the member gets a read index from the \
                             leader, then reads locally).",
                            etcd::KEYS_PER_READER
                        )
                    }
                };
                let scenario = Arc::new(etcd::Scenario {
                    etcd: etcd.clone(),
                    kind,
                });
                let started_at = now();
                let levels = run_levels(scenario, &format!("etcd {}", kind.name()), &common).await;
                write(
                    &common.out.clone().unwrap_or_default(),
                    &ScenarioResult {
                        system: "etcd".into(),
                        scenario: kind.name().into(),
                        description,
                        endpoints: endpoints.len(),
                        started_at,
                        levels,
                    },
                )?;
            }
            Ok(())
        }
        Cmd::Chart { out, font, inputs } => {
            let results = read_results(&inputs)?;
            chart::draw(&results, &out, &font)?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Cmd::Report { inputs } => {
            print!("{}", report::markdown(&read_results(&inputs)?));
            Ok(())
        }
        Cmd::Failover { runs } => {
            print!("{}", failover::report_dirs(&runs)?);
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cmd = match parse(std::env::args().skip(1).collect()) {
        Ok(cmd) => cmd,
        Err(e) => {
            if e.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("agenda-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agenda-bench: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agenda-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
