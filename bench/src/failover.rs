//! The failover measurement's arithmetic: given the wall-clock times at which writes were
//! acknowledged under a steady load and the times at which faults were injected
//! (`scripts/failover.sh` does both), how long was the cluster unable to acknowledge a
//! write after each fault?
//!
//! The *unavailability window* of a fault at `t` is the longest stretch without an
//! acknowledgement between `t` and the next fault (at most [`WINDOW`] later): the gap from
//! `t` to the first acknowledgement, or a later gap if writes stalled again (a deposed
//! leader that wakes up and disrupts its successor counts against its own fault). Under a
//! healthy load acknowledgements arrive every few milliseconds, so the window of a fault
//! that disturbs nothing is a few milliseconds too; the steady-state line of the report
//! shows that floor.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;

/// How long after a fault its window may reach.
pub(crate) const WINDOW_US: u64 = 30_000_000;

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub(crate) at_us: u64,
    pub(crate) kind: String,
    pub(crate) target: String,
}

/// `<unix ms> <kind> <target>` lines (blank lines and `#` comments skipped).
pub(crate) fn parse_faults(text: &str) -> anyhow::Result<Vec<Fault>> {
    let mut faults = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let at_ms: u64 = words
            .next()
            .and_then(|w| w.parse().ok())
            .with_context(|| format!("line {}: no time in {line:?}", n + 1))?;
        let kind = words
            .next()
            .with_context(|| format!("line {}: no fault kind in {line:?}", n + 1))?;
        faults.push(Fault {
            at_us: at_ms * 1000,
            kind: kind.to_owned(),
            target: words.collect::<Vec<_>>().join(" "),
        });
    }
    faults.sort_by_key(|f| f.at_us);
    Ok(faults)
}

/// One acknowledgement time (Unix microseconds) per line.
pub(crate) fn parse_acks(text: &str) -> anyhow::Result<Vec<u64>> {
    let mut acks = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.parse::<u64>().with_context(|| format!("not a time: {l:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    acks.sort_unstable();
    Ok(acks)
}

/// The longest gap (µs) in `from`, then `acks` within `(from, to]`, then the first
/// acknowledgement after `to` (cut at `to`). `None` when nothing was acknowledged after
/// `from` at all: writes never came back.
fn longest_gap(acks: &[u64], from: u64, to: u64) -> Option<u64> {
    let start = acks.partition_point(|&a| a <= from);
    if start == acks.len() {
        return None;
    }
    let mut previous = from;
    let mut longest = 0;
    for &a in &acks[start..] {
        let at = a.min(to);
        longest = longest.max(at - previous);
        previous = at;
        if a >= to {
            break;
        }
    }
    Some(longest)
}

/// Each fault's unavailability window (µs), in the faults' order.
pub(crate) fn windows(acks: &[u64], faults: &[Fault]) -> Vec<Option<u64>> {
    faults
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let next = faults.get(i + 1).map_or(u64::MAX, |n| n.at_us);
            longest_gap(acks, f.at_us, next.min(f.at_us + WINDOW_US))
        })
        .collect()
}

