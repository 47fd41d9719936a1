//! Markdown tables from result files: one table per scenario, the per-kind breakdown of
//! mixed runs, and the appointment-create versus etcd-put comparison.

use std::fmt::Write as _;

use crate::stats::ScenarioResult;

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
        out.push_str("| users | requests/s | p50 ms | p95 ms | p99 ms | max ms | ok | errors |\n");
        out.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for l in &result.levels {
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
    let create = results.iter().find(|r| r.system == "agenda" && r.scenario == "create");
    let put = results.iter().find(|r| r.system == "etcd");
    if let (Some(create), Some(put)) = (create, put) {
        out.push_str("### Appointment create vs etcd put\n\n");
        out.push_str("| users | agenda create/s | etcd put/s | ratio | agenda p99 ms | etcd p99 ms |\n");
        out.push_str("|---:|---:|---:|---:|---:|---:|\n");
        for c in &create.levels {
            if let Some(p) = put.levels.iter().find(|p| p.concurrency == c.concurrency) {
                let ratio = if p.requests_per_s > 0.0 {
                    c.requests_per_s / p.requests_per_s
                } else {
                    0.0
                };
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {:.0} | {:.2} | {} | {} |",
                    c.concurrency,
                    c.requests_per_s,
                    p.requests_per_s,
                    ratio,
                    ms(c.latency.p99_ms),
                    ms(p.latency.p99_ms)
                );
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Local;
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
}
