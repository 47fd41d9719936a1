//! The Agenda workload: users registered across every slot, each virtual user pinned to
//! one slot, doing what people do with a calendar.
//!
//! - `create`: book a personal appointment;
//! - `read`: read one's agenda for a week (the API's default, linearizable, read);
//! - `group`: book for one's group of four (non-hierarchical, so the three others are
//!   invited) and have each of the three accept on their own slot: 4 requests.
//!
//! Every booked appointment gets its own five-minute slot of time, drawn from one counter
//! shared by all workers, so nobody is ever double-booked: a 409 is an error here, not
//! business as usual, and every request the run counts did the full work.

use std::sync::Arc;
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

use crate::driver::Workload;
use crate::stats::Local;

/// Length of one booked slot.
const SLOT_MINUTES: i64 = 5;
/// Members per benchmark group.
pub(crate) const GROUP_SIZE: usize = 4;
/// Appointments each user books during set-up, inside the first week (what reads see).
const SEED_PER_USER: u64 = 2;
/// Parallel requests during set-up (registration hashes passwords: keep it modest).
const SETUP_PARALLELISM: usize = 16;
/// How long one set-up request may keep being retried (429, 5xx, transport errors).
const SETUP_RETRY_BUDGET: Duration = Duration::from_secs(120);

/// Weights of the three operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mix {
    pub(crate) create: u32,
    pub(crate) read: u32,
    pub(crate) group: u32,
}

impl Mix {
    /// Parse `create=60,read=30,group=10` (missing names weigh 0).
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let mut mix = Mix {
            create: 0,
            read: 0,
            group: 0,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("mix entry {part:?} is not name=weight"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("mix weight {weight:?} is not a whole number"))?;
            match name.trim() {
                "create" => mix.create = weight,
                "read" => mix.read = weight,
                "group" => mix.group = weight,
                other => return Err(format!("unknown operation {other:?} in the mix (create, read, group)")),
            }
        }
        if mix.total() == 0 {
            return Err("the mix has no operation with a positive weight".into());
        }
        Ok(mix)
    }

    fn total(self) -> u32 {
        self.create + self.read + self.group
    }

    fn pick(self, roll: u32) -> Op {
        if roll < self.create {
            Op::Create
        } else if roll < self.create + self.read {
            Op::Read
        } else {
            Op::Group
        }
    }

    /// `create=60,read=30,group=10`.
    pub(crate) fn describe(self) -> String {
        format!("create={},read={},group={}", self.create, self.read, self.group)
    }
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Create,
    Read,
    Group,
}

/// A registered benchmark user.
#[derive(Debug, Clone)]
struct User {
    token: String,
    id: Uuid,
    /// Index of the slot this user talks to.
    slot: usize,
}

/// One request to time.
#[derive(Debug)]
struct Call<'a> {
    /// What the statistics call it.
    kind: &'static str,
    method: Method,
    path: &'a str,
    body: Option<&'a Value>,
    /// The status that counts as success.
    expected: StatusCode,
}

impl<'a> Call<'a> {
    fn post(kind: &'static str, path: &'a str, body: Option<&'a Value>, expected: StatusCode) -> Self {
        Self {
            kind,
            method: Method::POST,
            path,
            body,
            expected,
        }
    }
}

/// The cluster, its users and groups.
#[derive(Debug)]
pub(crate) struct Agenda {
    http: reqwest::Client,
    slots: Vec<String>,
    users: Vec<User>,
    /// Group id of each block of [`GROUP_SIZE`] users.
    groups: Vec<Uuid>,
    base: OffsetDateTime,
    next_slot: AtomicU64,
}

/// The users and data of an [`Agenda`] driven with one mix of operations.
#[derive(Debug)]
pub(crate) struct Scenario {
    pub(crate) agenda: Arc<Agenda>,
    pub(crate) mix: Mix,
}

