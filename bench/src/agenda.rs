//! The Agenda workload: users registered across every slot, each virtual user pinned to
//! one slot, doing what people do with a calendar.
//!
//! - `create`: book a personal appointment;
//! - `read`: read one's agenda for a week (the API's default, linearizable, read);
//! - `group`: book for one's group of four (non-hierarchical, so the three others are
//!   invited) and have each of the three accept on their own slot: 4 requests.
//!
//! Every booked appointment gets its own five-minute slot of time, drawn from one counter
//! shared by all workers ([`Timeline`]), so nobody is ever double-booked: a 409 is an
//! error here, not business as usual, and every request the run counts did the full work.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use futures::StreamExt;
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

use crate::client::{
    Call, SETUP_PARALLELISM, Timeline, User, form_group, http_client, register_users, rfc3339, run_tag, setup_call,
    timed,
};
use crate::driver::Workload;
use crate::stats::Local;

/// Members per benchmark group.
pub(crate) const GROUP_SIZE: usize = 4;
/// Appointments each user books during set-up, inside the first week (what reads see).
const SEED_PER_USER: u64 = 2;

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

/// The cluster, its users and groups.
#[derive(Debug)]
pub(crate) struct Agenda {
    http: reqwest::Client,
    slots: Vec<String>,
    users: Vec<User>,
    /// Group id of each block of [`GROUP_SIZE`] users.
    groups: Vec<Uuid>,
    timeline: Timeline,
}

/// The users and data of an [`Agenda`] driven with one mix of operations.
#[derive(Debug)]
pub(crate) struct Scenario {
    pub(crate) agenda: Arc<Agenda>,
    pub(crate) mix: Mix,
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
        let run = run_tag();
        let run = run.as_str();

        let started = Instant::now();
        let users = register_users(&http, &slots, "b", run, users).await?;
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
                    let others: Vec<&User> = members[1..].iter().collect();
                    form_group(http, slots, &format!("bench {run} #{g}"), &members[0], &others).await
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
            timeline: Timeline::new()?,
        });
        let seeded: Vec<anyhow::Result<()>> =
            futures::stream::iter((0..agenda.users.len()).flat_map(|u| (0..SEED_PER_USER).map(move |_| u)))
                .map(|u| {
                    let agenda = &agenda;
                    async move {
                        let user = &agenda.users[u];
                        let body = agenda.timeline.appointment_body(None);
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

    /// One timed request as `user`; the body when it answered as expected.
    async fn timed(&self, rec: &mut Local, user: &User, call: Call<'_>) -> Option<Value> {
        timed(&self.http, &self.slots[user.slot], &user.token, rec, call)
            .await
            .map(|answer| answer.body)
    }

    async fn create(&self, rec: &mut Local, user: &User) {
        let body = self.timeline.appointment_body(None);
        let call = Call::post("create", "/api/appointments", Some(&body), StatusCode::CREATED);
        self.timed(rec, user, call).await;
    }

    async fn read(&self, rec: &mut Local, user: &User) {
        let base = self.timeline.base;
        let path = format!(
            "/api/agenda?start={}&end={}",
            rfc3339(base).replace('+', "%2B"),
            rfc3339(base + time::Duration::days(7)).replace('+', "%2B")
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
        let body = self.timeline.appointment_body(Some(self.groups[block]));
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
