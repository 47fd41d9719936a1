//! The command line. Hand-written: a handful of flags does not justify another dependency.

use std::time::Duration;

/// `agenda-e2e help`.
pub(crate) const USAGE: &str = "\
usage: agenda-e2e MODE [options]

modes:
  wait-healthy [--voters N]     every slot answers /readyz, then N voters (default 7,
                                0 skips) are reachable and every slot agrees on them
  smoke                         the user story across slots (exit 0 or 1)
  writer [--duration S] [--concurrency C] [--every-api]
                                create appointments through every slot until S seconds
                                pass or SIGTERM; print a JSON summary; exit 1 if any
                                request failed definitively or an acknowledged write
                                is missing afterwards (with --every-api: also if some
                                API of the list acknowledged no write at all)
  leader                        print `leader_slot=N leader_raft_id=ID leader_addr=A`
  watch [--duration S]          print the cluster as one API slot sees it, every second
  mark --user NAME              register NAME and book one appointment (the backup
                                round trip's marker)
  check-mark --user NAME [--absent]
                                NAME logs in and finds that appointment (--absent: a
                                login proves NAME does not exist)
  check-slot --slot N [--raft-id ID]
                                wait until slot N's store is a reachable, caught-up voter
                                (with that Raft id when given)

options:
  --api LIST        API fronts, comma separated host[:port] (default api-1..api-7:8080);
                    a `tasks.<service>` entry expands to every address it resolves to
  --timeout S       overall deadline of waits (default 120)
  --retry-budget S  how long one request may keep failing over before it counts as
                    failed (default 45)";

/// Options of the `writer` mode.
#[derive(Debug, Clone)]
pub(crate) struct WriterOptions {
    /// How long to write.
    pub(crate) duration: Duration,
    /// Concurrent writers.
    pub(crate) concurrency: usize,
    /// Fail unless every API of the list acknowledged at least one write.
    pub(crate) every_api: bool,
}

/// What to do.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    Help,
    WaitHealthy { voters: usize },
    Smoke,
    Writer(WriterOptions),
    Leader,
    Watch { duration: Duration },
    CheckSlot { slot: u32, raft_id: Option<u64> },
    Mark { user: String },
    CheckMark { user: String, absent: bool },
}

impl Mode {
    /// The mode's name on the command line.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Mode::Help => "help",
            Mode::WaitHealthy { .. } => "wait-healthy",
            Mode::Smoke => "smoke",
            Mode::Writer(_) => "writer",
            Mode::Leader => "leader",
            Mode::Watch { .. } => "watch",
            Mode::CheckSlot { .. } => "check-slot",
            Mode::Mark { .. } => "mark",
            Mode::CheckMark { .. } => "check-mark",
        }
    }
}

/// The parsed command line.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    pub(crate) mode: Mode,
    /// API fronts as given (`host:port`, or `tasks.<service>:port`).
    pub(crate) api: Vec<String>,
    pub(crate) timeout: Duration,
    pub(crate) retry_budget: Duration,
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s < 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{flag} needs a positive number of seconds, got {value:?}"))
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} needs a number, got {value:?}"))
}

impl Args {
    /// Parse the arguments after the program name.
    pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut args = args.into_iter();
        let mode_name = args.next().unwrap_or_else(|| "help".into());
        let mut api: Vec<String> = (1..=7).map(|i| format!("api-{i}:8080")).collect();
        let mut timeout = Duration::from_secs(120);
        let mut retry_budget = Duration::from_secs(45);
        let mut voters = 7usize;
        let mut duration = Duration::from_secs(20);
        let mut concurrency = 4usize;
        let mut slot = None;
        let mut raft_id = None;
        let mut every_api = false;
        let mut absent = false;
        let mut user = None;
        while let Some(flag) = args.next() {
            if flag == "--every-api" {
                every_api = true;
                continue;
            }
            if flag == "--absent" {
                absent = true;
                continue;
            }
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--api" => {
                    api = value()?
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect();
                }
                "--timeout" => timeout = seconds(&flag, &value()?)?,
                "--retry-budget" => retry_budget = seconds(&flag, &value()?)?,
                "--voters" => voters = number(&flag, &value()?)?,
                "--duration" => duration = seconds(&flag, &value()?)?,
                "--concurrency" => concurrency = number::<usize>(&flag, &value()?)?.clamp(1, 64),
                "--slot" => slot = Some(number::<u32>(&flag, &value()?)?),
                "--raft-id" => raft_id = Some(number::<u64>(&flag, &value()?)?),
                "--user" => user = Some(value()?),
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        if api.is_empty() {
            return Err("--api needs at least one address".into());
        }
        let mode = match mode_name.as_str() {
            "help" | "--help" | "-h" => Mode::Help,
            "wait-healthy" => Mode::WaitHealthy { voters },
            "smoke" => Mode::Smoke,
            "writer" => Mode::Writer(WriterOptions {
                duration,
                concurrency,
                every_api,
            }),
            "leader" => Mode::Leader,
            "watch" => Mode::Watch { duration },
            "check-slot" => Mode::CheckSlot {
                slot: slot.ok_or("check-slot needs --slot N")?,
                raft_id,
            },
            "mark" => Mode::Mark {
                user: user.ok_or("mark needs --user NAME")?,
            },
            "check-mark" => Mode::CheckMark {
                user: user.ok_or("check-mark needs --user NAME")?,
                absent,
            },
            other => return Err(format!("unknown mode {other:?}")),
        };
        Ok(Self {
            mode,
            api,
            timeout,
            retry_budget,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Args, String> {
        Args::parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn defaults_name_the_seven_api_slots() {
        let args = parse("smoke").unwrap();
        assert_eq!(args.api.len(), 7);
        assert_eq!(args.api[2], "api-3:8080");
        assert_eq!(args.timeout, Duration::from_secs(120));
    }

    #[test]
    fn writer_options_and_lists_are_read() {
        let args = parse("writer --duration 2.5 --concurrency 3 --api a:1,b:2").unwrap();
        let Mode::Writer(w) = args.mode else {
            panic!("not writer")
        };
        assert_eq!(w.duration, Duration::from_millis(2500));
        assert_eq!(w.concurrency, 3);
        assert!(!w.every_api);
        assert_eq!(args.api, ["a:1", "b:2"]);
        let Mode::Writer(w) = parse("writer --every-api --duration 1").unwrap().mode else {
            panic!("not writer")
        };
        assert!(w.every_api);
    }

    #[test]
    fn mistakes_are_refused() {
        assert!(parse("check-slot").is_err());
        assert!(parse("mark").is_err());
        assert!(matches!(
            parse("check-mark --user u --absent").unwrap().mode,
            Mode::CheckMark { ref user, absent: true } if user == "u"
        ));
        assert!(parse("smoke --timeout -1").is_err());
        assert!(parse("smoke --nope 1").is_err());
        assert!(parse("fly").is_err());
    }
}
