//! Accounts: `POST /register`, `POST /login`, `GET/PATCH /api/me` (also
//! `/api/me/profile`), `PUT /api/me/password`.

use agenda_shared::command::{ChangePassword, RegisterUser, UpdateProfile};
use agenda_shared::query::CredentialsQuery;
use std::net::IpAddr;

use agenda_shared::model::User;
use agenda_shared::validate;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::docs::{BodyErrors, PasswordWork, RateLimited, ReadErrors, WriteErrors};
use super::extract::{ApiJson, Caller, ClientIp, ReadMeta, ReadParams, WriteParams};
use super::reply::Reply;
use super::rules;
use crate::auth::Passwords;
use crate::error::{ApiError, Problem};
use crate::state::{AppState, WriteMeta};
use crate::store::ReadConsistency;
use crate::views::{Session, UserView};

/// Routes of this module.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(get_me, patch_me))
        .routes(routes!(get_profile, patch_profile))
        .routes(routes!(change_password))
}

/// Registration.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"username": "ada", "email": "ada@example.org", "password": "correct horse battery", "display_name": "Ada Lovelace"})))]
pub struct RegisterInput {
    /// Unique, case-insensitive.
    #[schema(schema_with = rules::username)]
    pub username: String,
    /// Unique, case-insensitive.
    #[schema(schema_with = rules::email)]
    pub email: String,
    /// The password.
    #[schema(schema_with = rules::new_password)]
    pub password: String,
    /// Name shown to others (alias `name`; default: the username).
    #[serde(default, alias = "name")]
    #[schema(schema_with = rules::display_name_or_null)]
    pub display_name: Option<String>,
}

/// Login by username or e-mail: exactly one of `login`, `username` or `email`, and
/// `password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"login": "ada", "password": "correct horse battery"})))]
pub struct LoginInput {
    /// Username or e-mail.
    #[serde(default)]
    #[schema(schema_with = rules::login_or_null)]
    pub login: Option<String>,
    /// Username (or e-mail: all three are looked up the same way).
    #[serde(default)]
    #[schema(schema_with = rules::login_or_null)]
    pub username: Option<String>,
    /// E-mail (or username).
    #[serde(default)]
    #[schema(schema_with = rules::login_or_null)]
    pub email: Option<String>,
    /// Password (any string; a wrong one is 401).
    #[schema(write_only)]
    pub password: String,
}

/// Partial profile update: at least one of `username`, `email`, `display_name`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"display_name": "Ada King"})))]
pub struct ProfilePatch {
    /// New username.
    #[serde(default)]
    #[schema(schema_with = rules::username_or_null)]
    pub username: Option<String>,
    /// New e-mail.
    #[serde(default)]
    #[schema(schema_with = rules::email_or_null)]
    pub email: Option<String>,
    /// New display name (alias `name`).
    #[serde(default, alias = "name")]
    #[schema(schema_with = rules::display_name_or_null)]
    pub display_name: Option<String>,
    /// The current password, required to change the username or the e-mail (a wrong one
    /// is 403; unchanged values need none).
    #[serde(default)]
    #[schema(write_only)]
    pub current_password: Option<String>,
}

/// Password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"current_password": "correct horse battery", "new_password": "battery staple horse"})))]
pub struct PasswordChange {
    /// The current password.
    #[schema(write_only)]
    pub current_password: String,
    /// The new password.
    #[schema(schema_with = rules::new_password)]
    pub new_password: String,
}

/// Create an account; answers the user and a token.
#[utoipa::path(post, path = "/register", tag = "accounts", request_body = RegisterInput, params(WriteParams),
    responses((status = 201, description = "Registered", body = Session),
        (status = 400, description = "validation_failed: malformed JSON or `Idempotency-Key`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "conflict: the username or e-mail is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed or idempotency_mismatch", body = Problem, content_type = "application/problem+json"),
        BodyErrors, RateLimited, PasswordWork))]
async fn register(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    meta: WriteMeta,
    ApiJson(input): ApiJson<RegisterInput>,
) -> Result<Reply<Session>, ApiError> {
    let (revision, session) = create_account(&app, ip, &meta, input).await?;
    Ok(Reply::created(revision, session))
}

/// Sign in; answers the user and a token. Rate limited per client IP and per account.
#[utoipa::path(post, path = "/login", tag = "accounts", request_body = LoginInput,
    responses((status = 200, description = "Signed in", body = Session),
        (status = 400, description = "validation_failed: malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "unauthorized: wrong login or password", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed", body = Problem, content_type = "application/problem+json"),
        BodyErrors, RateLimited, PasswordWork))]
async fn login(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(input): ApiJson<LoginInput>,
) -> Result<Reply<Session>, ApiError> {
    let (revision, session) = sign_in(&app, ip, input).await?;
    Ok(Reply::ok(revision, session))
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/me", tag = "accounts", security(("bearer" = [])), params(ReadParams),
    responses((status = 200, description = "The caller", body = UserView), ReadErrors))]
