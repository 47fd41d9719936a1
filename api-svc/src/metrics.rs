//! Prometheus metrics of one API front, in a registry of its own (several fronts can share
//! a test process), rendered by `GET /metrics`.

use std::time::Duration;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// The metrics this service exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_latency: HistogramVec,
    store_rpc: HistogramVec,
    ws_connections: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Latency buckets in seconds, from a fast local read to a write waiting out an election.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
];

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "agenda_http_requests_total",
                "HTTP requests by route template and status",
            ),
            &["method", "route", "status"],
        )?;
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "agenda_http_request_duration_seconds",
                "HTTP request latency by route template",
            )
            .buckets(BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let store_rpc = HistogramVec::new(
            HistogramOpts::new(
                "agenda_store_rpc_duration_seconds",
                "Latency of store RPC attempts by RPC and outcome",
            )
            .buckets(BUCKETS.to_vec()),
            &["rpc", "outcome"],
        )?;
        let ws_connections = IntGauge::new("agenda_ws_connections", "Open WebSocket connections")?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_latency.clone()))?;
        registry.register(Box::new(store_rpc.clone()))?;
        registry.register(Box::new(ws_connections.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_latency,
            store_rpc,
            ws_connections,
        })
    }

    /// Count one HTTP request.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http_requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.http_latency
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// Time one store RPC attempt.
    pub fn observe_store(&self, rpc: &str, outcome: &str, elapsed: Duration) {
        self.store_rpc
            .with_label_values(&[rpc, outcome])
            .observe(elapsed.as_secs_f64());
    }

    /// A WebSocket opened (`+1`) or closed (`-1`).
    pub fn ws_connection(&self, delta: i64) {
        self.ws_connections.add(delta);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_metrics_name_routes_and_rpcs() {
        let m = Metrics::new().unwrap();
        m.observe_http("GET", "/api/appointments/{id}", 200, Duration::from_millis(3));
        m.observe_store("query", "ok", Duration::from_millis(1));
        m.ws_connection(1);
        let text = m.render();
        assert!(
            text.contains(r#"agenda_http_requests_total{method="GET",route="/api/appointments/{id}",status="200"} 1"#)
        );
        assert!(text.contains("agenda_store_rpc_duration_seconds_bucket"));
        assert!(text.contains("agenda_ws_connections 1"));
    }
}
