//! One member of the cluster (one slot) as the agents see it, and its protobuf form.
//!
//! The wire messages live in [`crate::discovery_proto`]; this module holds the
//! typed form the agent and its consumers work with, and the only conversions between the
//! two (`TryFrom` for the direction that must validate untrusted input).

use crate::discovery_proto as pb;
use crate::ids::SlotId;
use serde::{Deserialize, Serialize};

/// Longest accepted node id, in bytes.
pub const MAX_NODE_ID_LEN: usize = 64;
/// Longest accepted `host:port` address, in bytes.
pub const MAX_ADDR_LEN: usize = 255;
/// Longest accepted store cluster id, in bytes.
pub const MAX_CLUSTER_ID_LEN: usize = 128;

/// Liveness of a member, as judged by the reporting agent.
///
/// For two reports of the same incarnation the one with the higher
/// [`precedence`](MemberState::precedence) wins: `Left > Dead > Suspect > Alive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberState {
    /// Fresh news arrived within `SUSPECT_AFTER_MS`.
    Alive,
    /// No news for `SUSPECT_AFTER_MS`; the member refutes it with a higher incarnation.
    Suspect,
    /// No news for `DEAD_AFTER_MS`.
    Dead,
    /// The member announced a graceful shutdown.
    Left,
}

impl MemberState {
    /// Rank used to order two reports of the same incarnation.
    pub fn precedence(self) -> u8 {
        match self {
            MemberState::Alive => 0,
            MemberState::Suspect => 1,
            MemberState::Dead => 2,
            MemberState::Left => 3,
        }
    }

    /// Stable lowercase name (`alive`, `suspect`, `dead`, `left`).
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Dead => "dead",
            MemberState::Left => "left",
        }
    }
}

impl std::fmt::Display for MemberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an agent first learned of a member. Local information: never gossiped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The agent's own entry.
    #[serde(rename = "self")]
    SelfNode,
    /// The member answered at an address found through DNS.
    Dns,
    /// The member answered at an address from `DISCOVERY_SEEDS`.
    Seed,
    /// Another agent told us about it, or it contacted us.
    Gossip,
}

impl Source {
    /// Stable lowercase name (`self`, `dns`, `seed`, `gossip`).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::SelfNode => "self",
            Source::Dns => "dns",
            Source::Seed => "seed",
            Source::Gossip => "gossip",
        }
    }
}

/// One slot of the cluster. The table is keyed by [`Member::node_id`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Slot identity, e.g. `agenda-3`.
    pub node_id: SlotId,
    /// Slot number parsed from the node id (3 for `agenda-3`).
    pub slot: u32,
    /// `host:port` of the slot's store gRPC listener.
    pub store_addr: String,
    /// `host:port` of the slot's API HTTP listener.
    pub api_addr: String,
    /// `host:port` of the slot's discovery agent (where to gossip).
    pub discovery_addr: String,
    /// Raft node id of the slot's store, once the store reported it.
    pub store_raft_id: Option<u64>,
    /// The store reported that it has no Raft state yet.
    pub store_pristine: bool,
    /// The store reported that it belongs to an initialised cluster.
    pub store_has_cluster: bool,
    /// The id of that cluster, when the store knows one.
    pub store_cluster_id: Option<String>,
    /// The slot's api-svc reported that it is ready.
    pub api_ready: bool,
    /// The store's active alarms (`nospace`, `halted`), sorted; empty when none.
    #[serde(default)]
    pub store_alarms: Vec<String>,
    /// How the reporting agent first learned of this member (local).
    pub source: Source,
    /// Unix milliseconds of the last fresh news about this member (local).
    pub last_seen_ms: u64,
    /// Raised by the member itself at each start, to refute suspicion, and when its
    /// reported fields change.
    pub incarnation: u64,
    /// Raised by the member every gossip round (fresh news within an incarnation).
    pub heartbeat: u64,
    /// Liveness.
    pub state: MemberState,
}

impl Member {
    /// Whether the member is [`MemberState::Alive`].
    pub fn is_alive(&self) -> bool {
        self.state == MemberState::Alive
    }

    /// The ordering key of a report: newer incarnation first, then state precedence.
    pub fn precedence_key(&self) -> (u64, u8) {
        (self.incarnation, self.state.precedence())
    }

