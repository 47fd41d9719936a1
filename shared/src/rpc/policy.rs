//! Who may call what, and how large a request may be: one table for every cluster RPC.
//!
//! The verifying layer ([`crate::auth::VerifyLayer`]) looks the request path up here
//! before it reads the body: a caller whose certificate names a role the RPC does not allow
//! is refused with `PERMISSION_DENIED`, a body longer than the RPC's budget with
//! `RESOURCE_EXHAUSTED`. Paths not in the table get the smallest budget and no caller.

use super::store::MAX_MESSAGE;
use super::tls::Role;

/// What one RPC allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcRule {
    /// Roles that may call it (checked on TLS links, where the role is known).
    pub roles: &'static [Role],
    /// Largest request body, bytes (the gRPC frame included).
    pub max_body: usize,
}

/// Largest body of a replication request: the largest gRPC message and its frame header.
pub const REPLICATION_BODY: usize = MAX_MESSAGE + 64;
/// Largest body of a small request (queries, status, votes, membership).
pub const SMALL_BODY: usize = 64 * 1024;
/// Largest body of a proposed command (`Execute`) and of gossip.
pub const COMMAND_BODY: usize = 1024 * 1024;

const STORES: &[Role] = &[Role::Store];
const FRONTS: &[Role] = &[Role::Api, Role::Store];
const AGENTS: &[Role] = &[Role::Discovery];
const REPORTERS: &[Role] = &[Role::Store, Role::Api];
const ANYONE: &[Role] = &[Role::Store, Role::Api, Role::Discovery];

/// The rule of the RPC at `path` (`/package.Service/Method`).
pub fn rule(path: &str) -> RpcRule {
    let (roles, max_body) = match path {
        "/agenda.v1.Raft/AppendEntries" | "/agenda.v1.Raft/InstallSnapshot" => (STORES, REPLICATION_BODY),
        "/agenda.v1.Raft/Vote" | "/agenda.v1.Raft/PreVote" => (STORES, SMALL_BODY),
        "/agenda.v1.Store/Execute" => (FRONTS, COMMAND_BODY),
        "/agenda.v1.Store/Query"
        | "/agenda.v1.Store/Watch"
        | "/agenda.v1.Store/Status"
        | "/agenda.v1.Store/ReadIndex" => (FRONTS, SMALL_BODY),
        p if p.starts_with("/agenda.v1.Admin/") => (STORES, SMALL_BODY),
        "/agenda.discovery.v1.Discovery/Gossip" => (AGENTS, COMMAND_BODY),
        "/agenda.discovery.v1.Discovery/Members" | "/agenda.discovery.v1.Discovery/WatchMembers" => {
            (ANYONE, SMALL_BODY)
        }
        "/agenda.discovery.v1.Discovery/UpdateLocal" => (REPORTERS, SMALL_BODY),
        _ => (&[][..], SMALL_BODY),
    };
    RpcRule { roles, max_body }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_is_for_stores_and_replication_gets_the_big_budget() {
        let append = rule("/agenda.v1.Raft/AppendEntries");
        assert_eq!(append.roles, &[Role::Store]);
        assert_eq!(append.max_body, REPLICATION_BODY);
        assert!(!rule("/agenda.v1.Raft/Vote").roles.contains(&Role::Api));
        assert_eq!(rule("/agenda.v1.Raft/PreVote").roles, &[Role::Store]);
        assert!(rule("/agenda.v1.Store/Execute").roles.contains(&Role::Api));
        assert!(!rule("/agenda.v1.Store/Execute").roles.contains(&Role::Discovery));
        assert_eq!(rule("/agenda.discovery.v1.Discovery/Gossip").roles, &[Role::Discovery]);
        assert!(rule("/unknown.Service/Method").roles.is_empty());
    }
}
