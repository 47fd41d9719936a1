//! `agenda-bench`: drive a running Agenda cluster (or etcd, with the same client) at
//! several concurrencies and report throughput and latency percentiles.
//!
//! See [`USAGE`]. Each run is closed-loop (every virtual user waits for its answer before
//! the next request), bounded by a duration and a request count, and stops by itself.
//! `scripts/bench.sh` runs the whole comparison and writes `docs/benchmarks.md`.

mod agenda;
mod chart;
mod driver;
mod etcd;
mod failover;
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
use crate::driver::{Bounds, Workload, run_level};
use crate::stats::ScenarioResult;

const USAGE: &str = "\
usage:
  agenda-bench agenda --api URLS --out DIR [--scenarios create,read,mixed]
                      [--mix create=50,read=40,group=10] [common options]
      register users over the API fronts URLS (comma separated, e.g.
      http://127.0.0.1:8081,...), then run each scenario at each concurrency;
      writes DIR/agenda-<scenario>.json
  agenda-bench etcd --endpoints URLS --out DIR [--value-size BYTES] [common options]
      PUT fresh keys through etcd's JSON gateway (/v3/kv/put); writes DIR/etcd-put.json
  agenda-bench chart --out FILE.png [--font FILE.ttf] RESULT.json...
      throughput and latency against concurrency, one line per scenario
  agenda-bench report RESULT.json...
      Markdown tables on stdout
  agenda-bench failover NAME=DIR...
      the write-unavailability window after each fault, as a Markdown table on stdout,
      from DIR/acks.txt (written by --acks) and DIR/faults.txt (`<unix ms> <kind>
      <target>` lines, written by scripts/failover.sh)

common options:
  --concurrency LIST   concurrent users per run (default 1,8,64,256)
  --duration S         length of each run in seconds (default 15)
  --max-requests N     requests after which a run stops early (default 1000000)
  --pause S            rest between runs (default 2)
  --timeout S          timeout of one request (default 30)
  --stop-file FILE     end the run (as if its duration had passed) once FILE exists
  --acks FILE          write the wall-clock time (Unix microseconds) of every
                       acknowledged request to FILE, one per line";

#[derive(Debug)]
struct Common {
    concurrency: Vec<usize>,
    duration: Duration,
    max_requests: u64,
    pause: Duration,
    timeout: Duration,
    out: Option<PathBuf>,
    acks: Option<PathBuf>,
    stop_file: Option<PathBuf>,
}

#[derive(Debug)]
enum Cmd {
    Agenda {
        api: Vec<String>,
        scenarios: Vec<String>,
        mix: Mix,
        common: Common,
    },
    Etcd {
        endpoints: Vec<String>,
        value_size: usize,
        common: Common,
    },
    Chart {
        out: PathBuf,
        font: PathBuf,
        inputs: Vec<PathBuf>,
    },
    Report {
        inputs: Vec<PathBuf>,
    },
    Failover {
        runs: Vec<(String, PathBuf)>,
    },
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().trim_end_matches('/').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn seconds(flag: &str, v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{flag} wants seconds, got {v:?}"))
}

fn parse(args: Vec<String>) -> Result<Cmd, String> {
    let mut it = args.into_iter();
    let command = it.next().ok_or("no command")?;
    let mut common = Common {
        concurrency: vec![1, 8, 64, 256],
        duration: Duration::from_secs(15),
        max_requests: 1_000_000,
        pause: Duration::from_secs(2),
        timeout: Duration::from_secs(30),
        out: None,
        acks: None,
        stop_file: None,
    };
    let mut api = Vec::new();
    let mut endpoints = Vec::new();
    let mut scenarios = list("create,read,mixed");
    let mut mix = Mix::parse("create=50,read=40,group=10")?;
    let mut value_size = 256;
    let mut font = PathBuf::from(chart::DEFAULT_FONT);
    let mut inputs = Vec::new();
    while let Some(arg) = it.next() {
        if !arg.starts_with("--") {
            inputs.push(PathBuf::from(arg));
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--api" => api = list(&value),
            "--endpoints" => endpoints = list(&value),
            "--scenarios" => scenarios = list(&value),
            "--mix" => mix = Mix::parse(&value)?,
            "--value-size" => value_size = value.parse().map_err(|_| "--value-size wants bytes")?,
            "--font" => font = PathBuf::from(value),
            "--out" => common.out = Some(PathBuf::from(value)),
            "--acks" => common.acks = Some(PathBuf::from(value)),
            "--stop-file" => common.stop_file = Some(PathBuf::from(value)),
            "--concurrency" => {
                common.concurrency = list(&value)
                    .iter()
                    .map(|c| c.parse::<usize>().ok().filter(|c| (1..=4096).contains(c)))
                    .collect::<Option<_>>()
                    .ok_or("--concurrency wants numbers from 1 to 4096")?;
            }
            "--duration" => common.duration = seconds(&arg, &value)?,
            "--max-requests" => {
                common.max_requests = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("--max-requests wants a positive number")?;
            }
            "--pause" => common.pause = seconds(&arg, &value)?,
            "--timeout" => common.timeout = seconds(&arg, &value)?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    if common.concurrency.is_empty() {
        return Err("--concurrency is empty".into());
    }
    let need_out = |common: &Common| common.out.is_some().then_some(()).ok_or("--out is required");
    match command.as_str() {
        "agenda" => {
            need_out(&common)?;
            if api.is_empty() {
                return Err("--api is required".into());
            }
            if let Some(bad) = scenarios
                .iter()
                .find(|s| !["create", "read", "mixed"].contains(&s.as_str()))
            {
                return Err(format!("unknown scenario {bad:?} (create, read, mixed)"));
            }
            Ok(Cmd::Agenda {
                api,
                scenarios,
                mix,
                common,
            })
        }
        "etcd" => {
            need_out(&common)?;
            if endpoints.is_empty() {
                return Err("--endpoints is required".into());
            }
            Ok(Cmd::Etcd {
                endpoints,
                value_size,
                common,
            })
        }
        "chart" => Ok(Cmd::Chart {
            out: common.out.ok_or("--out is required")?,
            font,
            inputs,
        }),
        "report" => Ok(Cmd::Report { inputs }),
        "failover" => {
            let runs = inputs
                .iter()
                .map(|i| {
                    let text = i.to_string_lossy();
                    let (name, dir) = text
                        .split_once('=')
                        .filter(|(n, d)| !n.is_empty() && !d.is_empty())
                        .ok_or_else(|| format!("failover wants NAME=DIR, got {text:?}"))?;
                    Ok((name.to_owned(), PathBuf::from(dir)))
                })
                .collect::<Result<Vec<_>, String>>()?;
            if runs.is_empty() {
                return Err("failover wants at least one NAME=DIR".into());
            }
            Ok(Cmd::Failover { runs })
        }
        "help" | "-h" | "--help" => Err(String::new()),
        other => Err(format!("unknown command {other:?}")),
    }
}

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
            common,
        } => {
            let users = common.concurrency.iter().copied().max().unwrap_or(1);
            let agenda = Agenda::set_up(api.clone(), users, common.timeout).await?;
            eprintln!("{} users ready on {} slots", agenda.user_count(), api.len());
            let out = common.out.clone().unwrap_or_default();
            for name in scenarios {
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
                    agenda: agenda.clone(),
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
            value_size,
            common,
        } => {
            let workload = Arc::new(etcd::Etcd::new(endpoints.clone(), value_size, common.timeout).await?);
            let started_at = now();
            let levels = run_levels(workload, "etcd put", &common).await;
            write(
                &common.out.clone().unwrap_or_default(),
                &ScenarioResult {
                    system: "etcd".into(),
                    scenario: "put".into(),
                    description: format!(
                        "Each user writes fresh keys with {value_size}-byte values (`POST /v3/kv/put`)."
                    ),
                    endpoints: endpoints.len(),
                    started_at,
                    levels,
                },
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn the_agenda_command_parses() {
        let cmd = parse(args(
            "agenda --api http://a:1/,http://b:2 --out r --concurrency 1,8 --duration 2.5 --scenarios create",
        ))
        .unwrap();
        let Cmd::Agenda {
            api, scenarios, common, ..
        } = cmd
        else {
            panic!("not agenda");
        };
        assert_eq!(api, vec!["http://a:1".to_owned(), "http://b:2".to_owned()]);
        assert_eq!(scenarios, vec!["create".to_owned()]);
        assert_eq!(common.concurrency, vec![1, 8]);
        assert_eq!(common.duration, Duration::from_millis(2500));
    }

    #[test]
    fn the_failover_command_wants_named_directories() {
        let Ok(Cmd::Failover { runs }) = parse(args("failover agenda=target/a etcd=target/e")) else {
            panic!("failover did not parse");
        };
        assert_eq!(runs[1], ("etcd".to_owned(), PathBuf::from("target/e")));
        assert!(parse(args("failover target/a")).unwrap_err().contains("NAME=DIR"));
        assert!(parse(args("failover")).unwrap_err().contains("at least one"));
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert!(parse(args("agenda --out r")).unwrap_err().contains("--api"));
        assert!(parse(args("agenda --api http://a --out r --concurrency 0")).is_err());
        assert!(parse(args("agenda --api http://a --out r --scenarios delete")).is_err());
        assert!(parse(args("etcd --endpoints http://e")).unwrap_err().contains("--out"));
        assert!(parse(args("agenda --api http://a --out r --max-requests 0")).is_err());
        assert!(parse(args("frobnicate")).is_err());
    }
}
