//! The member table and its merge rules (pure logic; time is passed in).
//!
//! Rules, SWIM-style:
//! - Only a member raises its own incarnation: at every start, to refute a report about
//!   itself that is not older than its own and differs from it (suspect, dead, left, other
//!   content), and when its store or API reports a change.
//! - Between two reports about the same member, the higher incarnation wins; for the same
//!   incarnation `left > dead > suspect > alive`. A report that wins replaces the entry's
//!   content; a report with the same key and a higher heartbeat is fresh news.
//! - Fresh news (a newer incarnation, or a higher heartbeat) refreshes `last_seen`.
//!   Suspicion or death relayed by others is not news *from* the member: it does not.
//! - An alive member without fresh news for `suspect_after` becomes suspect; a suspect
//!   one without fresh news for `dead_after` (counted from the last news) becomes dead.
//!   Both are local decisions that then spread by gossip with the same incarnation.
//! - Members are keyed by node id, never by address; nothing is ever forgotten (slots are
//!   few and fixed; dead entries are what the store's reconciler needs to see).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use agenda_shared::rpc::member::{Member, MemberState, Source};

/// What merging one report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// Older or identical news: nothing changed.
    Ignored,
    /// Fresh heartbeat only: `last_seen` moved, the table's revision did not.
    Refreshed,
    /// A member was added or its incarnation, state or content changed.
    Changed,
}

/// A partial update of this node's own entry, from its store or API (`UpdateLocal`).
/// `None` fields are left unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalUpdate {
    /// The store's Raft node id.
    pub store_raft_id: Option<u64>,
    /// The store has no Raft state yet.
    pub store_pristine: Option<bool>,
    /// The store belongs to an initialised cluster.
    pub store_has_cluster: Option<bool>,
    /// That cluster's id; `Some("")` clears it.
    pub store_cluster_id: Option<String>,
    /// The API is ready.
    pub api_ready: Option<bool>,
    /// The store's active alarms; `Some(empty)` clears them.
    pub store_alarms: Option<Vec<String>>,
}

/// A state change decided by [`MemberTable::expire`], for logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Member concerned.
    pub node_id: String,
    /// New state.
    pub state: MemberState,
}

#[derive(Debug, Clone)]
struct Entry {
    member: Member,
    /// Monotonic instant of the last fresh news (drives the suspect/dead timers).
    seen_at: Instant,
}

/// The member table of one agent, including its own entry.
#[derive(Debug, Clone)]
pub struct MemberTable {
    me: Member,
    /// Every other member, by node id.
    others: BTreeMap<String, Entry>,
    revision: u64,
    leaving: bool,
}

impl MemberTable {
    /// A table holding only `me` (state forced to alive, source `self`), plus the members
    /// `restored` from a previous run. The own incarnation becomes one more than the
    /// highest known for this node, so a restart refutes whatever the others remember.
    /// Restored members get a full suspicion delay from `now` before they are suspected.
    pub fn new(mut me: Member, restored: Vec<Member>, now: Instant, now_ms: u64) -> Self {
        let previous = restored
            .iter()
            .filter(|m| m.node_id == me.node_id)
            .map(|m| m.incarnation)
            .max()
            .unwrap_or(0);
        me.incarnation = me.incarnation.max(previous) + 1;
        me.state = MemberState::Alive;
        me.source = Source::SelfNode;
        me.last_seen_ms = now_ms;
        let others = restored
            .into_iter()
            .filter(|m| m.node_id != me.node_id)
            .map(|m| {
                (
                    m.node_id.clone(),
                    Entry {
                        member: m,
                        seen_at: now,
                    },
                )
            })
            .collect();
        Self {
            me,
            others,
            revision: 1,
            leaving: false,
        }
    }

    /// This node's id.
    pub fn self_id(&self) -> &str {
        &self.me.node_id
    }

    /// Raised on every [`Merge::Changed`]-level change.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// This node's own entry.
    pub fn me(&self) -> &Member {
        &self.me
    }

    /// One member by node id.
    pub fn get(&self, node_id: &str) -> Option<&Member> {
        if node_id == self.me.node_id {
            return Some(&self.me);
        }
        self.others.get(node_id).map(|e| &e.member)
    }