async fn get_me(State(app): State<AppState>, caller: Caller, read: ReadMeta) -> Result<Reply<UserView>, ApiError> {
    let (revision, user) = app.me(&caller, read.consistency).await?;
    Ok(Reply::ok(revision, user.into()))
}

/// Same as `GET /api/me`.
#[utoipa::path(get, path = "/api/me/profile", tag = "accounts", security(("bearer" = [])), params(ReadParams),
    responses((status = 200, description = "The caller", body = UserView), ReadErrors))]
async fn get_profile(State(app): State<AppState>, caller: Caller, read: ReadMeta) -> Result<Reply<UserView>, ApiError> {
    let (revision, user) = app.me(&caller, read.consistency).await?;
    Ok(Reply::ok(revision, user.into()))
}

/// Update the caller's profile; changing username or e-mail needs `current_password`.
#[utoipa::path(patch, path = "/api/me", tag = "accounts", security(("bearer" = [])), request_body = ProfilePatch,
    params(WriteParams),
    responses((status = 200, description = "Updated", body = UserView), WriteErrors, BodyErrors, RateLimited, PasswordWork))]
async fn patch_me(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Caller,
    meta: WriteMeta,
    ApiJson(patch): ApiJson<ProfilePatch>,
) -> Result<Reply<UserView>, ApiError> {
    let (revision, user) = update_profile(&app, ip, &caller, &meta, patch).await?;
    Ok(Reply::ok(revision, user.into()))
}

/// Same as `PATCH /api/me`.
#[utoipa::path(patch, path = "/api/me/profile", tag = "accounts", security(("bearer" = [])), request_body = ProfilePatch,
    params(WriteParams),
    responses((status = 200, description = "Updated", body = UserView), WriteErrors, BodyErrors, RateLimited, PasswordWork))]
async fn patch_profile(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Caller,
    meta: WriteMeta,
    ApiJson(patch): ApiJson<ProfilePatch>,
) -> Result<Reply<UserView>, ApiError> {
    let (revision, user) = update_profile(&app, ip, &caller, &meta, patch).await?;
    Ok(Reply::ok(revision, user.into()))
}

/// Change the password; every older token stops working. Answers a fresh token.
#[utoipa::path(put, path = "/api/me/password", tag = "accounts", security(("bearer" = [])), request_body = PasswordChange,
    params(WriteParams),
    responses((status = 200, description = "Changed", body = Session), WriteErrors, BodyErrors, RateLimited, PasswordWork))]
async fn change_password(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    caller: Caller,
    meta: WriteMeta,
    ApiJson(change): ApiJson<PasswordChange>,
) -> Result<Reply<Session>, ApiError> {
    let (revision, session) = replace_password(&app, ip, &caller, &meta, change).await?;
    Ok(Reply::ok(revision, session))
}

/// A new secret feed token: 256 random bits, hex.
pub(crate) fn new_feed_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

async fn create_account(
    app: &AppState,
    ip: Option<IpAddr>,
    meta: &WriteMeta,
    input: RegisterInput,
) -> Result<(u64, Session), ApiError> {
    // Hashing costs CPU: registration shares the per-IP login budget.
    app.limiter.check(ip, None)?;
    let username = validate::username(&input.username)?;
    let email = validate::email(&input.email)?;
    let display_name = validate::text(
        "display_name",
        input.display_name.as_deref().unwrap_or(&username),
        validate::MAX_DISPLAY_NAME,
        true,
    )?;
    Passwords::check_policy("password", &input.password)?;
    let fingerprint = json!({
        "username": username,
        "email": email,
        "display_name": display_name,
        "password": app.secret_digest(&input.password)?,
    });
    let ticket = app.passwords.reserve()?;
    let password_hash = app.passwords.hash(ticket, input.password).await?;
    let command = RegisterUser {
        user_id: Uuid::now_v7(),
        username,
        email,
        display_name,
        password_hash: password_hash.into(),
        feed_token: new_feed_token().into(),
    };
    let done = app.execute(meta, None, &fingerprint, command).await?;
    let (revision, user) = (done.revision, done.output);
    let token = app.tokens.issue(&user)?;
    Ok((
        revision,
        Session {
            user: user.into(),
            token,
        },
    ))
}

