//! Talking to an Agenda cluster, for every Agenda scenario: the HTTP client, registered
//! users, group formation, timed requests and the patient requests of set-up, and the
//! shared counter of free time slots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;
use uuid::Uuid;

use crate::stats::Local;

/// Length of one booked slot.
const SLOT_MINUTES: i64 = 5;
/// Parallel requests during set-up (registration hashes passwords: keep it modest).
pub(crate) const SETUP_PARALLELISM: usize = 16;
/// How long one set-up request may keep being retried (429, 5xx, transport errors).
const SETUP_RETRY_BUDGET: Duration = Duration::from_secs(120);

/// A registered benchmark user.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) token: String,
    pub(crate) id: Uuid,
    /// Index of the slot this user talks to.
    pub(crate) slot: usize,
}

/// One request to time.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    /// What the statistics call it.
    pub(crate) kind: &'static str,
    pub(crate) method: Method,
    pub(crate) path: &'a str,
    pub(crate) body: Option<&'a Value>,
    /// The status that counts as success.
    pub(crate) expected: StatusCode,
}

/// A request answered as expected.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The body (`Null` when it is not JSON).
    pub(crate) body: Value,
    /// When the last byte of the answer arrived.
    pub(crate) at: Instant,
}

impl<'a> Call<'a> {
    pub(crate) fn post(kind: &'static str, path: &'a str, body: Option<&'a Value>, expected: StatusCode) -> Self {
        Self {
            kind,
            method: Method::POST,
            path,
            body,
            expected,
        }
    }
}

/// Free slots of time for bookings: one counter shared by every worker of a run, in a
/// week of the future drawn at random per run (so agendas hold nobody else's data).
#[derive(Debug)]
pub(crate) struct Timeline {
    /// Start of the first slot.
    pub(crate) base: OffsetDateTime,
    next: AtomicU64,
}

impl Timeline {
    /// A timeline starting at a random future week.
    pub(crate) fn new() -> anyhow::Result<Self> {
        let base = OffsetDateTime::from_unix_timestamp(1_893_456_000)? // 2030-01-01
            + time::Duration::days(i64::from(rand::rng().random_range(0..3000u32)) * 7);
        Ok(Self {
            base,
            next: AtomicU64::new(0),
        })
    }

    /// The body of a booking in the next free slot (for `group` when given).
    pub(crate) fn appointment_body(&self, group: Option<Uuid>) -> Value {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let start = self.base + time::Duration::minutes(SLOT_MINUTES * i64::try_from(n).unwrap_or(i64::MAX / 600));
        let mut body = json!({
            "title": format!("bench {n}"),
            "start_time": rfc3339(start),
            "end_time": rfc3339(start + time::Duration::minutes(SLOT_MINUTES)),
        });
        if let Some(group) = group {
            body["group_id"] = json!(group);
        }
        body
    }
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// The HTTP client of both workloads: keep-alive connections, no retries, bounded waits.
pub(crate) fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
        .context("HTTP client")
}

/// Register `count` users over `slots` (user `i` on slot `i mod n`), named after `tag` and
/// `run`.
pub(crate) async fn register_users(
    http: &reqwest::Client,
    slots: &[String],
    tag: &str,
    run: &str,
    count: usize,
) -> anyhow::Result<Vec<User>> {
    let registered: Vec<anyhow::Result<User>> = futures::stream::iter(0..count)
        .map(|i| async move {
            let slot = i % slots.len();
            let body = json!({
                "username": format!("{tag}{run}-{i}"),
                "email": format!("{tag}{run}-{i}@bench.invalid"),
                "password": format!("pw-{run}-{i}-benchmark"),
            });
            let reply = setup_call(http, &slots[slot], Method::POST, "/register", None, Some(&body)).await?;
            let token = reply["token"].as_str().context("register: no token")?.to_owned();
            let id = reply["user"]["id"].as_str().context("register: no user id")?.parse()?;
            Ok(User { token, id, slot })
        })
        .buffered(SETUP_PARALLELISM)
        .collect()
        .await;
    registered.into_iter().collect()
}

/// Create a non-hierarchical group named `name` as `creator` and bring `members` in.
pub(crate) async fn form_group(
    http: &reqwest::Client,
    slots: &[String],
    name: &str,
    creator: &User,
    members: &[&User],
) -> anyhow::Result<Uuid> {
    let base_url = &slots[creator.slot];
    let body = json!({ "name": name, "group_type": "non_hierarchical" });
    let group = setup_call(
        http,
        base_url,
        Method::POST,
        "/api/groups",
        Some(&creator.token),
        Some(&body),
    )
    .await?;
    let id: Uuid = group["id"].as_str().context("group: no id")?.parse()?;
    for member in members {
        // Membership is by consent: an invitation, then the member joins.
        let body = json!({ "user_id": member.id });
        let path = format!("/api/groups/{id}/members");
        setup_call(http, base_url, Method::POST, &path, Some(&creator.token), Some(&body)).await?;
        let join = format!("/api/groups/{id}/join");
        setup_call(
            http,
            &slots[member.slot],
            Method::POST,
            &join,
            Some(&member.token),
            None,
        )
        .await?;
    }
    Ok(id)
}

/// One timed request as `token` to `base`; the answer when it came with the expected
/// status (recorded as a success), `None` otherwise (recorded as an error).
pub(crate) async fn timed(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    rec: &mut Local,
    call: Call<'_>,
) -> Option<Answer> {
    let Call {
        kind,
        method,
        path,
        body,
        expected,
    } = call;
    let url = format!("{base}{path}");
    let mut request = http.request(method, &url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    let started = Instant::now();
    let outcome = async {
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, bytes))
    }
    .await;
    let at = Instant::now();
    let elapsed = at - started;
    match outcome {
        Ok((status, bytes)) if status == expected => {
            rec.ok(kind, elapsed);
            Some(Answer {
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                at,
            })
        }
        Ok((status, bytes)) => {
            rec.error(kind, || {
                let text = String::from_utf8_lossy(&bytes);
                format!("{status} from {url}: {}", text.chars().take(200).collect::<String>())
            });
            None
        }
        Err(e) => {
            rec.error(kind, || format!("{url}: {e}"));
            None
        }
    }
}

/// A short random tag telling this run's users and keys from earlier runs'.
pub(crate) fn run_tag() -> String {
    Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// A set-up request: retried on 429 (after `Retry-After`), 5xx and transport errors
/// within [`SETUP_RETRY_BUDGET`]; the body of a 2xx answer.
pub(crate) async fn setup_call(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + SETUP_RETRY_BUDGET;
    let key = Uuid::new_v4().to_string();
    loop {
        let mut request = http
            .request(method.clone(), format!("{base}{path}"))
            .header("Idempotency-Key", &key);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let wait = match request.send().await {
            Ok(response) if response.status().is_success() => {
                return response.json().await.context("set-up answer is not JSON");
            }
            Ok(response)
                if response.status() == StatusCode::TOO_MANY_REQUESTS || response.status().is_server_error() =>
            {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                Duration::from_secs(retry_after.clamp(1, 10))
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                bail!("{method} {base}{path}: {status}: {text}");
            }
            Err(_) => Duration::from_millis(500),
        };
        if Instant::now() + wait > deadline {
            bail!("{method} {base}{path}: still failing after {SETUP_RETRY_BUDGET:?}");
        }
        tokio::time::sleep(wait).await;
    }
}
