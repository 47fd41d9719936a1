//! The API fronts over real HTTP and WebSocket against in-process clusters: bad input,
//! the front door under anonymous floods, groups and consent, answers a relay rewrote
//! (links), a Jepsen-style fault suite with a linearizability check (nemesis), replication
//! across slots, security, the surface (OpenAPI, health, TLS, feeds)
//! and live notifications.

mod bad_input;
mod front_door;
mod groups;
mod links;
mod nemesis;
mod replication;
mod security;
mod surface;
mod ws;
