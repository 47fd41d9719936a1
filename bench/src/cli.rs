//! The command line: [`USAGE`] and its parser.

use std::path::PathBuf;
use std::time::Duration;

use crate::agenda::Mix;
use crate::chart;
use crate::etcd::EtcdScenario;
use crate::push::PushSettings;

/// What `agenda-bench help` prints.
pub(crate) const USAGE: &str = "\
usage:
  agenda-bench agenda --api URLS --out DIR [--scenarios LIST] [--mix create=50,read=40,group=10]
                      [--push-writers N] [--push-listeners N] [--push-grace S] [common options]
      register users over the API fronts URLS (comma separated, e.g.
      http://127.0.0.1:8081,...), then run each scenario of LIST (create, read, mixed,
      push; default create,read,mixed) at each concurrency (push: once, with users of its
      own); writes DIR/agenda-<scenario>.json
  agenda-bench etcd --endpoints URLS --out DIR [--scenarios LIST] [--value-size BYTES]
                    [common options]
      through etcd's JSON gateway, each scenario of LIST (default put): put = PUT fresh
      keys (/v3/kv/put), range = read, linearizably, keys each user wrote in a warm-up
      (/v3/kv/range); writes DIR/etcd-<scenario>.json
  agenda-bench chart --out FILE.png [--font FILE.ttf] RESULT.json...
      throughput and latency against concurrency, one line per scenario (push left out)
  agenda-bench report RESULT.json...
      Markdown tables on stdout
  agenda-bench failover NAME=DIR...
      the write-unavailability window after each fault, as a Markdown table on stdout,
      from DIR/acks.txt (written by --acks) and DIR/faults.txt (`<unix ms> <kind>
      <target>` lines, written by scripts/failover.sh)

push options:
  --push-writers N     users booking for their group (default 64)
  --push-listeners N   users connected to /ws, spread over the writers' groups
                       (default 256)
  --push-grace S       how long late notifications are awaited (default 5)

common options:
  --concurrency LIST   concurrent users per run (default 1,8,64,256)
  --duration S         length of each run in seconds (default 15)
  --max-requests N     requests after which a run stops early (default 1000000)
  --pause S            rest between runs (default 2)
  --timeout S          timeout of one request (default 30)
  --stop-file FILE     end the run (as if its duration had passed) once FILE exists
  --acks FILE          write the wall-clock time (Unix microseconds) of every
                       acknowledged request to FILE, one per line";

/// The scenarios of `agenda-bench agenda`.
pub(crate) const AGENDA_SCENARIOS: [&str; 4] = ["create", "read", "mixed", "push"];

/// Options every load-generating command shares.
#[derive(Debug)]
pub(crate) struct Common {
    pub(crate) concurrency: Vec<usize>,
    pub(crate) duration: Duration,
    pub(crate) max_requests: u64,
    pub(crate) pause: Duration,
    pub(crate) timeout: Duration,
    pub(crate) out: Option<PathBuf>,
    pub(crate) acks: Option<PathBuf>,
    pub(crate) stop_file: Option<PathBuf>,
}

/// A parsed command line.
#[derive(Debug)]
pub(crate) enum Cmd {
    Agenda {
        api: Vec<String>,
        scenarios: Vec<String>,
        mix: Mix,
        push: PushSettings,
        common: Common,
    },
    Etcd {
        endpoints: Vec<String>,
        scenarios: Vec<EtcdScenario>,
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

fn count(flag: &str, v: &str) -> Result<usize, String> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (1..=4096).contains(n))
        .ok_or_else(|| format!("{flag} wants a number from 1 to 4096, got {v:?}"))
}

