//! The etcd workloads, through etcd's HTTP JSON gateway (keys and values base64), worker
//! `w` talking to endpoint `w mod n`, exactly as the Agenda workload spreads its users over
//! the slots:
//!
//! - `put`: `POST /v3/kv/put` of a fresh key per request, a value of a fixed size;
//! - `range`: `POST /v3/kv/range` of one key the worker wrote during a warm-up
//!   ([`Etcd::write_read_keys`]), linearizable (`serializable: false`, etcd's default: the
//!   member confirms with the leader that it is up to date before answering), checked to
//!   return the value written.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt;
use rand::{Rng, RngCore};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::client::{SETUP_PARALLELISM, http_client, run_tag};
use crate::driver::Workload;
use crate::stats::Local;

/// Keys each worker writes in the warm-up of `range` and then reads in turn.
pub(crate) const KEYS_PER_READER: usize = 4;

/// What an etcd run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EtcdScenario {
    /// Write fresh keys.
    Put,
    /// Read existing keys, linearizably.
    Range,
}

impl EtcdScenario {
    /// Every scenario, by name.
    pub(crate) const ALL: [EtcdScenario; 2] = [EtcdScenario::Put, EtcdScenario::Range];

    /// `put` or `range`.
    pub(crate) fn parse(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| format!("unknown etcd scenario {name:?} (put, range)"))
    }

    /// What the results call it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            EtcdScenario::Put => "put",
            EtcdScenario::Range => "range",
        }
    }
}

/// etcd endpoints and what to write.
#[derive(Debug)]
pub(crate) struct Etcd {
    http: reqwest::Client,
    endpoints: Vec<String>,
    prefix: String,
    /// The value of every write, base64 (as the gateway wants and returns it).
    value: String,
    next: AtomicU64,
}

impl Etcd {
    /// A client of `endpoints` writing `value_size`-byte values; checks every endpoint
    /// answers first.
    pub(crate) async fn new(endpoints: Vec<String>, value_size: usize, timeout: Duration) -> anyhow::Result<Self> {
        anyhow::ensure!(!endpoints.is_empty(), "no etcd endpoint given");
        let http = http_client(timeout)?;
        for endpoint in &endpoints {
            let status: Value = http
                .post(format!("{endpoint}/v3/maintenance/status"))
                .json(&json!({}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            anyhow::ensure!(status.get("leader").is_some(), "{endpoint} has no leader: {status}");
        }
        let mut value = vec![0u8; value_size];
        rand::rng().fill_bytes(&mut value);
        Ok(Self {
            http,
            endpoints,
            prefix: format!("bench/{}/", run_tag()),
            value: STANDARD.encode(value),
            next: AtomicU64::new(0),
        })
    }

    fn endpoint(&self, worker: usize) -> &str {
        &self.endpoints[worker % self.endpoints.len()]
    }

    /// The `i`th key `range` worker `worker` reads.
    fn read_key(&self, worker: usize, i: usize) -> String {
        STANDARD.encode(format!("{}read/{worker:04}/{i}", self.prefix))
    }

    /// The warm-up of `range`: each of `workers` workers writes its [`KEYS_PER_READER`]
    /// keys through its own endpoint.
    pub(crate) async fn write_read_keys(&self, workers: usize) -> anyhow::Result<()> {
        let writes: Vec<anyhow::Result<()>> =
            futures::stream::iter((0..workers).flat_map(|w| (0..KEYS_PER_READER).map(move |i| (w, i))))
                .map(|(w, i)| async move {
                    let url = format!("{}/v3/kv/put", self.endpoint(w));
                    self.http
                        .post(&url)
                        .json(&json!({ "key": self.read_key(w, i), "value": self.value }))
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status)
                        .with_context(|| format!("warm-up write to {url}"))?;
                    Ok(())
                })
                .buffer_unordered(SETUP_PARALLELISM)
                .collect()
                .await;
        writes.into_iter().collect()
    }

    async fn put(&self, worker: usize, rec: &mut Local) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}/v3/kv/put", self.endpoint(worker));
        let body = json!({ "key": STANDARD.encode(format!("{}{n:012}", self.prefix)), "value": self.value });
        // The gateway answers 200 with a header carrying the new revision.
        let accept = |answer: &[u8]| answer.windows(8).any(|w| w == b"revision");
        self.request(rec, "put", &url, &body, accept).await;
    }

    async fn range(&self, worker: usize, rec: &mut Local) {
        let key = self.read_key(worker, rand::rng().random_range(0..KEYS_PER_READER));
        let url = format!("{}/v3/kv/range", self.endpoint(worker));
        let body = json!({ "key": key, "serializable": false });
        let accept = |answer: &[u8]| read_value(answer).is_some_and(|v| v == self.value);
        self.request(rec, "range", &url, &body, accept).await;
    }

    /// POST `body` to `url` and record it as `kind`: a success when the answer is a 200
    /// that `accept` takes, timed to its last byte.
    async fn request(
        &self,
        rec: &mut Local,
        kind: &'static str,
        url: &str,
        body: &Value,
        accept: impl Fn(&[u8]) -> bool,
    ) {
        let started = Instant::now();
        let outcome = async {
            let response = self.http.post(url).json(body).send().await?;
            let status = response.status();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        }
        .await;
        let elapsed = started.elapsed();
        match outcome {
            Ok((StatusCode::OK, bytes)) if accept(&bytes) => rec.ok(kind, elapsed),
            Ok((status, bytes)) => rec.error(kind, || unexpected(status, url, &bytes)),
            Err(e) => rec.error(kind, || format!("{url}: {e}")),
        }
    }
}

fn unexpected(status: StatusCode, url: &str, bytes: &[u8]) -> String {
    format!(
        "{status} from {url}: {}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
    )
}

/// The (base64) value of the one key a range answer holds.
fn read_value(answer: &[u8]) -> Option<String> {
    let answer: Value = serde_json::from_slice(answer).ok()?;
    match answer["kvs"].as_array()?.as_slice() {
        [kv] => kv["value"].as_str().map(str::to_owned),
        _ => None,
    }
}

/// An [`Etcd`] driven with one scenario.
#[derive(Debug)]
pub(crate) struct Scenario {
    pub(crate) etcd: Arc<Etcd>,
    pub(crate) kind: EtcdScenario,
}

impl Workload for Scenario {
    async fn op(&self, worker: usize, rec: &mut Local) {
        match self.kind {
            EtcdScenario::Put => self.etcd.put(worker, rec).await,
            EtcdScenario::Range => self.etcd.range(worker, rec).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_parse_by_name() {
        assert_eq!(EtcdScenario::parse("put"), Ok(EtcdScenario::Put));
        assert_eq!(EtcdScenario::parse("range"), Ok(EtcdScenario::Range));
        assert!(EtcdScenario::parse("read").unwrap_err().contains("put, range"));
    }

    #[test]
    fn a_range_answer_yields_the_value_of_its_one_key() {
        let one = br#"{"header":{"revision":"9"},"kvs":[{"key":"YQ==","value":"dmFsdWU=","version":"1"}],"count":"1"}"#;
        assert_eq!(read_value(one).as_deref(), Some("dmFsdWU="));
        // A missing key: the gateway leaves `kvs` out.
        assert_eq!(read_value(br#"{"header":{"revision":"9"}}"#), None);
        assert_eq!(read_value(b"not json"), None);
        let two = br#"{"kvs":[{"value":"YQ=="},{"value":"Yg=="}]}"#;
        assert_eq!(read_value(two), None);
    }
}