    /// The other members, by node id.
    pub fn others(&self) -> impl Iterator<Item = &Member> {
        self.others.values().map(|e| &e.member)
    }

    /// Every member, sorted by node id; the own entry's `last_seen_ms` is `now_ms`.
    pub fn members(&self, now_ms: u64) -> Vec<Member> {
        let mut me = self.me.clone();
        me.last_seen_ms = now_ms;
        let mut all: Vec<Member> = self.others().cloned().collect();
        let at = all.partition_point(|m| m.node_id < me.node_id);
        all.insert(at, me);
        all
    }

    fn changed(&mut self) -> Merge {
        self.revision += 1;
        Merge::Changed
    }

    /// Merge one report received from another agent. `source` is recorded if the member
    /// is new to this table.
    pub fn merge(&mut self, remote: Member, source: Source, now: Instant, now_ms: u64) -> Merge {
        if remote.node_id == self.me.node_id {
            return self.merge_about_me(&remote);
        }
        let Some(entry) = self.others.get_mut(&remote.node_id) else {
            let mut member = remote;
            member.source = source;
            member.last_seen_ms = now_ms;
            tracing::info!(
                node = %member.node_id,
                state = %member.state,
                incarnation = member.incarnation,
                source = source.as_str(),
                "new member"
            );
            self.others
                .insert(member.node_id.clone(), Entry { member, seen_at: now });
            return self.changed();
        };
        let local = &mut entry.member;
        match remote.precedence_key().cmp(&local.precedence_key()) {
            std::cmp::Ordering::Greater => {
                let newer_incarnation = remote.incarnation > local.incarnation;
                if remote.state != local.state {
                    tracing::info!(
                        node = %remote.node_id,
                        from = %local.state,
                        to = %remote.state,
                        incarnation = remote.incarnation,
                        "member state changed by gossip"
                    );
                }
                let keep_source = local.source;
                let keep_seen = local.last_seen_ms;
                *local = remote;
                local.source = keep_source;
                if newer_incarnation {
                    // Only the member raises its incarnation: this is news from it.
                    local.last_seen_ms = now_ms;
                    entry.seen_at = now;
                } else {
                    local.last_seen_ms = keep_seen;
                }
                self.changed()
            }
            std::cmp::Ordering::Equal if remote.heartbeat > local.heartbeat => {
                local.heartbeat = remote.heartbeat;
                local.last_seen_ms = now_ms;
                entry.seen_at = now;
                Merge::Refreshed
            }
            _ => Merge::Ignored,
        }
    }

    /// A report about this node: refute it if it is not older than ours and says
    /// something else (suspect, dead, left, other content).
    fn merge_about_me(&mut self, remote: &Member) -> Merge {
        let me = &self.me;
        if remote.incarnation < me.incarnation {
            return Merge::Ignored;
        }
        let identical = remote.incarnation == me.incarnation && remote.state == me.state && remote.same_content(me);
        let weaker = remote.incarnation == me.incarnation && remote.state.precedence() < me.state.precedence();
        if identical || weaker {
            return Merge::Ignored;
        }
        let refuted = remote.incarnation;
        let leaving = self.leaving;
        let me = &mut self.me;
        if remote.discovery_addr != me.discovery_addr {
            tracing::warn!(
                node = %me.node_id,
                other_addr = %remote.discovery_addr,
                "a report about this node id carries another address: is NODE_ID used twice?"
            );
        }
        tracing::info!(
            node = %me.node_id,
            claimed = %remote.state,
            incarnation = refuted,
            new_incarnation = refuted + 1,
            "refuting a report about this node"
        );
        me.incarnation = refuted + 1;
        me.state = if leaving { MemberState::Left } else { MemberState::Alive };
        self.changed()
    }

    /// Raise the own heartbeat (once per gossip round). Not a change.
    pub fn beat(&mut self) {
        self.me.heartbeat += 1;
    }

