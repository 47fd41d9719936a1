//! The running agent's shared state: the member table behind a short-lived mutex, the
//! change notifications that drive `WatchMembers` and persistence, and the address book
//! (seeds, DNS answers, addresses known to be this agent) that gossip picks peers from.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use agenda_shared::discovery_proto as pb;
use rand::seq::IteratorRandom;
use tokio::sync::watch;

use crate::config::Timings;
use crate::faults::Faults;
use crate::table::{LocalUpdate, MemberTable, Merge};
use agenda_shared::rpc::member::{InvalidMember, Member, Source};

/// Largest number of members accepted in one digest.
pub const MAX_DIGEST_MEMBERS: usize = 1024;

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why a received digest was refused as a whole (nothing of it is merged).
#[derive(Debug, thiserror::Error)]
pub enum InvalidDigest {
    /// More than [`MAX_DIGEST_MEMBERS`] members.
    #[error("digest too large ({0} members)")]
    TooLarge(usize),
    /// The sender's own entry is missing.
    #[error("digest from {0:?} lacks the sender's own entry")]
    NoSenderEntry(String),
    /// A member failed validation.
    #[error(transparent)]
    Member(#[from] InvalidMember),
}

/// A peer to gossip with this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// `host:port` to call.
    pub(crate) addr: String,
    /// How the address is known: `Seed`, `Dns` or `Gossip` (a member's advertised address).
    pub(crate) origin: Source,
    /// The member advertising this address, if any.
    pub(crate) node: Option<String>,
}

#[derive(Debug, Default)]
struct AddressBook {
    seeds: Vec<String>,
    dns: BTreeSet<String>,
    /// Addresses that answered as this very agent (DNS lists every task, itself included).
    own: HashSet<String>,
}

/// Shared state of one agent.
pub(crate) struct Agent {
    node_id: String,
    table: Mutex<MemberTable>,
    revision: watch::Sender<u64>,
    book: Mutex<AddressBook>,
    pub(crate) faults: Arc<Faults>,
    pub(crate) timings: Timings,
}

impl Agent {
    pub(crate) fn new(
        table: MemberTable,
        seeds: Vec<String>,
        own_addrs: impl IntoIterator<Item = String>,
        faults: Arc<Faults>,
        timings: Timings,
    ) -> Self {
        let (revision, _) = watch::channel(table.revision());
        Self {
            node_id: table.self_id().to_owned(),
            table: Mutex::new(table),
            revision,
            book: Mutex::new(AddressBook {
                seeds,
                dns: BTreeSet::new(),
                own: own_addrs.into_iter().collect(),
            }),
            faults,
            timings,
        }
    }

    /// This agent's node id.
    pub(crate) fn node_id(&self) -> &str {
        &self.node_id
    }

    fn table(&self) -> MutexGuard<'_, MemberTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn book(&self) -> MutexGuard<'_, AddressBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on the table, then wake the watchers if the revision moved.
    fn mutate<R>(&self, f: impl FnOnce(&mut MemberTable) -> R) -> R {
        let (result, revision) = {
            let mut table = self.table();
            let result = f(&mut table);
            (result, table.revision())
        };
        self.revision.send_if_modified(|current| {
            if *current == revision {
                false
            } else {
                *current = revision;
                true
            }
        });
        result
    }

    /// Receives the table revision after each change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    /// The revision and the whole table, sorted by node id.
    pub(crate) fn snapshot(&self) -> (u64, Vec<Member>) {
        let table = self.table();
        (table.revision(), table.members(now_ms()))
    }

    /// This agent's own entry.
    pub(crate) fn me(&self) -> Member {
        self.table().me().clone()
    }

    /// The table as a `MembersReply`.
    pub(crate) fn members_reply(&self) -> pb::MembersReply {
        let (revision, members) = self.snapshot();
        pb::MembersReply {
            self_node_id: self.node_id.clone(),
            revision,
            members: members.iter().map(pb::Member::from).collect(),
        }
    }

    /// The digest this agent sends (or answers with).
    pub(crate) fn digest(&self) -> pb::Digest {
        let (_, members) = self.snapshot();
        pb::Digest {
            from_node_id: self.node_id.clone(),
            members: members.iter().map(pb::Member::from).collect(),
        }
    }