fn rfc3339(t: OffsetDateTime) -> String {
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

impl Agenda {
    /// Register `users` users (rounded up to whole groups) spread over `slots`, form their
    /// groups and seed their first week.
    pub(crate) async fn set_up(slots: Vec<String>, users: usize, timeout: Duration) -> anyhow::Result<Arc<Self>> {
        if slots.is_empty() {
            bail!("no API endpoint given");
        }
        let http = http_client(timeout)?;
        let users = users.div_ceil(GROUP_SIZE) * GROUP_SIZE;
        let run = Uuid::new_v4().simple().to_string();
        let run = &run[..8];
        // A fixed future week per run keeps agendas free of anybody else's data.
        let base = OffsetDateTime::from_unix_timestamp(1_893_456_000)? // 2030-01-01
            + time::Duration::days(i64::from(rand::rng().random_range(0..3000u32)) * 7);

        let started = Instant::now();
        let registered: Vec<anyhow::Result<User>> = futures::stream::iter(0..users)
            .map(|i| {
                let http = &http;
                let slots = &slots;
                async move {
                    let slot = i % slots.len();
                    let body = json!({
                        "username": format!("b{run}-{i}"),
                        "email": format!("b{run}-{i}@bench.invalid"),
                        "password": format!("pw-{run}-{i}-benchmark"),
                    });
                    let reply = setup_call(http, &slots[slot], Method::POST, "/register", None, Some(&body)).await?;
                    let token = reply["token"].as_str().context("register: no token")?.to_owned();
                    let id = reply["user"]["id"].as_str().context("register: no user id")?.parse()?;
                    Ok(User { token, id, slot })
                }
            })
            .buffered(SETUP_PARALLELISM)
            .collect()
            .await;
        let users: Vec<User> = registered.into_iter().collect::<anyhow::Result<_>>()?;
        eprintln!(
            "set-up: {} users registered in {:.1}s",
            users.len(),
            started.elapsed().as_secs_f64()
        );

        let groups: Vec<anyhow::Result<Uuid>> = futures::stream::iter(users.chunks(GROUP_SIZE).enumerate())
            .map(|(g, members)| {
                let http = &http;
                let slots = &slots;
                async move {
                    let creator = &members[0];
                    let base_url = &slots[creator.slot];
                    let body = json!({ "name": format!("bench {run} #{g}"), "group_type": "non_hierarchical" });
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
                    for member in &members[1..] {
                        // Membership is by consent: an invitation, then the member joins.
                        let body = json!({ "user_id": member.id });
                        let path = format!("/api/groups/{id}/members");
                        setup_call(http, base_url, Method::POST, &path, Some(&creator.token), Some(&body)).await?;
                        let join = format!("/api/groups/{id}/join");
                        let member_url = &slots[member.slot];
                        setup_call(http, member_url, Method::POST, &join, Some(&member.token), None).await?;
                    }
                    Ok(id)
                }
            })
            .buffered(SETUP_PARALLELISM)
            .collect()
            .await;
        let groups = groups.into_iter().collect::<anyhow::Result<Vec<_>>>()?;

        let agenda = Arc::new(Self {
            http,
            slots,
            users,
            groups,
            base,
            next_slot: AtomicU64::new(0),
        });
        let seeded: Vec<anyhow::Result<()>> =
            futures::stream::iter((0..agenda.users.len()).flat_map(|u| (0..SEED_PER_USER).map(move |_| u)))
                .map(|u| {
                    let agenda = &agenda;
                    async move {
                        let user = &agenda.users[u];
                        let body = agenda.appointment_body(None);
                        setup_call(
                            &agenda.http,
                            &agenda.slots[user.slot],
                            Method::POST,
                            "/api/appointments",
                            Some(&user.token),
                            Some(&body),
                        )
                        .await
                        .map(|_| ())
                    }
                })
                .buffered(SETUP_PARALLELISM)
                .collect()
                .await;
        seeded.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        eprintln!(
            "set-up: {} groups, {} seed appointments, done in {:.1}s",
            agenda.groups.len(),
            agenda.users.len() as u64 * SEED_PER_USER,
            started.elapsed().as_secs_f64()
        );
        Ok(agenda)
    }

    /// Registered users (the largest concurrency this set-up can drive).
    pub(crate) fn user_count(&self) -> usize {
        self.users.len()
    }

    fn appointment_body(&self, group: Option<Uuid>) -> Value {
        let n = self.next_slot.fetch_add(1, Ordering::Relaxed);
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

    /// One timed request as `user`; `Some(body)` when it answered as expected.
    async fn timed(&self, rec: &mut Local, user: &User, call: Call<'_>) -> Option<Value> {
        let Call {
            kind,
            method,
            path,
            body,
            expected,
        } = call;
        let url = format!("{}{path}", self.slots[user.slot]);
        let mut request = self.http.request(method, &url).bearer_auth(&user.token);
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
        let elapsed = started.elapsed();
        match outcome {
            Ok((status, bytes)) if status == expected => {
                rec.ok(kind, elapsed);
                Some(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
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

    async fn create(&self, rec: &mut Local, user: &User) {
        let body = self.appointment_body(None);
        let call = Call::post("create", "/api/appointments", Some(&body), StatusCode::CREATED);
        self.timed(rec, user, call).await;
    }

    async fn read(&self, rec: &mut Local, user: &User) {
        let path = format!(
            "/api/agenda?start={}&end={}",
            rfc3339(self.base).replace('+', "%2B"),
            rfc3339(self.base + time::Duration::days(7)).replace('+', "%2B")
        );
        let call = Call {
            kind: "read",
            method: Method::GET,
            path: &path,
            body: None,
            expected: StatusCode::OK,
        };
        self.timed(rec, user, call).await;
    }

    async fn group(&self, rec: &mut Local, worker: usize) {
        let block = worker / GROUP_SIZE;
        let creator = &self.users[worker];
        let body = self.appointment_body(Some(self.groups[block]));
        let call = Call::post("group_create", "/api/appointments", Some(&body), StatusCode::CREATED);
        let Some(created) = self.timed(rec, creator, call).await else {
            return;
        };
        let Some(id) = created["id"].as_str().map(str::to_owned) else {
            rec.error("group_create", || "the answer has no id".into());
            return;
        };
        let path = format!("/api/appointments/{id}/accept");
        for member in (block * GROUP_SIZE..(block + 1) * GROUP_SIZE).filter(|&m| m != worker) {
            let member = &self.users[member];
            let call = Call::post("accept", &path, None, StatusCode::OK);
            self.timed(rec, member, call).await;
        }
    }
}

impl Workload for Scenario {
    async fn op(&self, worker: usize, rec: &mut Local) {
        let roll = rand::rng().random_range(0..self.mix.total());
        let agenda = &*self.agenda;
        let worker = worker % agenda.users.len();
        let user = &agenda.users[worker];
        match self.mix.pick(roll) {
            Op::Create => agenda.create(rec, user).await,
            Op::Read => agenda.read(rec, user).await,
            Op::Group => agenda.group(rec, worker).await,
        }
    }
}

/// A set-up request: retried on 429 (after `Retry-After`), 5xx and transport errors
/// within [`SETUP_RETRY_BUDGET`]; the body of a 2xx answer.
async fn setup_call(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_parses_and_picks_by_weight() {
        let mix = Mix::parse("create=60, read=30,group=10").unwrap();
        assert_eq!(mix.describe(), "create=60,read=30,group=10");
        assert!(matches!(mix.pick(0), Op::Create));
        assert!(matches!(mix.pick(59), Op::Create));
        assert!(matches!(mix.pick(60), Op::Read));
        assert!(matches!(mix.pick(89), Op::Read));
        assert!(matches!(mix.pick(90), Op::Group));
        assert!(matches!(Mix::parse("read=1").unwrap().pick(0), Op::Read));
    }

    #[test]
    fn a_bad_mix_is_refused() {
        assert!(Mix::parse("create=0").is_err());
        assert!(Mix::parse("delete=5").is_err());
        assert!(Mix::parse("create").is_err());
        assert!(Mix::parse("create=-1").is_err());
    }
}
