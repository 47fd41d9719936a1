//! User authentication primitives: HS256 tokens ([`Tokens`]) and argon2id password hashes
//! ([`Passwords`], on a few threads behind a bounded queue: a flood of sign-ins is answered
//! 503 `overloaded` instead of piling up work).
//!
//! A token carries `sub` (user id), `iat`, `exp` and `pwd`, the user's
//! `password_changed_at_ms` when it was issued. A request is accepted only while `pwd`
//! equals the user's current value, so a password change revokes every older token
//! exactly, with no same-second window.

use std::sync::Arc;
use std::time::Duration;

use agenda_shared::model::User;
use agenda_shared::query::Principal;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::config::{PasswordCost, Secret};
use crate::error::ApiError;

/// Longest accepted password, in characters (at most 1 KiB of UTF-8: argon2 copes with
/// more; this bounds the work). Characters, not bytes, so the API contract can state it.
pub const MAX_PASSWORD: usize = 256;
/// Shortest accepted new password, in characters.
pub const MIN_PASSWORD: usize = 8;
/// Clock skew tolerated on `exp`, in seconds.
const LEEWAY_SECS: u64 = 5;
/// What an overloaded front suggests as `Retry-After`: a hash takes tens of milliseconds,
/// so a full queue drains within about a second.
const OVERLOADED_RETRY: Duration = Duration::from_secs(1);

/// Claims of a user token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: Uuid,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// The user's `password_changed_at_ms` when the token was issued.
    pub pwd: i64,
}

/// Issues and verifies user tokens.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Tokens {
    /// Tokens signed with `secret`, valid for `ttl`.
    pub fn new(secret: &Secret, ttl: Duration) -> Self {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Self {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
            ttl,
        }
    }

    /// A token for `user`, valid from now for the configured lifetime.
    pub fn issue(&self, user: &User) -> Result<String, ApiError> {
        let iat = now_secs();
        let claims = Claims {
            sub: user.id,
            iat,
            exp: iat.saturating_add(self.ttl.as_secs() as i64),
            pwd: user.password_changed_at_ms,
        };
        self.sign(&claims)
    }

    /// Sign arbitrary claims (tests use it to forge expired tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String, ApiError> {
        encode(&Header::new(jsonwebtoken::Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| ApiError::Internal(format!("token signing: {e}")))
    }

    /// Check the signature, algorithm and expiry of `token`; returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        if token.len() > 4096 {
            return Err(ApiError::Unauthorized("the token is malformed"));
        }
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => ApiError::Unauthorized("the token has expired"),
                _ => ApiError::Unauthorized("the token is invalid"),
            })
    }

    /// Whether `claims` are still valid for `user` (not revoked by a password change).
    pub fn current_for(claims: &Claims, user: &User) -> Result<(), ApiError> {
        if claims.sub != user.id || claims.pwd != user.password_changed_at_ms {
            return Err(ApiError::Unauthorized(
                "the token was revoked by a password change; sign in again",
            ));
        }
        Ok(())
    }
}

/// The signed-in user (`Authorization: Bearer …`): a well signed, unexpired token. Whether
/// a password change has revoked it is checked by the store itself, exactly and at no
/// extra cost, in every command (`Request::token_stamp`) and every read
/// (`QueryRequest.principal`) made for the caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's claims.
    pub claims: Claims,
}

impl Caller {
    /// The caller of a verified token.
    pub fn from_claims(claims: Claims) -> Self {
        Self { claims }
    }

    /// The user's id.
    pub fn id(&self) -> uuid::Uuid {
        self.claims.sub
    }

    /// Who the store checks reads against.
    pub fn principal(&self) -> Principal {
        Principal {
            user_id: self.claims.sub,
            password_stamp: self.claims.pwd,
        }
    }
}

/// Why password hashing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PasswordSetupError {
    /// The configured argon2 cost is out of range (argon2's error is not a
    /// `std::error::Error`, so it is shown, not chained).
    #[error("argon2 parameters: {0}")]
    Params(argon2::Error),
    /// A hashing thread could not be started.
    #[error("password hashing thread")]
    Thread(#[source] std::io::Error),
    /// The dummy hash could not be encoded (shown, not chained, for the same reason).
    #[error("the dummy password hash: {0}")]
    Dummy(argon2::password_hash::Error),
    /// The queue has no room for a single job.
    #[error("the password hashing queue must hold at least one job")]
    NoQueue,
}

