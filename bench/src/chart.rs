//! The PNG chart: throughput (left) and p50/p99 latency (right) against concurrency, one
//! line per scenario, etcd included. Each Agenda scenario and its etcd counterpart (create
//! and put, read and range) share a hue, Agenda dark with dots, etcd light with triangles,
//! so each pair reads side by side. The `push` scenario is left out: it runs once, at its
//! writer count, and its latency is a notification's, not a request's (its table says it
//! all). Text needs a TrueType font: DejaVu Sans from Debian's `fonts-dejavu-core` unless
//! `--font` names another.

use std::path::Path;

use anyhow::{Context, bail};
use plotters::prelude::*;

use crate::stats::ScenarioResult;

/// Where Debian puts DejaVu Sans.
pub(crate) const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Hues for scenarios without a counterpart.
const COLOURS: [RGBColor; 4] = [
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];
/// Scenario pairs (Agenda, etcd) and their hue.
const PAIRS: [(&str, &str, RGBColor); 2] = [
    ("create", "put", RGBColor(31, 119, 180)),
    ("read", "range", RGBColor(255, 127, 14)),
];

fn label(result: &ScenarioResult) -> String {
    format!("{} {}", result.system, result.scenario)
}

/// How a result's lines look: colour, and whether its points are triangles (etcd).
fn style(result: &ScenarioResult, index: usize) -> (RGBColor, bool) {
    let etcd = result.system == "etcd";
    let hue = PAIRS
        .iter()
        .find(|(ours, theirs, _)| result.scenario == if etcd { *theirs } else { *ours })
        .map_or(COLOURS[index % COLOURS.len()], |(_, _, hue)| *hue);
    if etcd {
        // Halfway to white: the same hue, lighter.
        let RGBColor(r, g, b) = hue;
        let light = |c: u8| c + (255 - c) / 2;
        (RGBColor(light(r), light(g), light(b)), true)
    } else {
        (hue, false)
    }
}

/// The results the chart shows: every one measured against concurrency.
fn charted(results: &[ScenarioResult]) -> Vec<&ScenarioResult> {
    results
        .iter()
        .filter(|r| r.levels.iter().all(|l| l.push.is_none()))
        .collect()
}

/// Draw `results` into `out` (PNG, 1600×700).
pub(crate) fn draw(results: &[ScenarioResult], out: &Path, font: &Path) -> anyhow::Result<()> {
    let results = charted(results);
    if results.iter().all(|r| r.levels.is_empty()) {
        bail!("nothing to draw: no run in the results");
    }
    let bytes = std::fs::read(font).with_context(|| format!("read the font {}", font.display()))?;
    // plotters keeps registered fonts for the whole process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{} is not a usable TrueType font", font.display()))?;

    let max_c = results
        .iter()
        .flat_map(|r| r.levels.iter().map(|l| l.concurrency))
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let max_tput = results
        .iter()
        .flat_map(|r| r.levels.iter().map(|l| l.requests_per_s))
        .fold(1.0, f64::max);
    let latencies = || {
        results
            .iter()
            .flat_map(|r| r.levels.iter().flat_map(|l| [l.latency.p50_ms, l.latency.p99_ms]))
    };
    let max_lat = latencies().fold(1.0, f64::max);
    let min_lat = latencies().filter(|v| *v > 0.0).fold(max_lat, f64::min).max(0.01);

    let root = BitMapBackend::new(out, (1600, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(800);
    let x_range = (1.0..max_c * 1.5).log_scale();

    let mut tput = ChartBuilder::on(&left)
        .caption("Throughput (successful requests/s)", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range.clone(), 0.0..max_tput * 1.15)?;
    tput.configure_mesh()
        .x_desc("concurrent users")
        .y_desc("requests/s")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 15))
        .draw()?;
    for (i, result) in results.iter().enumerate() {
        let (colour, triangle) = style(result, i);
        let points: Vec<(f64, f64)> = result
            .levels
            .iter()
            .map(|l| (l.concurrency as f64, l.requests_per_s))
            .collect();
        tput.draw_series(LineSeries::new(points.clone(), colour.stroke_width(3)))?
            .label(label(result))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3)));
        if triangle {
            tput.draw_series(points.into_iter().map(|p| TriangleMarker::new(p, 6, colour.filled())))?;
        } else {
            tput.draw_series(points.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
        }
    }
    tput.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;

    let mut lat = ChartBuilder::on(&right)
        .caption("Latency: p50 (dashed) and p99 (solid), ms", ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range, (min_lat * 0.7..max_lat * 1.5).log_scale())?;
    lat.configure_mesh()
        .x_desc("concurrent users")
        .y_desc("milliseconds")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y}"))
        .label_style(("sans-serif", 15))
        .draw()?;
    for (i, result) in results.iter().enumerate() {
        let (colour, triangle) = style(result, i);
        let p99: Vec<(f64, f64)> = result
            .levels
            .iter()
            .map(|l| (l.concurrency as f64, l.latency.p99_ms.max(min_lat)))
            .collect();
        let p50: Vec<(f64, f64)> = result
            .levels
            .iter()
            .map(|l| (l.concurrency as f64, l.latency.p50_ms.max(min_lat)))
            .collect();
        lat.draw_series(LineSeries::new(p99.clone(), colour.stroke_width(3)))?
            .label(label(result))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(3)));
        if triangle {
            lat.draw_series(p99.into_iter().map(|p| TriangleMarker::new(p, 6, colour.filled())))?;
        } else {
            lat.draw_series(p99.into_iter().map(|p| Circle::new(p, 4, colour.filled())))?;
        }
        lat.draw_series(DashedLineSeries::new(p50, 6, 4, colour.stroke_width(2)))?;
    }
    lat.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    root.present().context("write the PNG")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Latency, Local, PushResult};
    use std::time::Duration;

    fn result(system: &str, scenario: &str) -> ScenarioResult {
        let mut local = Local::default();
        local.ok("op", Duration::from_millis(5));
        ScenarioResult {
            system: system.into(),
            scenario: scenario.into(),
            description: "test".into(),
            endpoints: 7,
            started_at: "now".into(),
            levels: vec![local.summarise(8, Duration::from_secs(1), "duration")],
        }
    }

    #[test]
    fn each_agenda_scenario_shares_its_hue_with_its_etcd_counterpart() {
        let (read, read_triangle) = style(&result("agenda", "read"), 0);
        let (range, range_triangle) = style(&result("etcd", "range"), 1);
        let (create, _) = style(&result("agenda", "create"), 2);
        let (put, _) = style(&result("etcd", "put"), 3);
        assert_eq!(read, RGBColor(255, 127, 14));
        assert_eq!(range, RGBColor(255, 191, 134), "etcd: the same hue, lighter");
        assert!(!read_triangle && range_triangle);
        assert_eq!(create, RGBColor(31, 119, 180));
        assert_eq!(put, RGBColor(143, 187, 217));
        assert_ne!(style(&result("agenda", "mixed"), 2).0, read);
    }

    #[test]
    fn the_chart_shows_every_scenario_but_push() {
        let mut push = result("agenda", "push");
        push.levels[0].push = Some(PushResult {
            writers: 64,
            listeners: 256,
            bookings: 0,
            expected: 0,
            delivered: 0,
            missing: 0,
            before_ack: 0,
            unmatched: 0,
            lost_listeners: 0,
            grace_s: 5.0,
            latency: Latency::of(&mut []),
        });
        let all = [result("agenda", "read"), push, result("etcd", "range")];
        let shown: Vec<String> = charted(&all).into_iter().map(label).collect();
        assert_eq!(shown, vec!["agenda read", "etcd range"]);
    }
}
