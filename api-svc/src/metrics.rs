//! Prometheus metrics of one API front, in a registry of its own (several fronts can share
//! a test process), rendered by `GET /metrics`.
//!
//! Every label value comes from a fixed set (route templates, not paths; the standard
//! methods or `other`; RPC names and outcomes written in this crate): each distinct value
//! is a series kept forever, so nothing a client sends may become one. The store alarm
//! gauge is labelled by slot and alarm name from the member table (validated, bounded
//! by the table's size) and is rebuilt at every scrape.

use std::time::Duration;

use agenda_shared::rpc::member::{Member, MemberState};
use http::Method;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The alarms a store raises (`consensus-svc`), always exported for every slot (0 or 1)
/// so that an alert has a series to watch before the first alarm.
pub const STORE_ALARMS: &[&str] = &["halted", "nospace"];

/// How a TLS handshake ended (the `outcome` label of `agenda_tls_handshakes_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// Completed; the connection is served.
    Ok,
    /// The client broke the handshake off or spoke something else.
    Failed,
    /// Not completed within the handshake timeout.
    TimedOut,
    /// Dropped to make room: too many handshakes were pending (from its client, or at all).
    Dropped,
}

impl Handshake {
    fn label(self) -> &'static str {
        match self {
            Handshake::Ok => "ok",
            Handshake::Failed => "failed",
            Handshake::TimedOut => "timeout",
            Handshake::Dropped => "dropped",
        }
    }
}

/// The metrics this service exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_latency: HistogramVec,
    store_rpc: HistogramVec,
    ws_connections: IntGauge,
    password_hash_jobs: IntGauge,
    tls_handshakes: IntCounterVec,
    store_alarms: IntGaugeVec,
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

/// The `method` label of a request: the standard methods by name, anything else `other`.
/// HTTP allows any token as a method, and each label value is a series the registry keeps
/// forever, so a client inventing methods must not be able to add series.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

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
        let password_hash_jobs = IntGauge::new(
            "agenda_password_hash_jobs",
            "Password hashing jobs running or waiting (at the last scrape)",
        )?;
        let tls_handshakes = IntCounterVec::new(
            Opts::new(
                "agenda_tls_handshakes_total",
                "Front door TLS handshakes by outcome (ok, failed, timeout, dropped)",
            ),
            &["outcome"],
        )?;
        let store_alarms = IntGaugeVec::new(
            Opts::new(
                "agenda_store_alarm",
                "1 while the slot's store has the alarm raised (as its discovery agent reports it)",
            ),
            &["slot", "alarm"],
        )?;
        registry.register(Box::new(store_alarms.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_latency.clone()))?;
        registry.register(Box::new(store_rpc.clone()))?;
        registry.register(Box::new(ws_connections.clone()))?;
        registry.register(Box::new(password_hash_jobs.clone()))?;
        registry.register(Box::new(tls_handshakes.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_latency,
            store_rpc,
            ws_connections,
            password_hash_jobs,
            tls_handshakes,
            store_alarms,
        })
    }

    /// Set the store alarm gauge from the member table: every slot with a store gets
    /// each known alarm (0 or 1) and any other alarm it reports. Departed slots drop out.
    pub fn store_alarms(&self, members: &[Member]) {
        self.store_alarms.reset();
        for m in members
            .iter()
            .filter(|m| m.state != MemberState::Left && m.store_raft_id.is_some())
        {
            for alarm in STORE_ALARMS {
                self.store_alarms.with_label_values(&[m.node_id.as_str(), alarm]).set(0);
            }
            for alarm in &m.store_alarms {
                self.store_alarms
                    .with_label_values(&[m.node_id.as_str(), alarm.as_str()])
                    .set(1);
            }
        }
    }

    /// Count one HTTP request. `route` must be a route template (or a fixed word such as
    /// `unmatched`), never a raw path: every label value is a series kept forever.
    pub fn observe_http(&self, method: &Method, route: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        self.http_requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.http_latency
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    /// Time one store RPC attempt.
    pub fn observe_store(&self, rpc: &'static str, outcome: &'static str, elapsed: Duration) {
        self.store_rpc
            .with_label_values(&[rpc, outcome])
            .observe(elapsed.as_secs_f64());
    }

    /// A WebSocket opened (`+1`) or closed (`-1`).
    pub fn ws_connection(&self, delta: i64) {
        self.ws_connections.add(delta);
    }

    /// The number of password hashing jobs running or waiting now.
    pub fn password_hash_jobs(&self, jobs: usize) {
        self.password_hash_jobs.set(i64::try_from(jobs).unwrap_or(i64::MAX));
    }

    /// Count one finished TLS handshake.
    pub fn tls_handshake(&self, outcome: Handshake) {
        self.tls_handshakes.with_label_values(&[outcome.label()]).inc();
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
        m.observe_http(&Method::GET, "/api/appointments/{id}", 200, Duration::from_millis(3));
        m.observe_store("query", "ok", Duration::from_millis(1));
        m.ws_connection(1);
        let text = m.render();
        assert!(
            text.contains(r#"agenda_http_requests_total{method="GET",route="/api/appointments/{id}",status="200"} 1"#)
        );
        assert!(text.contains("agenda_store_rpc_duration_seconds_bucket"));
        assert!(text.contains("agenda_ws_connections 1"));
    }

    #[test]
    fn store_alarms_follow_the_member_table() {
        use agenda_shared::rpc::member::Source;
        let member = |slot: u32, alarms: &[&str]| Member {
            node_id: format!("agenda-{slot}"),
            slot,
            store_addr: format!("store-{slot}:7000"),
            api_addr: String::new(),
            discovery_addr: String::new(),
            store_raft_id: Some(u64::from(slot)),
            store_pristine: false,
            store_has_cluster: true,
            store_cluster_id: None,
            api_ready: true,
            store_alarms: alarms.iter().map(|a| (*a).to_owned()).collect(),
            source: Source::Gossip,
            last_seen_ms: 0,
            incarnation: 1,
            heartbeat: 1,
            state: MemberState::Alive,
        };
        let m = Metrics::new().unwrap();
        m.store_alarms(&[member(1, &[]), member(3, &["nospace"])]);
        let text = m.render();
        assert!(
            text.contains(r#"agenda_store_alarm{alarm="nospace",slot="agenda-3"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"agenda_store_alarm{alarm="nospace",slot="agenda-1"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"agenda_store_alarm{alarm="halted",slot="agenda-3"} 0"#),
            "{text}"
        );
        m.store_alarms(&[member(1, &[]), member(3, &[])]);
        let text = m.render();
        assert!(
            text.contains(r#"agenda_store_alarm{alarm="nospace",slot="agenda-3"} 0"#),
            "{text}"
        );
    }

    #[test]
    fn invented_methods_share_one_label() {
        let m = Metrics::new().unwrap();
        for name in ["FOO", "XYZ123", "get", "PROPFIND", "CONNECT", "TRACE"] {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{name}");
            m.observe_http(&method, "unmatched", 405, Duration::from_millis(1));
        }
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let text = m.render();
        assert!(
            text.contains(r#"agenda_http_requests_total{method="other",route="unmatched",status="405"} 6"#),
            "{text}"
        );
        assert!(!text.contains("FOO") && !text.contains("XYZ123"), "{text}");
    }
}