/// Hashes and verifies passwords with argon2id on a few dedicated threads, at most
/// `queue` jobs running or waiting at once. Each job needs a [`HashTicket`], taken with
/// [`Passwords::reserve`] before the work that leads to it (a login takes it before it
/// reads the credentials, so a refused login costs no store call either).
pub struct Passwords {
    params: Params,
    /// A PHC string at the configured cost matching no password: what an unknown login
    /// is checked against, so that it takes as long as a wrong password.
    dummy: String,
    threads: HashThreads,
    queue: Arc<Semaphore>,
    capacity: usize,
}

/// A place in the password hashing queue, for one job. The job keeps it until it has
/// run, even when the request that asked for it is gone, so the queue bounds the work
/// actually waiting for the threads.
#[must_use = "a ticket holds a place in the hashing queue"]
#[derive(Debug)]
pub struct HashTicket {
    /// Held, never read: dropping it frees the place.
    _place: OwnedSemaphorePermit,
}

/// The threads that do all password hashing, each with its own argon2 working memory kept
/// from one hash to the next ([`compute`]). argon2's own API allocates its whole memory cost
/// (19 MiB by default) for every hash and frees it after; glibc did not give those blocks
/// back, and after 40 registrations an API held 330 MiB (docs/benchmarks.md). Now the
/// memory is at most threads × cost, and a burst of sign-ins cannot take more than those
/// cores from the requests being served.
struct HashThreads {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

thread_local! {
    /// This hashing thread's argon2 working memory.
    static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// argon2 of `password` with `salt`, in this thread's reused working memory (what
/// `PasswordHasher::hash_password` computes, without allocating the memory each time).
fn compute(argon: &Argon2<'_>, params: &Params, password: &[u8], salt: Salt<'_>) -> Result<Output, ApiError> {
    let mut salt_buf = [0u8; 64];
    let salt = salt
        .decode_b64(&mut salt_buf)
        .map_err(|e| ApiError::Internal(format!("salt: {e}")))?;
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    BLOCKS.with_borrow_mut(|blocks| {
        let needed = params.block_count();
        if blocks.len() < needed {
            blocks.resize(needed, Block::default());
        }
        Output::init_with(len, |out| {
            argon
                .hash_password_into_with_memory(password, salt, out, &mut blocks[..needed])
                .map_err(|_| argon2::password_hash::Error::Crypto)
        })
        .map_err(|e| ApiError::Internal(format!("argon2: {e}")))
    })
}

/// Whether `password` matches the PHC string `hash` (algorithm, version and cost as
/// recorded in it; the comparison of the outputs is constant-time).
fn verify_phc(password: &[u8], hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let Ok(version) = parsed.version.map(Version::try_from).transpose() else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version.unwrap_or_default(), params.clone());
    compute(&argon, &params, password, salt).is_ok_and(|computed| computed == expected)
}

impl HashThreads {
    fn start() -> Result<Self, PasswordSetupError> {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        for i in 0..n {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        // Ends when the `Passwords` (the only sender) is dropped.
                        let Ok(job) = job else { return };
                        // A panicking job drops its answer channel; the thread carries on.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .map_err(PasswordSetupError::Thread)?;
        }
        Ok(Self { jobs })
    }

    async fn run<T: Send + 'static>(
        &self,
        ticket: HashTicket,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let answer = f();
                // Free the place before answering: whoever reads the answer sees it free.
                drop(ticket);
                let _ = tx.send(answer);
            }))
            .map_err(|_| ApiError::Internal("the password threads have stopped".into()))?;
        rx.await
            .map_err(|_| ApiError::Internal("a password job ended without an answer".into()))
    }
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("params", &self.params)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// A PHC string of argon2id at `params` with a random salt and a random output: checking
/// a password against it costs exactly one verification and never succeeds (2^-256).
fn dummy_phc(params: &Params) -> Result<String, PasswordSetupError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(PasswordSetupError::Dummy)?;
    let output = Output::new(&rand::random::<[u8; Params::DEFAULT_OUTPUT_LEN]>()).map_err(PasswordSetupError::Dummy)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(PasswordSetupError::Dummy)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

