//! Extractors, written once: JSON bodies, query strings and path ids whose failures are
//! problem documents; the authenticated [`Caller`]; the read/write envelopes
//! ([`ReadMeta`], [`WriteMeta`]); `If-Match`; the client's IP. The envelopes' documented
//! parameters ([`ReadParams`], [`WriteParams`], [`IfMatchParam`]) live next to them.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{Required, schema::ObjectBuilder};

use super::rules;
pub use crate::auth::Caller;
use crate::error::ApiError;
use crate::request_id::RequestId;
use crate::state::{AppState, WriteMeta};
use crate::store::ReadConsistency;

/// Request header asking for a read at or after a revision (read-your-writes on any slot).
pub const MIN_REVISION_HEADER: &str = "x-agenda-min-revision";
/// Request header naming a write's idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 200;
/// Longest serde message quoted back to the client.
const MAX_DETAIL: usize = 300;

/// The peer address of a connection (plain TCP or TLS), as `ConnectInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

fn truncated(s: String) -> String {
    if s.len() <= MAX_DETAIL {
        return s;
    }
    let mut end = MAX_DETAIL;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// A JSON body: 415 unless `Content-Type` is JSON, 413 over the body limit, 400 for
/// malformed JSON, 422 for JSON of the wrong shape (wrong types, unknown or missing fields).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest("the request body could not be read".into())
            }
        })?;
        // Syntax first (400), then shape (422): `[1,2` is malformed even where an object
        // was expected.
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(truncated(format!("malformed JSON: {e}"))))?;
        T::deserialize(value)
            .map(ApiJson)
            .map_err(|e| ApiError::invalid("body", truncated(e.to_string())))
    }
}

/// Whole JSON numbers for integer fields: `3.0` is an integer to JSON Schema (and to
/// JavaScript clients), while serde's `u32` takes only `3`. For
/// `#[serde(deserialize_with = "whole::u32")]` and `whole::option_u32`.
pub(crate) mod whole {
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, Visitor};

    struct WholeU32(u32);

    impl<'de> Deserialize<'de> for WholeU32 {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = WholeU32;

                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    write!(f, "a whole number from 0 to {}", u32::MAX)
                }

                fn visit_u64<E: de::Error>(self, v: u64) -> Result<WholeU32, E> {
                    u32::try_from(v)
                        .map(WholeU32)
                        .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
                }

                fn visit_i64<E: de::Error>(self, v: i64) -> Result<WholeU32, E> {
                    u32::try_from(v)
                        .map(WholeU32)
                        .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
                }

                fn visit_f64<E: de::Error>(self, v: f64) -> Result<WholeU32, E> {
                    if v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) {
                        // Whole and in range: the conversion is exact.
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        Ok(WholeU32(v as u32))
                    } else {
                        Err(E::invalid_value(de::Unexpected::Float(v), &self))
                    }
                }
            }
            d.deserialize_any(V)
        }
    }

    /// A whole number as `u32`.
    pub(crate) fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        WholeU32::deserialize(d).map(|w| w.0)
    }

    /// An optional (or `null`) whole number as `u32`.
    pub(crate) fn option_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        Option::<WholeU32>::deserialize(d).map(|o| o.map(|w| w.0))
    }
}

/// A query string; shape errors are 422 `validation_failed`. Unknown parameters are
/// ignored (`consistency` is read by [`ReadMeta`]).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::invalid("query", truncated(e.body_text())))
    }
}

/// Path parameters; a malformed id names no resource: 404.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| ApiPath(p))
            .map_err(|_| ApiError::NotFound("resource".into()))
    }
}

/// How the request wants its reads served: `X-Agenda-Min-Revision: N` (wait for revision N
/// on whichever store answers), `?consistency=local` (possibly stale), else linearizable.
#[derive(Debug, Clone, Copy)]
pub struct ReadMeta {
    /// The consistency of the request's reads.
    pub consistency: ReadConsistency,
}