    /// Validate and merge a digest received from another agent (as a request or a reply).
    /// The sender's entry is recorded with `sender_source` if it is new; the entries it
    /// relays with `gossip`. Returns whether the table changed.
    pub(crate) fn merge_digest(&self, digest: pb::Digest, sender_source: Source) -> Result<bool, InvalidDigest> {
        if digest.members.len() > MAX_DIGEST_MEMBERS {
            return Err(InvalidDigest::TooLarge(digest.members.len()));
        }
        if !digest.members.iter().any(|m| m.node_id == digest.from_node_id) {
            return Err(InvalidDigest::NoSenderEntry(
                digest.from_node_id.chars().take(64).collect(),
            ));
        }
        let members = digest
            .members
            .into_iter()
            .map(Member::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let (now, wall) = (Instant::now(), now_ms());
        let changed = self.mutate(|table| {
            let mut changed = false;
            for m in members {
                let source = if m.node_id == digest.from_node_id {
                    sender_source
                } else {
                    Source::Gossip
                };
                changed |= table.merge(m, source, now, wall) == Merge::Changed;
            }
            changed
        });
        Ok(changed)
    }

    /// One gossip round's bookkeeping: apply the failure-detection timers and raise the
    /// own heartbeat.
    pub(crate) fn tick(&self) {
        let (suspect, dead) = (self.timings.suspect_after(), self.timings.dead_after());
        let transitions = self.mutate(|table| {
            table.beat();
            table.expire(Instant::now(), suspect, dead)
        });
        for t in transitions {
            tracing::info!(node = %t.node_id, state = %t.state, "no news from member");
        }
    }

    /// Apply a report from the local store or API; returns the own incarnation after it.
    pub(crate) fn update_local(&self, update: &LocalUpdate) -> u64 {
        self.mutate(|table| {
            if table.update_local(update) == Merge::Changed {
                tracing::info!(update = ?update, incarnation = table.me().incarnation, "local report");
            }
            table.me().incarnation
        })
    }

    /// Mark this agent as leaving (own entry `left`).
    pub(crate) fn leave(&self) {
        self.mutate(|table| table.leave());
    }

    /// Replace the addresses found through DNS.
    pub(crate) fn set_dns(&self, addrs: BTreeSet<String>) {
        let mut book = self.book();
        if book.dns != addrs {
            tracing::info!(addresses = ?addrs, "DNS addresses changed");
            book.dns = addrs;
        }
    }

    /// Remember that `addr` reaches this very agent, so it is not called again.
    pub(crate) fn note_own_addr(&self, addr: &str) {
        if self.book().own.insert(addr.to_owned()) {
            tracing::debug!(addr, "address answers as this agent; skipping it");
        }
    }

    /// Up to `fanout` distinct peers picked at random among every known address: the
    /// members' advertised addresses (dead and left ones too, or a partition could never
    /// heal), the seeds and the DNS answers, minus this agent's own addresses.
    pub(crate) fn gossip_targets(&self, fanout: usize) -> Vec<Target> {
        self.targets(fanout, true, |_| true)
    }

    /// Like [`Agent::gossip_targets`] but among alive members only (for the leave notice).
    pub(crate) fn alive_targets(&self, fanout: usize) -> Vec<Target> {
        self.targets(fanout, false, Member::is_alive)
    }

    fn targets(&self, fanout: usize, with_sources: bool, keep: impl Fn(&Member) -> bool) -> Vec<Target> {
        let mut candidates: BTreeMap<String, Target> = BTreeMap::new();
        {
            let table = self.table();
            for m in table.others().filter(|m| keep(m) && !m.discovery_addr.is_empty()) {
                candidates.insert(
                    m.discovery_addr.clone(),
                    Target {
                        addr: m.discovery_addr.clone(),
                        origin: Source::Gossip,
                        node: Some(m.node_id.clone()),
                    },
                );
            }
        }
        let book = self.book();
        let mut extra = |addr: &String, origin: Source| {
            candidates
                .entry(addr.clone())
                .and_modify(|t| {
                    if t.origin == Source::Gossip {
                        t.origin = origin;
                    }
                })
                .or_insert_with(|| Target {
                    addr: addr.clone(),
                    origin,
                    node: None,
                });
        };
        if with_sources {
            for s in &book.seeds {
                extra(s, Source::Seed);
            }
            for d in &book.dns {
                extra(d, Source::Dns);
            }
        }
        candidates
            .into_values()
            .filter(|t| !book.own.contains(&t.addr))
            .choose_multiple(&mut rand::rng(), fanout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agenda_shared::rpc::member::{MemberState, parse_slot};

    fn member(node_id: &str, addr: &str) -> Member {
        Member {
            node_id: node_id.into(),
            slot: parse_slot(node_id).unwrap_or(0),
            store_addr: String::new(),
            api_addr: String::new(),
            discovery_addr: addr.into(),
            store_raft_id: None,
            store_pristine: false,
            store_has_cluster: false,
            store_cluster_id: None,
            api_ready: false,
            store_alarms: Vec::new(),
            source: Source::Gossip,
            last_seen_ms: 0,
            incarnation: 1,
            heartbeat: 0,
            state: MemberState::Alive,
        }
    }

    fn agent() -> Agent {
        let table = MemberTable::new(member("agenda-1", "me:1"), Vec::new(), Instant::now(), 0);
        Agent::new(
            table,
            vec!["seed:1".into(), "me:1".into()],
            ["me:1".to_owned()],
            Arc::default(),
            Timings::default(),
        )
    }

    fn digest(from: &str, members: &[Member]) -> pb::Digest {
        pb::Digest {
            from_node_id: from.into(),
            members: members.iter().map(pb::Member::from).collect(),
        }
    }

    #[test]
    fn targets_come_from_members_seeds_and_dns_but_never_from_self() {
        let a = agent();
        a.merge_digest(digest("agenda-2", &[member("agenda-2", "two:1")]), Source::Seed)
            .expect("merge");
        a.set_dns(["dns:1".to_owned(), "me:1".to_owned()].into());
        let mut all: Vec<String> = a.gossip_targets(10).into_iter().map(|t| t.addr).collect();
        all.sort();
        assert_eq!(all, vec!["dns:1", "seed:1", "two:1"]);
        assert_eq!(a.gossip_targets(2).len(), 2);

        a.note_own_addr("dns:1");
        let alive: Vec<String> = a.alive_targets(10).into_iter().map(|t| t.addr).collect();
        assert_eq!(alive, vec!["two:1"], "the leave notice goes to members only");
        assert!(!a.gossip_targets(10).iter().any(|t| t.addr == "dns:1"));
    }

    #[test]
    fn a_digest_is_merged_whole_or_not_at_all() {
        let a = agent();
        let err = a.merge_digest(digest("agenda-2", &[member("agenda-3", "x:1")]), Source::Gossip);
        assert!(matches!(err, Err(InvalidDigest::NoSenderEntry(_))));

        let mut bad = digest("agenda-2", &[member("agenda-2", "two:1"), member("agenda-3", "x:1")]);
        bad.members[1].node_id = "no-slot".into();
        assert!(matches!(
            a.merge_digest(bad, Source::Gossip),
            Err(InvalidDigest::Member(_))
        ));
        assert_eq!(a.snapshot().1.len(), 1, "nothing merged");

        let many: Vec<Member> = (0..=MAX_DIGEST_MEMBERS)
            .map(|i| member(&format!("n-{}", i + 1), "a:1"))
            .collect();
        let err = a.merge_digest(digest("n-1", &many), Source::Gossip);
        assert!(matches!(err, Err(InvalidDigest::TooLarge(_))));

        let sender = member("agenda-2", "two:1");
        let relayed = member("agenda-3", "three:1");
        assert!(
            a.merge_digest(digest("agenda-2", &[sender, relayed]), Source::Dns)
                .expect("merge")
        );
        let sources: Vec<Source> = a.snapshot().1.iter().map(|m| m.source).collect();
        assert_eq!(sources, vec![Source::SelfNode, Source::Dns, Source::Gossip]);
    }

    #[test]
    fn watchers_wake_on_changes_but_not_on_heartbeats() {
        let a = agent();
        let mut rx = a.subscribe();
        rx.borrow_and_update();
        a.tick();
        assert!(!rx.has_changed().expect("open"), "a heartbeat is not a change");
        a.update_local(&LocalUpdate {
            api_ready: Some(true),
            ..LocalUpdate::default()
        });
        assert!(rx.has_changed().expect("open"));
    }
}