/// Credentials of `login` (username or e-mail), `None` when nobody has that name.
async fn credentials(app: &AppState, login: &str) -> Result<Option<(u64, User, String)>, ApiError> {
    let query = CredentialsQuery {
        login: login.to_owned(),
    };
    match app.query(query, ReadConsistency::Linearizable).await {
        Ok((revision, credentials)) => Ok(Some((revision, credentials.user, credentials.password_hash))),
        Err(ApiError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn sign_in(app: &AppState, ip: Option<IpAddr>, input: LoginInput) -> Result<(u64, Session), ApiError> {
    let given: Vec<&String> = [&input.login, &input.username, &input.email]
        .into_iter()
        .flatten()
        .collect();
    let [login] = given.as_slice() else {
        return Err(ApiError::invalid(
            "login",
            "give exactly one of login, username or email",
        ));
    };
    let login = login.trim();
    if login.is_empty() || login.chars().count() > validate::MAX_EMAIL {
        return Err(ApiError::invalid("login", "must be a username or an e-mail address"));
    }
    app.limiter.check(ip, Some(login))?;
    // The place in the hashing queue first: a login refused for want of one costs no
    // store call.
    let ticket = app.passwords.reserve()?;
    let denied = ApiError::Unauthorized("wrong login or password");
    let Some((revision, user, hash)) = credentials(app, login).await? else {
        app.passwords.verify_dummy(ticket, input.password).await?;
        app.limiter.failed(login);
        return Err(denied);
    };
    if !app.passwords.verify(ticket, input.password, hash).await? {
        app.limiter.failed(login);
        return Err(denied);
    }
    app.limiter.succeeded(login);
    let token = app.tokens.issue(&user)?;
    Ok((
        revision,
        Session {
            user: user.into(),
            token,
        },
    ))
}

/// Check the caller's current password (throttled like a login, on the same account).
async fn check_current_password(
    app: &AppState,
    ip: Option<IpAddr>,
    me: &User,
    password: Option<String>,
) -> Result<(), ApiError> {
    let password = password.ok_or_else(|| {
        ApiError::invalid(
            "current_password",
            "is required to change the username, the e-mail or the password",
        )
    })?;
    app.limiter.check(ip, Some(&me.username))?;
    let ticket = app.passwords.reserve()?;
    let (_, _, hash) = credentials(app, &me.username)
        .await?
        .ok_or(ApiError::Unauthorized("the token's user does not exist"))?;
    if !app.passwords.verify(ticket, password, hash).await? {
        app.limiter.failed(&me.username);
        return Err(ApiError::Forbidden("current_password is wrong".into()));
    }
    app.limiter.succeeded(&me.username);
    Ok(())
}

async fn update_profile(
    app: &AppState,
    ip: Option<IpAddr>,
    caller: &Caller,
    meta: &WriteMeta,
    patch: ProfilePatch,
) -> Result<(u64, User), ApiError> {
    if patch.username.is_none() && patch.email.is_none() && patch.display_name.is_none() {
        return Err(ApiError::invalid("body", "nothing to change"));
    }
    let (_, me) = app.me(caller, ReadConsistency::Linearizable).await?;
    // Unchanged values are dropped, so re-sending a whole profile needs no password.
    let username = patch
        .username
        .as_deref()
        .map(validate::username)
        .transpose()?
        .filter(|u| *u != me.username);
    let email = patch
        .email
        .as_deref()
        .map(validate::email)
        .transpose()?
        .filter(|e| *e != me.email);
    let display_name = patch
        .display_name
        .as_deref()
        .map(|d| validate::text("display_name", d, validate::MAX_DISPLAY_NAME, true))
        .transpose()?;
    if username.is_some() || email.is_some() {
        check_current_password(app, ip, &me, patch.current_password).await?;
    }
    let fingerprint = json!({ "username": username, "email": email, "display_name": display_name });
    let command = UpdateProfile {
        username,
        email,
        display_name,
    };
    let done = app.execute(meta, Some(caller), &fingerprint, command).await?;
    Ok((done.revision, done.output))
}

async fn replace_password(
    app: &AppState,
    ip: Option<IpAddr>,
    caller: &Caller,
    meta: &WriteMeta,
    change: PasswordChange,
) -> Result<(u64, Session), ApiError> {
    Passwords::check_policy("new_password", &change.new_password)?;
    let (_, me) = app.me(caller, ReadConsistency::Linearizable).await?;
    check_current_password(app, ip, &me, Some(change.current_password)).await?;
    let fingerprint = json!({ "new_password": app.secret_digest(&change.new_password)? });
    let ticket = app.passwords.reserve()?;
    let password_hash = app.passwords.hash(ticket, change.new_password).await?;
    let command = ChangePassword {
        password_hash: password_hash.into(),
    };
    let done = app.execute(meta, Some(caller), &fingerprint, command).await?;
    let (revision, user) = (done.revision, done.output);
    let token = app.tokens.issue(&user)?;
    Ok((
        revision,
        Session {
            user: user.into(),
            token,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_accepts_name_as_an_alias_and_refuses_unknown_fields() {
        let r: RegisterInput =
            serde_json::from_str(r#"{"username":"a","email":"b","password":"c","name":"Ann"}"#).unwrap();
        assert_eq!(r.display_name.as_deref(), Some("Ann"));
        assert!(
            serde_json::from_str::<RegisterInput>(r#"{"username":"a","email":"b","password":"c","admin":true}"#)
                .is_err()
        );
    }

    #[test]
    fn feed_tokens_are_long_and_random() {
        let a = new_feed_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, new_feed_token());
    }
}