impl ReadMeta {
    fn from_parts(parts: &Parts) -> Result<Self, ApiError> {
        let requested = parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "consistency")
            .map(|(_, v)| v);
        // Checked even when the header decides, so a bad value is never silently ignored.
        let consistency = match requested {
            None | Some("linearizable") => ReadConsistency::Linearizable,
            Some("local") => ReadConsistency::Local,
            Some(_) => return Err(ApiError::invalid("consistency", "must be `linearizable` or `local`")),
        };
        if let Some(v) = parts.headers.get(MIN_REVISION_HEADER) {
            let revision = v.to_str().ok().and_then(rules::parse_revision).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "X-Agenda-Min-Revision must be a revision number (0 to {})",
                    rules::MAX_REVISION
                ))
            })?;
            return Ok(Self {
                consistency: ReadConsistency::MinRevision(revision),
            });
        }
        Ok(Self { consistency })
    }
}

/// The documented parameters of [`ReadMeta`]: `?consistency` and `X-Agenda-Min-Revision`.
#[derive(Debug)]
pub struct ReadParams;

impl IntoParams for ReadParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("consistency")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(
                    "`linearizable` (default): the latest committed state; `local`: the nearest \
                     replica as it is (at most a few seconds behind). Ignored when \
                     `X-Agenda-Min-Revision` is given.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(utoipa::openapi::Type::String)
                        .enum_values(Some(["linearizable", "local"])),
                ))
                .build(),
            ParameterBuilder::new()
                .name("X-Agenda-Min-Revision")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Serve the read at this revision or later, on whichever store answers \
                     (read-your-writes on any slot: pass a write's `X-Agenda-Revision`). 412 \
                     `precondition_failed` when it is beyond every store's log.",
                ))
                .schema(Some(rules::revision()))
                .build(),
        ]
    }
}

/// The documented parameter of [`WriteMeta`]: `Idempotency-Key`.
#[derive(Debug)]
pub struct WriteParams;

impl IntoParams for WriteParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some("Makes the write safe to retry."))
                .schema(Some(rules::idempotency_key()))
                .build(),
        ]
    }
}

/// The documented parameter of [`IfMatch`].
#[derive(Debug)]
pub struct IfMatchParam;

impl IntoParams for IfMatchParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("If-Match")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .schema(Some(rules::if_match()))
                .build(),
        ]
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ReadMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Self::from_parts(parts)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WriteMeta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let key = match parts.headers.get(IDEMPOTENCY_KEY_HEADER) {
            None => None,
            Some(v) => {
                let key = v.to_str().ok().map(str::trim).filter(|k| {
                    !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY && k.bytes().all(|b| b.is_ascii_graphic())
                });
                Some(key.ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                    ))
                })?)
            }
        };
        // Without a key, a request id we generated is unique and links the audit row to
        // the response's X-Request-ID.
        let request_id = match key {
            Some(k) => k.to_owned(),
            None => match parts.extensions.get::<RequestId>() {
                Some(r) if r.is_generated() => r.as_str().to_owned(),
                _ => uuid::Uuid::now_v7().to_string(),
            },
        };
        Ok(WriteMeta {
            request_id,
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
        })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized("a bearer token is required"))?;
        Ok(Caller::from_claims(state.tokens.verify(token)?))
    }
}

/// The `If-Match` version: `5`, `"5"` or `W/"5"` (at most 19 digits); absent or `*` means
/// any version. Nothing else: RFC 9110 entity tags are quoted, and the bare number is this
/// API's convenience.
#[derive(Debug, Clone, Copy)]
pub struct IfMatch(pub Option<u64>);

impl IfMatch {
    fn parse(raw: &str) -> Option<Self> {
        if raw == "*" {
            return Some(IfMatch(None));
        }
        let digits = raw
            .strip_prefix("W/\"")
            .or_else(|| raw.strip_prefix('"'))
            .map_or(Some(raw), |rest| rest.strip_suffix('"'))?;
        if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(|v| IfMatch(Some(v)))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(v) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        v.to_str()
            .ok()
            .and_then(|raw| IfMatch::parse(raw.trim()))
            .ok_or_else(|| ApiError::BadRequest("If-Match must name an appointment version, e.g. \"3\"".into()))
    }
}

