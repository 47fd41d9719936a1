//! `discovery-svc`: Agenda's discovery agent, the third sidecar of every slot.
//!
//! It finds the other slots and keeps a member table — one entry per slot (`node_id`,
//! e.g. `agenda-3`; never keyed by address) with the slot's store, API and discovery
//! addresses, what the slot's store and API last reported, the source it was learned
//! from, `last_seen`, an incarnation number and a state (alive, suspect, dead, left).
//!
//! Sources: DNS (`tasks.<service>` and per-slot names through hickory, cache TTL capped),
//! the `DISCOVERY_SEEDS` list, and gossip — every interval a push-pull exchange of the
//! whole table with a few random peers, SWIM-style incarnations so a node refutes
//! suspicion of itself. The table is saved in `DATA_DIR/members.json` and reloaded at
//! start with a raised own incarnation.
//!
//! It serves one gRPC service, `agenda.discovery.v1.Discovery`, behind the cluster HMAC
//! layer: `Gossip` (agent to agent), `Members` and `WatchMembers` (to the slot's store and
//! API; see `agenda_shared::rpc::agent::MembersWatcher`) and `UpdateLocal` (the slot's store and API report
//! their state). `docs/discovery.md` describes the protocol and every setting.
//!
//! Modules: [`app`] (build/run), [`config`], [`table`] (merge rules and timers),
//! [`persist`] (`members.json`), [`dns`] (the DNS source), `gossip` (the exchange loop),
//! `agent` (shared state), `service` (the gRPC server), [`faults`] (test fault injection),
//! [`error`]. The member type, its wire form and the client consumers use live in
//! `agenda_shared::rpc::{member, agent}`, so the store and the API need only `shared`.

pub mod agent;
pub mod app;
pub mod config;
pub mod dns;
pub mod error;
pub mod faults;
mod gossip;
mod peers;
pub mod persist;
mod service;
pub mod table;

pub use agenda_shared::rpc::member::{Member, MemberState, Source};
pub use app::{App, AppError};
pub use config::{Config, DnsConfig, EnvConfig, Timings};