/// Parse the arguments after the program name; `Err("")` asks for the usage.
pub(crate) fn parse(args: Vec<String>) -> Result<Cmd, String> {
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
    let mut scenarios = None;
    let mut mix = Mix::parse("create=50,read=40,group=10")?;
    let mut push = PushSettings {
        writers: 64,
        listeners: 256,
        grace: Duration::from_secs(5),
    };
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
            "--scenarios" => scenarios = Some(list(&value)),
            "--mix" => mix = Mix::parse(&value)?,
            "--push-writers" => push.writers = count(&arg, &value)?,
            "--push-listeners" => push.listeners = count(&arg, &value)?,
            "--push-grace" => push.grace = seconds(&arg, &value)?,
            "--value-size" => value_size = value.parse().map_err(|_| "--value-size wants bytes")?,
            "--font" => font = PathBuf::from(value),
            "--out" => common.out = Some(PathBuf::from(value)),
            "--acks" => common.acks = Some(PathBuf::from(value)),
            "--stop-file" => common.stop_file = Some(PathBuf::from(value)),
            "--concurrency" => {
                common.concurrency = list(&value)
                    .iter()
                    .map(|c| count(&arg, c))
                    .collect::<Result<_, _>>()
                    .map_err(|_| "--concurrency wants numbers from 1 to 4096")?;
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
            let scenarios = scenarios.unwrap_or_else(|| list("create,read,mixed"));
            if let Some(bad) = scenarios.iter().find(|s| !AGENDA_SCENARIOS.contains(&s.as_str())) {
                return Err(format!("unknown scenario {bad:?} ({})", AGENDA_SCENARIOS.join(", ")));
            }
            Ok(Cmd::Agenda {
                api,
                scenarios,
                mix,
                push,
                common,
            })
        }
        "etcd" => {
            need_out(&common)?;
            if endpoints.is_empty() {
                return Err("--endpoints is required".into());
            }
            let scenarios = scenarios
                // Put alone unless told: scripts/failover.sh wants a write load.
                .unwrap_or_else(|| list("put"))
                .iter()
                .map(|s| EtcdScenario::parse(s))
                .collect::<Result<_, _>>()?;
            Ok(Cmd::Etcd {
                endpoints,
                scenarios,
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
    fn push_has_64_writers_256_listeners_and_5_s_of_grace_unless_told() {
        let Ok(Cmd::Agenda { scenarios, push, .. }) = parse(args("agenda --api http://a --out r")) else {
            panic!("agenda did not parse");
        };
        assert_eq!(scenarios, vec!["create", "read", "mixed"], "push is asked for by name");
        assert_eq!((push.writers, push.listeners), (64, 256));
        assert_eq!(push.grace, Duration::from_secs(5));

        let Ok(Cmd::Agenda { scenarios, push, .. }) = parse(args(
            "agenda --api http://a --out r --scenarios read,push --push-writers 8 --push-listeners 32 --push-grace 1.5",
        )) else {
            panic!("agenda did not parse");
        };
        assert_eq!(scenarios, vec!["read", "push"]);
        assert_eq!((push.writers, push.listeners), (8, 32));
        assert_eq!(push.grace, Duration::from_millis(1500));
    }

    #[test]
    fn bad_push_settings_are_refused() {
        let base = "agenda --api http://a --out r --scenarios push";
        assert!(
            parse(args(&format!("{base} --push-writers 0")))
                .unwrap_err()
                .contains("--push-writers")
        );
        assert!(
            parse(args(&format!("{base} --push-listeners many")))
                .unwrap_err()
                .contains("--push-listeners")
        );
        assert!(
            parse(args(&format!("{base} --push-grace -1")))
                .unwrap_err()
                .contains("--push-grace")
        );
    }

    #[test]
    fn the_etcd_command_puts_unless_told_to_range_too() {
        let Ok(Cmd::Etcd { scenarios, .. }) = parse(args("etcd --endpoints http://e --out r")) else {
            panic!("etcd did not parse");
        };
        assert_eq!(scenarios, vec![EtcdScenario::Put]);
        let Ok(Cmd::Etcd { scenarios, .. }) = parse(args("etcd --endpoints http://e --out r --scenarios put,range"))
        else {
            panic!("etcd did not parse");
        };
        assert_eq!(scenarios, vec![EtcdScenario::Put, EtcdScenario::Range]);
        let refused = parse(args("etcd --endpoints http://e --out r --scenarios put,read")).unwrap_err();
        assert!(refused.contains("\"read\""), "{refused}");
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
        assert!(parse(args("agenda --api http://a --out r --scenarios range")).is_err());
        assert!(parse(args("etcd --endpoints http://e")).unwrap_err().contains("--out"));
        assert!(parse(args("agenda --api http://a --out r --max-requests 0")).is_err());
        assert!(parse(args("frobnicate")).is_err());
    }
}