    /// Apply the suspicion and death timers; returns the transitions made.
    pub fn expire(&mut self, now: Instant, suspect_after: Duration, dead_after: Duration) -> Vec<Transition> {
        let mut transitions = Vec::new();
        for (id, entry) in self.others.iter_mut() {
            let silent = now.saturating_duration_since(entry.seen_at);
            let m = &mut entry.member;
            if m.state == MemberState::Alive && silent >= suspect_after {
                m.state = MemberState::Suspect;
                transitions.push(Transition {
                    node_id: id.clone(),
                    state: MemberState::Suspect,
                });
            }
            if m.state == MemberState::Suspect && silent >= dead_after {
                m.state = MemberState::Dead;
                transitions.push(Transition {
                    node_id: id.clone(),
                    state: MemberState::Dead,
                });
            }
        }
        if !transitions.is_empty() {
            self.revision += 1;
        }
        transitions
    }

    /// Apply a report from the local store or API; raises the own incarnation when
    /// something changed so the new content wins everywhere.
    pub fn update_local(&mut self, update: &LocalUpdate) -> Merge {
        let me = &mut self.me;
        let before = me.clone();
        if let Some(id) = update.store_raft_id {
            me.store_raft_id = Some(id);
        }
        if let Some(p) = update.store_pristine {
            me.store_pristine = p;
        }
        if let Some(c) = update.store_has_cluster {
            me.store_has_cluster = c;
        }
        if let Some(id) = &update.store_cluster_id {
            me.store_cluster_id = Some(id.clone()).filter(|id| !id.is_empty());
        }
        if let Some(r) = update.api_ready {
            me.api_ready = r;
        }
        if let Some(alarms) = &update.store_alarms {
            me.store_alarms = alarms.clone();
        }
        if me.same_content(&before) {
            return Merge::Ignored;
        }
        me.incarnation += 1;
        self.changed()
    }

    /// Announce a graceful shutdown: the own entry becomes `left` (same incarnation, which
    /// wins over `alive`); later refutations keep it `left`.
    pub fn leave(&mut self) -> Merge {
        self.leaving = true;
        let me = &mut self.me;
        if me.state == MemberState::Left {
            return Merge::Ignored;
        }
        me.state = MemberState::Left;
        self.changed()
    }

