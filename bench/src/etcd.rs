//! The etcd workload: `PUT`s through etcd's HTTP JSON gateway (`POST /v3/kv/put`, key and
//! value base64), worker `w` talking to endpoint `w mod n`, exactly as the Agenda workload
//! spreads its users over the slots. A fresh key per request, a value of a fixed size.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::agenda::http_client;
use crate::driver::Workload;
use crate::stats::Local;

/// etcd endpoints and what to write.
#[derive(Debug)]
pub(crate) struct Etcd {
    http: reqwest::Client,
    endpoints: Vec<String>,
    prefix: String,
    value: String,
    next: AtomicU64,
}

impl Etcd {
    /// A workload over `endpoints` writing `value_size`-byte values; checks every endpoint
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
        let run = uuid::Uuid::new_v4().simple().to_string();
        Ok(Self {
            http,
            endpoints,
            prefix: format!("bench/{}/", &run[..8]),
            value: STANDARD.encode(value),
            next: AtomicU64::new(0),
        })
    }
}

impl Workload for Etcd {
    async fn op(&self, worker: usize, rec: &mut Local) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}/v3/kv/put", self.endpoints[worker % self.endpoints.len()]);
        let body = json!({ "key": STANDARD.encode(format!("{}{n:012}", self.prefix)), "value": self.value });
        let started = Instant::now();
        let outcome = async {
            let response = self.http.post(&url).json(&body).send().await?;
            let status = response.status();
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, bytes))
        }
        .await;
        let elapsed = started.elapsed();
        match outcome {
            // The gateway answers 200 with a header carrying the new revision.
            Ok((StatusCode::OK, bytes)) if bytes.windows(8).any(|w| w == b"revision") => rec.ok("put", elapsed),
            Ok((status, bytes)) => rec.error("put", || {
                format!(
                    "{status} from {url}: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                )
            }),
            Err(e) => rec.error("put", || format!("{url}: {e}")),
        }
    }
}
