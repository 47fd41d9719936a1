//! A single state machine driven directly, one log entry per command: the fastest way to
//! state the agenda rules as tests, without Raft in the way.

use agenda_shared::command::{Accepted, Command, ExecuteResult, Rejection, Request};
use agenda_shared::query::{Query, QueryOutcome};
use consensus_svc::entry::Proposal;
use consensus_svc::state::StateStore;
use consensus_svc::types::Entry;
use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, EntryPayload, LogId};
use tempfile::TempDir;
use uuid::Uuid;

use crate::requests::{appointment, now_ms, register, request};

/// One hour in milliseconds.
pub const HOUR: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY: i64 = 24 * HOUR;

/// A state machine in a temporary folder.
pub struct Machine {
    _dir: TempDir,
    /// The state machine.
    pub sm: StateStore,
    index: u64,
    /// The proposers' clock when set (see [`Machine::set_clock`]); the real clock otherwise.
    clock: Option<i64>,
}

impl Default for Machine {
    fn default() -> Self {
        Self::new()
    }
}

impl Machine {
    /// A fresh, empty state machine.
    pub fn new() -> Self {
        let dir = TempDir::new().expect("dir");
        let sm = StateStore::open(dir.path()).expect("open");
        Self {
            _dir: dir,
            sm,
            index: 0,
            clock: None,
        }
    }

    /// From now on, commands are issued at `at_ms` (log time follows the largest issued
    /// instant): the way to state rules about expiry, windows and "not started yet"
    /// without waiting.
    pub fn set_clock(&mut self, at_ms: i64) {
        self.clock = Some(at_ms);
    }

    /// Move the proposers' clock forward by `ms` (it starts at the real clock's reading).
    pub fn advance(&mut self, ms: i64) {
        self.clock = Some(self.now() + ms);
    }

    /// The instant the next command is issued at.
    pub fn now(&self) -> i64 {
        self.clock.unwrap_or_else(now_ms)
    }

    /// The envelope [`Machine::run`] would apply, for a test to adjust (rules, limits,
    /// token stamp) before [`Machine::apply`].
    pub fn request(&self, actor: Option<Uuid>, cmd: Command) -> Request {
        let mut req = request(actor, cmd);
        req.issued_at_ms = self.now();
        req
    }

    /// Apply one request as the next log entry.
    pub async fn apply(&mut self, req: Request) -> ExecuteResult {
        self.index += 1;
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), self.index),
            payload: EntryPayload::Normal(Proposal::Single(req)),
        };
        let mut out = self.sm.apply(vec![entry]).await.expect("apply");
        out.pop()
            .and_then(|r| r.0.into_iter().next())
            .expect("a command result")
    }

    /// Apply `requests` as one batch entry (format 2) at the next log position; one
    /// result per request, in order.
    pub async fn apply_batch(&mut self, requests: Vec<Request>) -> Vec<ExecuteResult> {
        self.index += 1;
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), self.index),
            payload: EntryPayload::Normal(Proposal::Batch(requests)),
        };
        let mut out = self.sm.apply(vec![entry]).await.expect("apply");
        out.pop().expect("one response per entry").0
    }

    /// Apply `cmd` as `actor`.
    pub async fn run(&mut self, actor: Option<Uuid>, cmd: Command) -> Result<Accepted, Rejection> {
        let req = self.request(actor, cmd);
        self.apply(req).await.outcome
    }

    /// Register `name`; returns the user id.
    pub async fn user(&mut self, name: &str) -> Uuid {
        let (id, cmd) = register(name);
        self.run(None, cmd).await.expect("register");
        id
    }

    /// Book a personal appointment for `owner`.
    pub async fn book(&mut self, owner: Uuid, start: i64, end: i64) -> Result<Uuid, Rejection> {
        let (id, cmd) = appointment("slot", start, end);
        self.run(Some(owner), cmd).await.map(|_| id)
    }

    /// Run a query.
    pub async fn query(&self, query: Query) -> QueryOutcome {
        self.sm.query(query, None).await.expect("query").1
    }

    /// The agenda tables only (audit and idempotency rows are expected to grow).
    pub async fn business_state(&self) -> String {
        self.sm
            .canonical_dump()
            .await
            .expect("dump")
            .lines()
            .filter(|l| !l.starts_with("audit|") && !l.starts_with("idempotency|"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