/// The client's IP address, when the connection info is known: the peer, or what a
/// trusted proxy reports in `X-Forwarded-For` (see [`crate::ratelimit::TrustedProxies`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<PeerAddr>>()
            .map(|ConnectInfo(PeerAddr(a))| a.ip());
        Ok(ClientIp(peer.map(|peer| {
            let forwarded = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok());
            state.trusted_proxies.client_ip(peer, forwarded)
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn consistency_comes_from_the_header_or_the_query() {
        let c = |uri, h: &[(&str, &str)]| ReadMeta::from_parts(&parts(uri, h)).map(|r| r.consistency);
        assert_eq!(c("/x", &[]).unwrap(), ReadConsistency::Linearizable);
        assert_eq!(c("/x?a=1&consistency=local", &[]).unwrap(), ReadConsistency::Local);
        assert_eq!(
            c("/x?consistency=local", &[(MIN_REVISION_HEADER, "42")]).unwrap(),
            ReadConsistency::MinRevision(42)
        );
        assert!(c("/x?consistency=eventual", &[]).is_err());
        assert!(c("/x?consistency=eventual", &[(MIN_REVISION_HEADER, "42")]).is_err());
        assert!(c("/x", &[(MIN_REVISION_HEADER, "-1")]).is_err());
        assert!(c("/x", &[(MIN_REVISION_HEADER, "9223372036854775807")]).is_ok());
        assert!(c("/x", &[(MIN_REVISION_HEADER, "9223372036854775808")]).is_err());
    }

    #[tokio::test]
    async fn if_match_accepts_plain_quoted_and_weak_versions() {
        for (raw, want) in [("3", Some(3)), ("\"3\"", Some(3)), ("W/\"3\"", Some(3)), ("*", None)] {
            let mut p = parts("/", &[("if-match", raw)]);
            let IfMatch(v) = IfMatch::from_request_parts(&mut p, &()).await.unwrap();
            assert_eq!(v, want, "{raw}");
        }
        for bad in [
            "\"abc\"",
            "W/3",
            "\"3",
            "3\"",
            "\"\"3\"\"",
            "+3",
            "\"\"",
            "W/\"\"",
            "12345678901234567890",
        ] {
            let mut p = parts("/", &[("if-match", bad)]);
            assert!(IfMatch::from_request_parts(&mut p, &()).await.is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn idempotency_keys_are_bounded() {
        let mut ok = parts("/", &[("idempotency-key", "key-1")]);
        assert_eq!(
            WriteMeta::from_request_parts(&mut ok, &()).await.unwrap().request_id,
            "key-1"
        );
        let long = "k".repeat(201);
        let mut bad = parts("/", &[("idempotency-key", &long)]);
        assert!(WriteMeta::from_request_parts(&mut bad, &()).await.is_err());
    }

    #[test]
    fn whole_numbers_may_be_written_as_floats() {
        #[derive(serde::Deserialize)]
        struct R {
            #[serde(deserialize_with = "whole::u32")]
            rank: u32,
            #[serde(default, deserialize_with = "whole::option_u32")]
            other: Option<u32>,
        }
        let r: R = serde_json::from_str(r#"{"rank": 7.0, "other": null}"#).unwrap();
        assert_eq!((r.rank, r.other), (7, None));
        let r: R = serde_json::from_str(r#"{"rank": 7, "other": 4294967295.0}"#).unwrap();
        assert_eq!((r.rank, r.other), (7, Some(u32::MAX)));
        for bad in [
            r#"{"rank": 7.5}"#,
            r#"{"rank": -1}"#,
            r#"{"rank": 4294967296}"#,
            r#"{"rank": "7"}"#,
        ] {
            assert!(serde_json::from_str::<R>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_content_types_are_recognised() {
        let h = |ct: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            is_json(&m)
        };
        assert!(h("application/json"));
        assert!(h("application/json; charset=utf-8"));
        assert!(h("application/merge-patch+json"));
        assert!(!h("text/plain"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