/// The longest gap under the steady load before the first fault, after a 2 s warm-up.
pub(crate) fn steady_gap(acks: &[u64], faults: &[Fault]) -> Option<u64> {
    let first = *acks.first()? + 2_000_000;
    let end = faults.first().map_or(*acks.last()?, |f| f.at_us);
    (end > first).then(|| longest_gap(acks, first, end)).flatten()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn secs(us: u64) -> String {
    format!("{:.3}", us as f64 / 1e6)
}

/// A Markdown table: one row per system and fault kind (median, p90, max and every
/// window, in seconds), then each system's steady-state gap.
pub(crate) fn report(runs: &[(String, Vec<u64>, Vec<Fault>)]) -> String {
    let mut out = String::new();
    out.push_str("| system | fault | n | median (s) | p90 (s) | max (s) | every window (s), in order |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---|\n");
    for (system, acks, faults) in runs {
        let mut by_kind: BTreeMap<&str, Vec<Option<u64>>> = BTreeMap::new();
        let mut order = Vec::new();
        for (fault, window) in faults.iter().zip(windows(acks, faults)) {
            if !by_kind.contains_key(fault.kind.as_str()) {
                order.push(fault.kind.as_str());
            }
            by_kind.entry(&fault.kind).or_default().push(window);
        }
        for kind in order {
            let all = &by_kind[kind];
            let listed: Vec<String> = all.iter().map(|w| w.map_or("never".into(), secs)).collect();
            let mut known: Vec<u64> = all.iter().flatten().copied().collect();
            known.sort_unstable();
            let never = all.len() - known.len();
            let (median, p90, max) = if known.is_empty() || never > 0 {
                ("–".to_owned(), "–".to_owned(), "never".to_owned())
            } else {
                (
                    secs(percentile(&known, 0.5)),
                    secs(percentile(&known, 0.9)),
                    secs(*known.last().unwrap_or(&0)),
                )
            };
            let _ = writeln!(
                out,
                "| {system} | {kind} | {} | {median} | {p90} | {max} | {} |",
                all.len(),
                listed.join(", ")
            );
        }
        let steady = steady_gap(acks, faults).map_or("–".into(), secs);
        let _ = writeln!(
            out,
            "| {system} | none (longest gap under steady load) | 1 | {steady} | {steady} | {steady} | |"
        );
    }
    out
}

/// Read `DIR/acks.txt` and `DIR/faults.txt` of each `name=DIR` and print the report.
pub(crate) fn report_dirs(inputs: &[(String, PathBuf)]) -> anyhow::Result<String> {
    let mut runs = Vec::new();
    for (name, dir) in inputs {
        let read = |f: &str| {
            let path = dir.join(f);
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))
        };
        runs.push((
            name.clone(),
            parse_acks(&read("acks.txt")?)?,
            parse_faults(&read("faults.txt")?)?,
        ));
    }
    Ok(report(&runs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(at_ms: u64, kind: &str) -> Fault {
        Fault {
            at_us: at_ms * 1000,
            kind: kind.into(),
            target: "x".into(),
        }
    }

    /// Acknowledgements every `step` ms over `[from, to)` ms.
    fn steady(from: u64, to: u64, step: u64) -> Vec<u64> {
        (from..to).step_by(step as usize).map(|ms| ms * 1000).collect()
    }

    #[test]
    fn the_window_is_the_stall_after_the_fault() {
        // Writes every 5 ms, nothing from 10.000 s to 10.800 s, a fault at 10.000 s.
        let mut acks = steady(0, 10_000, 5);
        acks.extend(steady(10_800, 20_000, 5));
        let w = windows(&acks, &[fault(10_000, "leader-kill")]);
        assert_eq!(w, vec![Some(800_000)]);
    }

    #[test]
    fn a_second_stall_before_the_next_fault_counts_against_the_first() {
        // A fault at 10 s: 300 ms stall, recovery, then a 1.2 s stall at 14 s (the old
        // leader waking up); the next fault at 20 s.
        let mut acks = steady(0, 10_000, 5);
        acks.extend(steady(10_300, 14_000, 5));
        acks.extend(steady(15_200, 30_000, 5));
        let w = windows(&acks, &[fault(10_000, "leader-freeze"), fault(20_000, "leader-freeze")]);
        assert_eq!(w[0], Some(1_205_000), "from the last write at 13.995 s to 15.2 s");
        assert_eq!(w[1], Some(5_000), "the second fault disturbed nothing");
    }

    #[test]
    fn writes_that_never_come_back_are_reported_as_such() {
        let acks = steady(0, 10_000, 5);
        assert_eq!(windows(&acks, &[fault(10_000, "leader-kill")]), vec![None]);
        let table = report(&[("agenda".into(), acks, vec![fault(10_000, "leader-kill")])]);
        assert!(
            table.contains("| agenda | leader-kill | 1 | – | – | never | never |"),
            "{table}"
        );
    }

    #[test]
    fn a_window_is_cut_at_the_next_fault() {
        // No writes from 10 s to the end at 40 s, faults at 10 s and 12 s: the first
        // window is the 2 s up to the second fault, not 30 s.
        let mut acks = steady(0, 10_000, 5);
        acks.push(40_000_000);
        let w = windows(&acks, &[fault(10_000, "a"), fault(12_000, "b")]);
        assert_eq!(w, vec![Some(2_000_000), Some(28_000_000)]);
    }

    #[test]
    fn the_report_gives_median_p90_and_max_per_kind() {
        let mut acks = Vec::new();
        let mut faults = Vec::new();
        // Ten kills with stalls of 100..=1000 ms, one every 10 s.
        let mut t = 5_000;
        acks.extend(steady(0, t, 5));
        for i in 1..=10 {
            faults.push(fault(t, "leader-kill"));
            acks.extend(steady(t + i * 100, t + 10_000, 5));
            t += 10_000;
        }
        let table = report(&[("agenda".into(), acks, faults)]);
        assert!(
            table.contains("| agenda | leader-kill | 10 | 0.500 | 0.900 | 1.000 | 0.100, 0.200, 0.300,"),
            "{table}"
        );
        assert!(
            table.contains("| agenda | none (longest gap under steady load) | 1 | 0.005 |"),
            "{table}"
        );
    }

    #[test]
    fn fault_and_ack_files_parse_and_bad_lines_are_refused() {
        let faults =
            parse_faults("# t kind target\n2000 leader-freeze agenda-2\n1000 leader-kill agenda-1\n\n").unwrap();
        assert_eq!(faults.len(), 2);
        assert_eq!(faults[0].kind, "leader-kill");
        assert_eq!(faults[0].at_us, 1_000_000);
        assert_eq!(faults[1].target, "agenda-2");
        assert!(parse_faults("soon leader-kill").is_err());
        assert!(parse_faults("1000").is_err());
        assert_eq!(parse_acks("30\n10\n20\n").unwrap(), vec![10, 20, 30]);
        assert!(parse_acks("10\nlater\n").is_err());
    }
}
