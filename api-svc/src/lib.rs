//! `api-svc`: Agenda's stateless user-facing sidecar.
//!
//! It serves the REST JSON API of DESIGN §6 and the WebSocket feed of §8 on top of the
//! replicated store: it authenticates users (argon2id passwords, HS256 tokens revoked by a
//! password change), validates input at the edge, proposes typed commands to the store
//! (`Execute`, with idempotency keys and request hashes), reads at the requested
//! consistency (`Query`), and fans one store `Watch` stream out to its sockets. Any number
//! of instances serve any request; none keeps state of its own.
//!
//! It talks to the stores (`consensus-svc`) over gRPC, every call signed with the cluster
//! HMAC ([`agenda_shared::auth::SignLayer`]), preferring its own slot's store and failing
//! over to the others ([`StorePool`]).
//!
//! Modules: [`app`] (build/run), [`config`], [`http`] (one module per area, each with its
//! `router()`; `http::docs` holds the OpenAPI document and the route list), [`hub`] (the
//! notification fan-out), [`ws`] (sockets), [`store`] (pool and failover), [`auth`] (tokens, passwords), [`state`]
//! (what handlers share; writes and reads), [`error`] (problem+json), [`views`] (JSON
//! shapes, RFC 3339), [`ics`] (iCalendar), [`metrics`], [`ratelimit`], [`readiness`]
//! (the shared `/readyz` answer), [`tls`], [`request_id`].

pub mod app;
pub mod auth;
pub mod config;
mod discovery;
pub mod error;
pub mod http;
pub mod hub;
pub mod ics;
pub mod metrics;
pub mod ratelimit;
pub mod readiness;
pub mod request_id;
pub mod state;
pub mod store;
pub mod tls;
pub mod views;
pub mod ws;

pub use app::{App, AppError};
pub use config::{Config, EnvConfig, LoginLimits, PasswordCost, Secret, TlsFiles};
pub use http::docs::ROUTES;
pub use ratelimit::TrustedProxies;
pub use store::StorePool;
