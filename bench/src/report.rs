//! Markdown tables from result files: one table per scenario (the `push` scenario's about
//! its notifications), the per-kind breakdown of mixed runs, and each Agenda scenario
//! against its etcd counterpart (create vs put, read vs range) with the ratio.

use std::fmt::Write as _;

use crate::stats::{LevelResult, ScenarioResult};

/// Agenda scenarios compared with an etcd one: title, agenda scenario, etcd scenario.
const COMPARISONS: [(&str, &str, &str); 2] = [
    ("Appointment create vs etcd put", "create", "put"),
    (
        "Linearizable agenda read vs etcd linearizable range read",
        "read",
        "range",
    ),
];

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The tables, as Markdown.
pub(crate) fn markdown(results: &[ScenarioResult]) -> String {
    let mut out = String::new();
    for result in results {
        let _ = writeln!(
            out,
            "### {} — {}\n\n{} Requests spread over {} endpoints.\n",
            result.system, result.scenario, result.description, result.endpoints
        );
        if result.levels.iter().any(|l| l.push.is_some()) {
            push_table(&mut out, &result.levels);
        } else {
            request_table(&mut out, &result.levels);
        }
        if result.levels.iter().any(|l| l.by_kind.len() > 1) {
            out.push_str("By request kind:\n\n| users | kind | requests/s | p50 ms | p99 ms | errors |\n");
            out.push_str("|---:|---|---:|---:|---:|---:|\n");
            for l in &result.levels {
                for (kind, k) in &l.by_kind {
                    let _ = writeln!(
                        out,
                        "| {} | {kind} | {:.0} | {} | {} | {} |",
                        l.concurrency,
                        k.per_s,
                        ms(k.latency.p50_ms),
                        ms(k.latency.p99_ms),
                        k.errors
                    );
                }
            }
            out.push('\n');
        }
        let samples: Vec<&String> = result.levels.iter().flat_map(|l| &l.error_samples).take(5).collect();
        if !samples.is_empty() {
            out.push_str("First errors:\n\n");
            for s in samples {
                let _ = writeln!(out, "- `{}`", s.replace('`', "'"));
            }
            out.push('\n');
        }
    }
    for (title, ours, theirs) in COMPARISONS {
        let agenda = results.iter().find(|r| r.system == "agenda" && r.scenario == ours);
        let etcd = results.iter().find(|r| r.system == "etcd" && r.scenario == theirs);
        if let (Some(agenda), Some(etcd)) = (agenda, etcd) {
            comparison(&mut out, title, agenda, etcd);
        }
    }
    out
}

/// Requests per second and latency at each concurrency.
fn request_table(out: &mut String, levels: &[LevelResult]) {
    out.push_str("| users | requests/s | p50 ms | p95 ms | p99 ms | max ms | ok | errors |\n");
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for l in levels {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} | {} | {} | {} | {} |",
            l.concurrency,
            l.requests_per_s,
            ms(l.latency.p50_ms),
            ms(l.latency.p95_ms),
            ms(l.latency.p99_ms),
            ms(l.latency.max_ms),
            l.ok,
            l.errors
        );
    }
    out.push('\n');
}

/// The notifications of a `push` run: push latency, deliveries, and the bookings behind.
fn push_table(out: &mut String, levels: &[LevelResult]) {
    out.push_str(
        "| writers | listeners | bookings/s | booking p99 ms | delivered | missing | push p50 ms | p95 ms | p99 ms | max ms |\n",
    );
    out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (l, p) in levels.iter().filter_map(|l| l.push.as_ref().map(|p| (l, p))) {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {} | {} of {} | {} | {} | {} | {} | {} |",
            p.writers,
            p.listeners,
            l.requests_per_s,
            ms(l.latency.p99_ms),
            p.delivered,
            p.expected,
            p.missing,
            ms(p.latency.p50_ms),
            ms(p.latency.p95_ms),
            ms(p.latency.p99_ms),
            ms(p.latency.max_ms)
        );
    }
    out.push('\n');
    for (l, p) in levels.iter().filter_map(|l| l.push.as_ref().map(|p| (l, p))) {
        let _ = writeln!(
            out,
            "{} bookings acknowledged, {} failed; {} notifications arrived before the booking's answer \
             (counted as 0 ms); {} unmatched (no acknowledged booking of the listener's group, or a repeat); \
             {} listener sockets lost; late notifications awaited up to {:.0} s.\n",
            p.bookings, l.errors, p.before_ack, p.unmatched, p.lost_listeners, p.grace_s
        );
    }
}

