//! The two identities a store has, named once so that "node id" never means two things.

/// A slot's identity, `agenda-N` (`NODE_ID`, from the Swarm task slot): the same for the
/// slot's three sidecars, kept across restarts and lost volumes. Signed RPCs name their
/// sender by it (`agenda-N`, or `agenda-N-<sidecar>` for a slot's store or API talking to
/// its agent).
pub type SlotId = String;

/// A store's Raft node id: chosen when its data directory is first initialised, so a slot
/// that comes back with an empty volume is a new incarnation with a new `RaftId`.
pub type RaftId = u64;