impl Passwords {
    /// New hashes use `cost`; at most `queue` jobs run or wait at once.
    pub fn new(cost: PasswordCost, queue: usize) -> Result<Self, PasswordSetupError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(PasswordSetupError::Params)?;
        if queue == 0 {
            return Err(PasswordSetupError::NoQueue);
        }
        Ok(Self {
            dummy: dummy_phc(&params)?,
            params,
            threads: HashThreads::start()?,
            queue: Arc::new(Semaphore::new(queue)),
            capacity: queue,
        })
    }

    /// A place in the queue for one job, or 503 `overloaded` when it is full (then nothing
    /// has been done and nothing will be).
    pub fn reserve(&self) -> Result<HashTicket, ApiError> {
        self.queue
            .clone()
            .try_acquire_owned()
            .map(|place| HashTicket { _place: place })
            .map_err(|_| ApiError::Overloaded {
                retry_after: OVERLOADED_RETRY,
            })
    }

    /// Jobs running or waiting (with their places reserved).
    pub fn jobs(&self) -> usize {
        self.capacity.saturating_sub(self.queue.available_permits())
    }

    /// Check a new password against the policy (length only: long passphrases beat rules).
    pub fn check_policy(field: &str, password: &str) -> Result<(), ApiError> {
        if password.chars().count() < MIN_PASSWORD {
            return Err(ApiError::invalid(
                field,
                format!("must be at least {MIN_PASSWORD} characters"),
            ));
        }
        if password.chars().count() > MAX_PASSWORD {
            return Err(ApiError::invalid(
                field,
                format!("must be at most {MAX_PASSWORD} characters"),
            ));
        }
        Ok(())
    }

    /// The argon2id PHC string of `password` (computed off the async workers).
    pub async fn hash(&self, ticket: HashTicket, password: String) -> Result<String, ApiError> {
        let params = self.params.clone();
        self.threads
            .run(ticket, move || {
                let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
                    .map_err(|e| ApiError::Internal(format!("salt: {e}")))?;
                let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
                let output = compute(&argon, &params, password.as_bytes(), salt.as_salt())?;
                let phc = PasswordHash {
                    algorithm: Algorithm::Argon2id.ident(),
                    version: Some(Version::V0x13.into()),
                    params: ParamsString::try_from(&params).map_err(|e| ApiError::Internal(format!("argon2: {e}")))?,
                    salt: Some(salt.as_salt()),
                    hash: Some(output),
                };
                Ok(phc.to_string())
            })
            .await?
    }

    /// Whether `password` matches `hash` (any argon2 variant and cost recorded in it).
    pub async fn verify(&self, ticket: HashTicket, password: String, hash: String) -> Result<bool, ApiError> {
        if password.chars().count() > MAX_PASSWORD {
            return Ok(false);
        }
        self.threads
            .run(ticket, move || verify_phc(password.as_bytes(), &hash))
            .await
    }

    /// Spend the time of one verification without a real hash, so that an unknown login
    /// takes as long as a wrong password.
    pub async fn verify_dummy(&self, ticket: HashTicket, password: String) -> Result<(), ApiError> {
        self.verify(ticket, password, self.dummy.clone()).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User {
            id: Uuid::now_v7(),
            username: "alice".into(),
            email: "alice@example.org".into(),
            display_name: "Alice".into(),
            created_at_ms: 1,
            updated_at_ms: 1,
            password_changed_at_ms: 1_700_000_000_123,
        }
    }

    #[test]
    fn tokens_round_trip_and_are_revoked_by_a_password_change() {
        let tokens = Tokens::new(&Secret::new("k".repeat(32)), Duration::from_secs(60));
        let mut u = user();
        let token = tokens.issue(&u).unwrap();
        let claims = tokens.verify(&token).unwrap();
        assert_eq!(claims.sub, u.id);
        Tokens::current_for(&claims, &u).unwrap();
        u.password_changed_at_ms += 1;
        assert!(Tokens::current_for(&claims, &u).is_err());
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let tokens = Tokens::new(&Secret::new("k".repeat(32)), Duration::from_secs(60));
        let u = user();
        let expired = tokens
            .sign(&Claims {
                sub: u.id,
                iat: now_secs() - 7200,
                exp: now_secs() - 3600,
                pwd: u.password_changed_at_ms,
            })
            .unwrap();
        assert!(matches!(tokens.verify(&expired), Err(ApiError::Unauthorized(m)) if m.contains("expired")));
        let token = tokens.issue(&u).unwrap();
        let mut tampered = token.clone().into_bytes();
        let i = tampered.len() - 3;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        assert!(tokens.verify(&String::from_utf8(tampered).unwrap()).is_err());
        let other = Tokens::new(&Secret::new("o".repeat(32)), Duration::from_secs(60));
        assert!(other.verify(&token).is_err());
        assert!(tokens.verify("not.a.token").is_err());
    }

    #[tokio::test]
    async fn hashes_agree_with_the_argon2_library_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let p = Passwords::new(PasswordCost::insecure_fast_for_tests(), 8).unwrap();
        let ours = p.hash(p.reserve().unwrap(), "battery staple".into()).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"battery staple", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"battery stapler", &parsed).is_err());
        // Hashes the library made (every stored hash before the reused working memory),
        // with another cost and another variant, still verify, and only their password.
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        for algorithm in [Algorithm::Argon2id, Algorithm::Argon2i] {
            let params = Params::new(4096, 2, 1, None).unwrap();
            let theirs = Argon2::new(algorithm, Version::V0x13, params)
                .hash_password(b"old password", &salt)
                .unwrap()
                .to_string();
            assert!(
                p.verify(p.reserve().unwrap(), "old password".into(), theirs.clone())
                    .await
                    .unwrap(),
                "{theirs}"
            );
            assert!(
                !p.verify(p.reserve().unwrap(), "new password".into(), theirs)
                    .await
                    .unwrap()
            );
        }
    }

    #[tokio::test]
    async fn password_work_runs_on_the_hashing_threads() {
        let p = Passwords::new(PasswordCost::insecure_fast_for_tests(), 8).unwrap();
        let name = p
            .threads
            .run(p.reserve().unwrap(), || {
                std::thread::current().name().map(str::to_owned)
            })
            .await
            .unwrap();
        assert!(name.is_some_and(|n| n.starts_with("argon2-")));
        // A panicking job answers with an error, gives its place back and leaves the
        // threads working.
        assert!(
            p.threads
                .run(p.reserve().unwrap(), || -> u8 { panic!("boom") })
                .await
                .is_err()
        );
        assert_eq!(p.jobs(), 0);
        let hash = p.hash(p.reserve().unwrap(), "still working".into()).await.unwrap();
        assert!(
            p.verify(p.reserve().unwrap(), "still working".into(), hash)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn passwords_hash_with_argon2id_and_verify() {
        let p = Passwords::new(PasswordCost::insecure_fast_for_tests(), 8).unwrap();
        let ticket = || p.reserve().unwrap();
        let hash = p.hash(ticket(), "correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(p.verify(ticket(), "correct horse".into(), hash.clone()).await.unwrap());
        assert!(!p.verify(ticket(), "wrong horse".into(), hash).await.unwrap());
        assert!(!p.verify(ticket(), "x".into(), "not a hash".into()).await.unwrap());
        p.verify_dummy(ticket(), "whatever".into()).await.unwrap();
        assert!(
            !p.verify(ticket(), "agenda-dummy-password".into(), p.dummy.clone())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_a_finished_job_frees_its_place() {
        let p = Passwords::new(PasswordCost::insecure_fast_for_tests(), 2).unwrap();
        let first = p.reserve().unwrap();
        let second = p.reserve().unwrap();
        assert_eq!(p.jobs(), 2);
        let refused = p.reserve().unwrap_err();
        assert_eq!((refused.status().as_u16(), refused.code()), (503, "overloaded"));
        drop(first);
        assert_eq!(p.jobs(), 1);
        p.hash(second, "some password".into()).await.unwrap();
        assert_eq!(p.jobs(), 0, "the job gave its place back when it had run");
        assert!(Passwords::new(PasswordCost::insecure_fast_for_tests(), 0).is_err());
    }

    #[test]
    fn the_policy_bounds_length() {
        assert!(Passwords::check_policy("password", "short").is_err());
        assert!(Passwords::check_policy("password", &"x".repeat(257)).is_err());
        assert!(Passwords::check_policy("password", &"é".repeat(256)).is_ok());
        assert!(Passwords::check_policy("password", "long enough").is_ok());
    }
}
