//! Naming the receiver of a request: what a client signs ([`Receiver`]) and what a server
//! accepts ([`Identity`]).
//!
//! A client always knows the address it dials; where it also knows the node id and the Raft
//! id of the server (the Raft network does), it names them too. A server accepts a request
//! whose address is one of its own (its advertised and listen addresses, or the address the
//! connection arrived at) and whose node id and Raft id, when named, are its own. A request
//! signed for one server is therefore refused by every other, even with the same secret.

use std::net::SocketAddr;

/// The receiver a request is signed for (`x-agenda-to`): `addr=<host:port>`, then
/// `;node=<id>` and `;raft=<id>` when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receiver {
    /// The address dialled, `host:port`.
    pub addr: String,
    /// The receiver's node id, when the sender knows it.
    pub node: Option<String>,
    /// The receiver's Raft id, when the sender knows it.
    pub raft: Option<u64>,
}

impl Receiver {
    /// The server at `addr`.
    pub fn addr(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            node: None,
            raft: None,
        }
    }

    /// Also names the node id.
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// Also names the Raft id.
    pub fn raft(mut self, raft: u64) -> Self {
        self.raft = Some(raft);
        self
    }

    /// The header value.
    pub fn encode(&self) -> String {
        let mut s = format!("addr={}", self.addr);
        if let Some(node) = &self.node {
            s.push_str(";node=");
            s.push_str(node);
        }
        if let Some(raft) = self.raft {
            s.push_str(&format!(";raft={raft}"));
        }
        s
    }

    /// Parses a header value; `None` when malformed.
    pub fn parse(s: &str) -> Option<Self> {
        let mut addr = None;
        let mut node = None;
        let mut raft = None;
        for part in s.split(';') {
            let (key, value) = part.split_once('=')?;
            if value.is_empty() {
                return None;
            }
            let slot = match key {
                "addr" => addr.replace(value.to_owned()),
                "node" => node.replace(value.to_owned()),
                "raft" => raft.replace(value.parse::<u64>().ok()?).map(|r| r.to_string()),
                _ => return None,
            };
            if slot.is_some() {
                return None;
            }
        }
        Some(Self {
            addr: addr?,
            node,
            raft,
        })
    }
}

/// Who a server is, for checking the receiver of the requests it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Node id.
    pub node: String,
    /// Raft id, for a store.
    pub raft: Option<u64>,
    /// Addresses it is known by (`host:port`): advertised, listen.
    pub addrs: Vec<String>,
}

impl Identity {
    /// A server known as `node` at `addrs`.
    pub fn new(node: impl Into<String>, addrs: impl IntoIterator<Item = String>) -> Self {
        Self {
            node: node.into(),
            raft: None,
            addrs: addrs.into_iter().collect(),
        }
    }

    /// With a Raft id.
    pub fn with_raft(mut self, raft: u64) -> Self {
        self.raft = Some(raft);
        self
    }

    /// Whether a request signed for `to`, arriving on a connection whose local address is
    /// `local`, is meant for this server.
    pub fn accepts(&self, to: &Receiver, local: Option<SocketAddr>) -> bool {
        if to.node.as_ref().is_some_and(|n| *n != self.node) {
            return false;
        }
        if to.raft.is_some() && to.raft != self.raft {
            return false;
        }
        let addr = to.addr.to_ascii_lowercase();
        if self.addrs.iter().any(|a| a.eq_ignore_ascii_case(&addr)) {
            return true;
        }
        let Some(local) = local else {
            return false;
        };
        if let Ok(dialled) = addr.parse::<SocketAddr>() {
            return dialled == local;
        }
        // `localhost:<port>` reaches a loopback listener.
        addr.strip_prefix("localhost:")
            .and_then(|p| p.parse::<u16>().ok())
            .is_some_and(|port| port == local.port() && local.ip().is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receivers_round_trip_and_reject_garbage() {
        let r = Receiver::addr("store-3:7000").node("agenda-3").raft(17);
        assert_eq!(r.encode(), "addr=store-3:7000;node=agenda-3;raft=17");
        assert_eq!(Receiver::parse(&r.encode()), Some(r));
        assert_eq!(Receiver::parse("addr=a:1"), Some(Receiver::addr("a:1")));
        for bad in [
            "",
            "node=x",
            "addr=",
            "addr=a:1;addr=b:2",
            "addr=a:1;raft=x",
            "addr=a:1;who=x",
            "addr",
        ] {
            assert_eq!(Receiver::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_server_accepts_only_requests_for_itself() {
        let me = Identity::new("agenda-3", ["store-3:7000".to_owned()]).with_raft(17);
        let local: SocketAddr = "10.0.0.3:7000".parse().unwrap();
        assert!(me.accepts(&Receiver::addr("store-3:7000"), None));
        assert!(me.accepts(&Receiver::addr("STORE-3:7000").node("agenda-3").raft(17), None));
        assert!(
            me.accepts(&Receiver::addr("10.0.0.3:7000"), Some(local)),
            "dialled by IP"
        );
        assert!(
            !me.accepts(&Receiver::addr("store-4:7000"), Some(local)),
            "another store's name"
        );
        assert!(
            !me.accepts(&Receiver::addr("10.0.0.4:7000"), Some(local)),
            "another store's IP"
        );
        assert!(
            !me.accepts(&Receiver::addr("store-3:7000").node("agenda-4"), None),
            "another node id"
        );
        assert!(
            !me.accepts(&Receiver::addr("store-3:7000").raft(16), None),
            "an old incarnation"
        );
        let loopback: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        assert!(me.accepts(&Receiver::addr("localhost:7000"), Some(loopback)));
        assert!(!me.accepts(&Receiver::addr("localhost:7001"), Some(loopback)));
    }
}