    /// Whether [`MemberTable::leave`] was called.
    pub fn is_leaving(&self) -> bool {
        self.leaving
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agenda_shared::rpc::member::parse_slot;

    fn member(node_id: &str, incarnation: u64, state: MemberState) -> Member {
        Member {
            node_id: node_id.into(),
            slot: parse_slot(node_id).unwrap_or(0),
            store_addr: format!("store-{node_id}:7000"),
            api_addr: format!("api-{node_id}:8080"),
            discovery_addr: format!("discovery-{node_id}:7100"),
            store_raft_id: None,
            store_pristine: true,
            store_has_cluster: false,
            store_cluster_id: None,
            api_ready: false,
            store_alarms: Vec::new(),
            source: Source::Gossip,
            last_seen_ms: 0,
            incarnation,
            heartbeat: 0,
            state,
        }
    }

    const SUSPECT: Duration = Duration::from_secs(5);
    const DEAD: Duration = Duration::from_secs(30);

    fn table(now: Instant) -> MemberTable {
        MemberTable::new(member("agenda-1", 0, MemberState::Alive), Vec::new(), now, 1000)
    }

    #[test]
    fn a_new_member_is_added_with_its_source() {
        let now = Instant::now();
        let mut t = table(now);
        let rev = t.revision();
        assert_eq!(
            t.merge(member("agenda-2", 1, MemberState::Alive), Source::Dns, now, 2000),
            Merge::Changed
        );
        let m = t.get("agenda-2").expect("added");
        assert_eq!((m.source, m.last_seen_ms), (Source::Dns, 2000));
        assert!(t.revision() > rev);
    }

    #[test]
    fn a_newer_incarnation_wins_whatever_its_state() {
        let now = Instant::now();
        let mut t = table(now);
        t.merge(member("agenda-2", 5, MemberState::Dead), Source::Seed, now, 1);
        assert_eq!(
            t.merge(member("agenda-2", 6, MemberState::Alive), Source::Gossip, now, 2),
            Merge::Changed
        );
        let m = t.get("agenda-2").expect("present");
        assert_eq!((m.incarnation, m.state), (6, MemberState::Alive));
        assert_eq!(m.source, Source::Seed, "the first source is kept");
        assert_eq!(m.last_seen_ms, 2, "a new incarnation is fresh news");

        assert_eq!(
            t.merge(member("agenda-2", 5, MemberState::Left), Source::Gossip, now, 3),
            Merge::Ignored,
            "an older incarnation loses even with a stronger state"
        );
        assert_eq!(t.get("agenda-2").map(|m| m.state), Some(MemberState::Alive));
    }

    #[test]
    fn for_the_same_incarnation_left_beats_dead_beats_suspect_beats_alive() {
        let order = [
            MemberState::Alive,
            MemberState::Suspect,
            MemberState::Dead,
            MemberState::Left,
        ];
        for (i, weaker) in order.iter().enumerate() {
            for stronger in &order[i + 1..] {
                let now = Instant::now();
                let mut t = table(now);
                t.merge(member("agenda-2", 4, *weaker), Source::Gossip, now, 1);
                assert_eq!(
                    t.merge(member("agenda-2", 4, *stronger), Source::Gossip, now, 2),
                    Merge::Changed
                );
                assert_eq!(
                    t.merge(member("agenda-2", 4, *weaker), Source::Gossip, now, 3),
                    Merge::Ignored
                );
                assert_eq!(t.get("agenda-2").map(|m| m.state), Some(*stronger));
            }
        }
    }

    #[test]
    fn relayed_suspicion_is_not_news_but_a_higher_heartbeat_is() {
        let t0 = Instant::now();
        let mut t = table(t0);
        t.merge(member("agenda-2", 1, MemberState::Alive), Source::Gossip, t0, 100);
        let t1 = t0 + Duration::from_secs(2);
        t.merge(member("agenda-2", 1, MemberState::Suspect), Source::Gossip, t1, 200);
        assert_eq!(t.get("agenda-2").map(|m| m.last_seen_ms), Some(100));

        let mut fresh = member("agenda-2", 1, MemberState::Suspect);
        fresh.heartbeat = 7;
        let rev = t.revision();
        assert_eq!(t.merge(fresh, Source::Gossip, t1, 300), Merge::Refreshed);
        assert_eq!(t.get("agenda-2").map(|m| (m.last_seen_ms, m.heartbeat)), Some((300, 7)));
        assert_eq!(t.revision(), rev, "a heartbeat is not a table change");
    }

    #[test]
    fn silence_turns_alive_into_suspect_then_dead_and_news_resets_the_clock() {
        let t0 = Instant::now();
        let mut t = table(t0);
        t.merge(member("agenda-2", 1, MemberState::Alive), Source::Gossip, t0, 0);
        assert!(t.expire(t0 + Duration::from_secs(4), SUSPECT, DEAD).is_empty());
        let tr = t.expire(t0 + SUSPECT, SUSPECT, DEAD);
        assert_eq!(
            tr,
            vec![Transition {
                node_id: "agenda-2".into(),
                state: MemberState::Suspect
            }]
        );
        let mut beat = member("agenda-2", 1, MemberState::Suspect);
        beat.heartbeat = 1;
        t.merge(beat, Source::Gossip, t0 + Duration::from_secs(20), 0);
        assert!(t.expire(t0 + DEAD, SUSPECT, DEAD).is_empty(), "news 10 s ago");
        let tr = t.expire(t0 + Duration::from_secs(50), SUSPECT, DEAD);
        assert_eq!(tr.last().map(|x| x.state), Some(MemberState::Dead));
        assert_eq!(t.get("agenda-2").map(|m| m.state), Some(MemberState::Dead));
        assert_eq!(
            t.get("agenda-1").map(|m| m.state),
            Some(MemberState::Alive),
            "never self"
        );
    }

    #[test]
    fn a_long_silence_goes_straight_to_dead_in_one_tick() {
        let t0 = Instant::now();
        let mut t = table(t0);
        t.merge(member("agenda-2", 1, MemberState::Alive), Source::Gossip, t0, 0);
        let tr = t.expire(t0 + DEAD, SUSPECT, DEAD);
        assert_eq!(tr.len(), 2);
        assert_eq!(t.get("agenda-2").map(|m| m.state), Some(MemberState::Dead));
    }

    #[test]
    fn a_node_refutes_suspicion_of_itself_with_a_higher_incarnation() {
        let now = Instant::now();
        let mut t = table(now);
        let inc = t.me().incarnation;
        assert_eq!(
            t.merge(member("agenda-1", inc, MemberState::Suspect), Source::Gossip, now, 0),
            Merge::Changed
        );
        assert_eq!((t.me().incarnation, t.me().state), (inc + 1, MemberState::Alive));

        assert_eq!(
            t.merge(member("agenda-1", inc + 7, MemberState::Dead), Source::Gossip, now, 0),
            Merge::Changed
        );
        assert_eq!((t.me().incarnation, t.me().state), (inc + 8, MemberState::Alive));

        assert_eq!(
            t.merge(member("agenda-1", inc + 3, MemberState::Dead), Source::Gossip, now, 0),
            Merge::Ignored,
            "older news about me is harmless"
        );
        let mine = t.me().clone();
        assert_eq!(t.merge(mine, Source::Gossip, now, 0), Merge::Ignored);
    }

    #[test]
    fn a_node_refutes_stale_content_about_itself_at_its_own_incarnation() {
        // A slot back with an empty volume starts at incarnation 1; the others remember
        // incarnation 1 with the old store id.
        let now = Instant::now();
        let mut t = table(now);
        let inc = t.me().incarnation;
        let mut stale = member("agenda-1", inc, MemberState::Alive);
        stale.store_raft_id = Some(99);
        assert_eq!(t.merge(stale, Source::Gossip, now, 0), Merge::Changed);
        assert_eq!(t.me().incarnation, inc + 1);
        assert_eq!(t.me().store_raft_id, None);
    }

    #[test]
    fn a_leaving_node_stays_left_when_it_refutes() {
        let now = Instant::now();
        let mut t = table(now);
        assert_eq!(t.leave(), Merge::Changed);
        let inc = t.me().incarnation;
        t.merge(member("agenda-1", inc + 2, MemberState::Dead), Source::Gossip, now, 0);
        assert_eq!((t.me().incarnation, t.me().state), (inc + 3, MemberState::Left));
        let old = member("agenda-1", inc + 3, MemberState::Alive);
        assert_eq!(t.merge(old, Source::Gossip, now, 0), Merge::Ignored);
    }

    #[test]
    fn a_restart_raises_the_incarnation_above_anything_remembered() {
        let now = Instant::now();
        let restored = vec![
            member("agenda-1", 12, MemberState::Left),
            member("agenda-2", 4, MemberState::Alive),
        ];
        let t = MemberTable::new(member("agenda-1", 0, MemberState::Alive), restored, now, 0);
        assert_eq!((t.me().incarnation, t.me().state), (13, MemberState::Alive));
        assert_eq!(t.me().source, Source::SelfNode);
        assert_eq!(t.get("agenda-2").map(|m| m.incarnation), Some(4));
    }

    #[test]
    fn a_local_report_raises_the_incarnation_only_when_it_changes_something() {
        let now = Instant::now();
        let mut t = table(now);
        let inc = t.me().incarnation;
        let update = LocalUpdate {
            store_raft_id: Some(7),
            store_pristine: Some(false),
            ..LocalUpdate::default()
        };
        assert_eq!(t.update_local(&update), Merge::Changed);
        assert_eq!(t.me().incarnation, inc + 1);
        assert_eq!(t.update_local(&update), Merge::Ignored);
        assert_eq!(t.me().incarnation, inc + 1);
        let api = LocalUpdate {
            api_ready: Some(true),
            ..LocalUpdate::default()
        };
        assert_eq!(t.update_local(&api), Merge::Changed);
        assert_eq!((t.me().store_raft_id, t.me().api_ready), (Some(7), true));
        let inc = t.me().incarnation;
        let alarm = LocalUpdate {
            store_alarms: Some(vec!["nospace".into()]),
            ..LocalUpdate::default()
        };
        assert_eq!(t.update_local(&alarm), Merge::Changed, "a raised alarm is news");
        assert_eq!(t.me().store_alarms, ["nospace"]);
        assert_eq!(t.me().incarnation, inc + 1);
        assert_eq!(
            t.update_local(&api),
            Merge::Ignored,
            "a report without alarms keeps them"
        );
        let cleared = LocalUpdate {
            store_alarms: Some(Vec::new()),
            ..LocalUpdate::default()
        };
        assert_eq!(t.update_local(&cleared), Merge::Changed);
        assert!(t.me().store_alarms.is_empty());
    }
}