/// An Agenda scenario against its etcd counterpart at each concurrency both ran.
fn comparison(out: &mut String, title: &str, agenda: &ScenarioResult, etcd: &ScenarioResult) {
    let _ = writeln!(out, "### {title}\n");
    let _ = writeln!(
        out,
        "| users | agenda {}/s | etcd {}/s | ratio | agenda p99 ms | etcd p99 ms |",
        agenda.scenario, etcd.scenario
    );
    out.push_str("|---:|---:|---:|---:|---:|---:|\n");
    for a in &agenda.levels {
        if let Some(e) = etcd.levels.iter().find(|e| e.concurrency == a.concurrency) {
            let ratio = if e.requests_per_s > 0.0 {
                a.requests_per_s / e.requests_per_s
            } else {
                0.0
            };
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.0} | {:.2} | {} | {} |",
                a.concurrency,
                a.requests_per_s,
                e.requests_per_s,
                ratio,
                ms(a.latency.p99_ms),
                ms(e.latency.p99_ms)
            );
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Latency, Local, PushResult};
    use std::time::Duration;

    fn result(system: &str, scenario: &str, per_level_ms: &[(usize, u64)]) -> ScenarioResult {
        let levels = per_level_ms
            .iter()
            .map(|&(c, n)| {
                let mut local = Local::default();
                for _ in 0..n {
                    local.ok("put", Duration::from_millis(10));
                }
                local.summarise(c, Duration::from_secs(1), "duration")
            })
            .collect();
        ScenarioResult {
            system: system.into(),
            scenario: scenario.into(),
            description: "test".into(),
            endpoints: 7,
            started_at: "now".into(),
            levels,
        }
    }

    #[test]
    fn the_comparison_divides_create_by_put_at_each_concurrency() {
        let text = markdown(&[
            result("agenda", "create", &[(1, 50), (8, 300)]),
            result("etcd", "put", &[(1, 100), (8, 200)]),
        ]);
        assert!(text.contains("| 1 | 50 | 100 | 0.50 | 10.0 | 10.0 |"), "{text}");
        assert!(text.contains("| 8 | 300 | 200 | 1.50 | 10.0 | 10.0 |"), "{text}");
        assert!(text.contains("### agenda — create"));
    }

    #[test]
    fn reads_are_compared_with_linearizable_range_reads_not_with_puts() {
        let text = markdown(&[
            result("agenda", "create", &[(64, 700)]),
            result("agenda", "read", &[(64, 1500)]),
            result("etcd", "range", &[(64, 3000)]),
            result("etcd", "put", &[(64, 2800)]),
        ]);
        let create = text.find("### Appointment create vs etcd put").expect(&text);
        let read = text
            .find("### Linearizable agenda read vs etcd linearizable range read")
            .expect(&text);
        assert!(create < read, "the read comparison follows the create one");
        assert!(text[create..read].contains("| 64 | 700 | 2800 | 0.25 |"), "{text}");
        assert!(
            text[read..].contains("| users | agenda read/s | etcd range/s | ratio |"),
            "{text}"
        );
        assert!(text[read..].contains("| 64 | 1500 | 3000 | 0.50 |"), "{text}");
    }

    #[test]
    fn a_comparison_needs_both_sides() {
        let text = markdown(&[result("agenda", "read", &[(1, 10)]), result("etcd", "put", &[(1, 10)])]);
        assert!(!text.contains("vs etcd"), "{text}");
    }

    #[test]
    fn a_push_run_reports_its_deliveries_and_push_latency() {
        let mut run = result("agenda", "push", &[(64, 500)]);
        let mut latencies: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        run.levels[0].push = Some(PushResult {
            writers: 64,
            listeners: 256,
            bookings: 500,
            expected: 2000,
            delivered: 1998,
            missing: 2,
            before_ack: 7,
            unmatched: 0,
            lost_listeners: 1,
            grace_s: 5.0,
            latency: Latency::of(&mut latencies),
        });
        let text = markdown(&[run]);
        assert!(text.contains("| writers | listeners | bookings/s |"), "{text}");
        assert!(
            text.contains("| 64 | 256 | 500 | 10.0 | 1998 of 2000 | 2 | 50.0 | 95.0 | 99.0 | 100 |"),
            "{text}"
        );
        assert!(text.contains("7 notifications arrived before"), "{text}");
        assert!(text.contains("1 listener sockets lost"), "{text}");
        assert!(text.contains("awaited up to 5 s"), "{text}");
        assert!(
            !text.contains("| users | requests/s |"),
            "no request table for push: {text}"
        );
    }
}