    /// Whether both reports describe the same addresses and store/api reports (the part
    /// only the member itself may change, under a new incarnation).
    pub fn same_content(&self, other: &Member) -> bool {
        self.node_id == other.node_id
            && self.store_addr == other.store_addr
            && self.api_addr == other.api_addr
            && self.discovery_addr == other.discovery_addr
            && self.store_raft_id == other.store_raft_id
            && self.store_pristine == other.store_pristine
            && self.store_has_cluster == other.store_has_cluster
            && self.store_cluster_id == other.store_cluster_id
            && self.api_ready == other.api_ready
            && self.store_alarms == other.store_alarms
    }
}

/// The slot number of a node id: the decimal digits after its last `-` (`agenda-3` → 3).
/// `None` when there are none or the number is 0.
pub fn parse_slot(node_id: &str) -> Option<u32> {
    let (_, digits) = node_id.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u32>().ok().filter(|slot| *slot > 0)
}

/// Most alarms one store reports.
pub const MAX_ALARMS: usize = 8;
/// Longest alarm name.
pub const MAX_ALARM_LEN: usize = 32;

/// Whether `alarms` is a valid alarm list: at most [`MAX_ALARMS`] names of lowercase
/// letters, digits and `_`, each at most [`MAX_ALARM_LEN`] long.
pub fn valid_alarms(alarms: &[String]) -> bool {
    alarms.len() <= MAX_ALARMS
        && alarms.iter().all(|a| {
            !a.is_empty()
                && a.len() <= MAX_ALARM_LEN
                && a.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// Why a member received over the wire was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMember {
    /// The node id is empty, too long, not printable ASCII or has no slot number.
    #[error("bad node id {0:?}")]
    NodeId(String),
    /// An address or the cluster id is too long or not printable ASCII.
    #[error("bad {field} of {node_id}")]
    Field {
        /// Member concerned.
        node_id: String,
        /// Offending field.
        field: &'static str,
    },
    /// The state is missing or unknown.
    #[error("{0}: unknown state")]
    State(String),
}

fn printable(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

/// Check a node id and return its slot.
pub fn validate_node_id(node_id: &str) -> Result<u32, InvalidMember> {
    if node_id.is_empty() || node_id.len() > MAX_NODE_ID_LEN || !printable(node_id) {
        return Err(InvalidMember::NodeId(node_id.chars().take(MAX_NODE_ID_LEN).collect()));
    }
    parse_slot(node_id).ok_or_else(|| InvalidMember::NodeId(node_id.to_owned()))
}

impl From<MemberState> for pb::MemberState {
    fn from(s: MemberState) -> Self {
        match s {
            MemberState::Alive => pb::MemberState::Alive,
            MemberState::Suspect => pb::MemberState::Suspect,
            MemberState::Dead => pb::MemberState::Dead,
            MemberState::Left => pb::MemberState::Left,
        }
    }
}

impl From<Source> for pb::MemberSource {
    fn from(s: Source) -> Self {
        match s {
            Source::SelfNode => pb::MemberSource::Self_,
            Source::Dns => pb::MemberSource::Dns,
            Source::Seed => pb::MemberSource::Seed,
            Source::Gossip => pb::MemberSource::Gossip,
        }
    }
}

impl From<&Member> for pb::Member {
    fn from(m: &Member) -> Self {
        pb::Member {
            node_id: m.node_id.clone(),
            slot: m.slot,
            store_addr: m.store_addr.clone(),
            api_addr: m.api_addr.clone(),
            discovery_addr: m.discovery_addr.clone(),
            store_raft_id: m.store_raft_id,
            store_pristine: m.store_pristine,
            store_has_cluster: m.store_has_cluster,
            store_cluster_id: m.store_cluster_id.clone(),
            api_ready: m.api_ready,
            store_alarms: m.store_alarms.clone(),
            source: pb::MemberSource::from(m.source) as i32,
            last_seen_ms: m.last_seen_ms,
            incarnation: m.incarnation,
            state: pb::MemberState::from(m.state) as i32,
            heartbeat: m.heartbeat,
        }
    }
}

impl TryFrom<pb::Member> for Member {
    type Error = InvalidMember;

    /// Validate a member received over the wire. The slot is recomputed from the node id;
    /// an unknown source becomes [`Source::Gossip`].
    fn try_from(m: pb::Member) -> Result<Self, InvalidMember> {
        let slot = validate_node_id(&m.node_id)?;
        let field_ok = |v: &str, max: usize| v.len() <= max && printable(v);
        for (field, value) in [
            ("store_addr", &m.store_addr),
            ("api_addr", &m.api_addr),
            ("discovery_addr", &m.discovery_addr),
        ] {
            if !field_ok(value, MAX_ADDR_LEN) {
                return Err(InvalidMember::Field {
                    node_id: m.node_id,
                    field,
                });
            }
        }
        if let Some(id) = &m.store_cluster_id
            && !field_ok(id, MAX_CLUSTER_ID_LEN)
        {
            return Err(InvalidMember::Field {
                node_id: m.node_id,
                field: "store_cluster_id",
            });
        }
        if !valid_alarms(&m.store_alarms) {
            return Err(InvalidMember::Field {
                node_id: m.node_id,
                field: "store_alarms",
            });
        }
        let state = match pb::MemberState::try_from(m.state) {
            Ok(pb::MemberState::Alive) => MemberState::Alive,
            Ok(pb::MemberState::Suspect) => MemberState::Suspect,
            Ok(pb::MemberState::Dead) => MemberState::Dead,
            Ok(pb::MemberState::Left) => MemberState::Left,
            Ok(pb::MemberState::Unspecified) | Err(_) => return Err(InvalidMember::State(m.node_id)),
        };
        let source = match pb::MemberSource::try_from(m.source) {
            Ok(pb::MemberSource::Self_) => Source::SelfNode,
            Ok(pb::MemberSource::Dns) => Source::Dns,
            Ok(pb::MemberSource::Seed) => Source::Seed,
            Ok(pb::MemberSource::Gossip) | Ok(pb::MemberSource::Unspecified) | Err(_) => Source::Gossip,
        };
        Ok(Member {
            node_id: m.node_id,
            slot,
            store_addr: m.store_addr,
            api_addr: m.api_addr,
            discovery_addr: m.discovery_addr,
            store_raft_id: m.store_raft_id,
            store_pristine: m.store_pristine,
            store_has_cluster: m.store_has_cluster,
            store_cluster_id: m.store_cluster_id.filter(|id| !id.is_empty()),
            api_ready: m.api_ready,
            store_alarms: m.store_alarms,
            source,
            last_seen_ms: m.last_seen_ms,
            incarnation: m.incarnation,
            heartbeat: m.heartbeat,
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn member(node_id: &str) -> Member {
        Member {
            node_id: node_id.into(),
            slot: parse_slot(node_id).unwrap_or(0),
            store_addr: "store:7000".into(),
            api_addr: "api:8080".into(),
            discovery_addr: "discovery:7100".into(),
            store_raft_id: Some(42),
            store_pristine: false,
            store_has_cluster: true,
            store_cluster_id: Some("c1".into()),
            api_ready: true,
            store_alarms: Vec::new(),
            source: Source::Dns,
            last_seen_ms: 5,
            incarnation: 3,
            heartbeat: 9,
            state: MemberState::Suspect,
        }
    }

    #[test]
    fn slots_are_the_number_after_the_last_dash() {
        assert_eq!(parse_slot("agenda-3"), Some(3));
        assert_eq!(parse_slot("my-agenda-12"), Some(12));
        assert_eq!(parse_slot("agenda-0"), None);
        assert_eq!(parse_slot("agenda"), None);
        assert_eq!(parse_slot("agenda-"), None);
        assert_eq!(parse_slot("agenda-3a"), None);
    }

    #[test]
    fn a_member_survives_the_wire() {
        let m = member("agenda-4");
        let back = Member::try_from(pb::Member::from(&m)).expect("valid");
        assert_eq!(back, m);
    }

    #[test]
    fn invalid_members_are_refused() {
        let mut m = pb::Member::from(&member("agenda-4"));
        m.state = 0;
        assert!(matches!(Member::try_from(m), Err(InvalidMember::State(_))));

        let mut m = pb::Member::from(&member("agenda-4"));
        m.node_id = "no slot".into();
        assert!(matches!(Member::try_from(m), Err(InvalidMember::NodeId(_))));

        let mut m = pb::Member::from(&member("agenda-4"));
        m.store_addr = "x".repeat(MAX_ADDR_LEN + 1);
        assert!(matches!(Member::try_from(m), Err(InvalidMember::Field { .. })));

        let mut m = pb::Member::from(&member("agenda-4"));
        m.api_addr = "bad\naddr".into();
        assert!(matches!(Member::try_from(m), Err(InvalidMember::Field { .. })));
    }
}
