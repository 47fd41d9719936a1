//! Accounts: `POST /register`, `POST /login`, `GET/PATCH /api/me` (also
//! `/api/me/profile`), `PUT /api/me/password`.

use std::net::IpAddr;

use agenda_shared::command::Command;
use agenda_shared::model::User;
use agenda_shared::query::{Query, QueryResult};
use agenda_shared::validate;
use axum::extract::State;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::docs::{PublicErrors, ReadErrors, WriteErrors};
use super::extract::{ApiJson, Caller, ClientIp};
use super::reply::Reply;
use crate::auth::Passwords;
use crate::error::ApiError;
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
pub struct RegisterInput {
    /// 3–32 of `[a-z0-9_.-]`, case-insensitive, unique.
    pub username: String,
    /// E-mail address, unique.
    pub email: String,
    /// At least 8 characters.
    #[schema(write_only)]
    pub password: String,
    /// Name shown to others (alias `name`; default: the username).
    #[serde(default, alias = "name")]
    pub display_name: Option<String>,
}

/// Login by username or e-mail: `login`, `username` or `email`, and `password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    /// Username or e-mail.
    #[serde(default)]
    pub login: Option<String>,
    /// Username.
    #[serde(default)]
    pub username: Option<String>,
    /// E-mail.
    #[serde(default)]
    pub email: Option<String>,
    /// Password.
    #[schema(write_only)]
    pub password: String,
}

/// Partial profile update.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// New username (needs `current_password`).
    #[serde(default)]
    pub username: Option<String>,
    /// New e-mail (needs `current_password`).
    #[serde(default)]
    pub email: Option<String>,
    /// New display name (alias `name`).
    #[serde(default, alias = "name")]
    pub display_name: Option<String>,
    /// The current password, required to change username or e-mail.
    #[serde(default)]
    #[schema(write_only)]
    pub current_password: Option<String>,
}

/// Password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The current password.
    #[schema(write_only)]
    pub current_password: String,
    /// The new password (at least 8 characters).
    #[schema(write_only)]
    pub new_password: String,
}

const IDEMPOTENCY: &str = "Reusing a key with the same request returns the recorded answer; with a different request, 422 idempotency_mismatch.";

/// Create an account; answers the user and a token.
#[utoipa::path(post, path = "/register", tag = "accounts", request_body = RegisterInput,
    params(("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY)),
    responses((status = 201, description = "Registered", body = Session), PublicErrors))]
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
    responses((status = 200, description = "Signed in", body = Session), PublicErrors))]
async fn login(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(input): ApiJson<LoginInput>,
) -> Result<Reply<Session>, ApiError> {
    let (revision, session) = sign_in(&app, ip, input).await?;
    Ok(Reply::ok(revision, session))
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = UserView), ReadErrors))]
async fn get_me(caller: Caller) -> Reply<UserView> {
    Reply::ok(caller.revision, caller.user.into())
}

/// Same as `GET /api/me`.
#[utoipa::path(get, path = "/api/me/profile", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, description = "The caller", body = UserView), ReadErrors))]
async fn get_profile(caller: Caller) -> Reply<UserView> {
    Reply::ok(caller.revision, caller.user.into())
}

/// Update the caller's profile; changing username or e-mail needs `current_password`.
#[utoipa::path(patch, path = "/api/me", tag = "accounts", security(("bearer" = [])), request_body = ProfilePatch,
    params(("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY)),
    responses((status = 200, description = "Updated", body = UserView), WriteErrors))]
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
    params(("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY)),
    responses((status = 200, description = "Updated", body = UserView), WriteErrors))]
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
    params(("Idempotency-Key" = Option<String>, Header, description = IDEMPOTENCY)),
    responses((status = 200, description = "Changed", body = Session), WriteErrors))]
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
    let password_hash = app.passwords.hash(input.password).await?;
    let command = Command::RegisterUser {
        user_id: Uuid::now_v7(),
        username,
        email,
        display_name,
        password_hash: password_hash.into(),
        feed_token: new_feed_token().into(),
    };
    let done = app.execute(meta, None, &fingerprint, command).await?;
    let revision = done.revision;
    let user = done.user()?;
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
    let query = Query::Credentials {
        login: login.to_owned(),
    };
    match app.query(query, ReadConsistency::Linearizable).await {
        Ok((revision, QueryResult::Credentials { credentials })) => {
            Ok(Some((revision, credentials.user, credentials.password_hash)))
        }
        Ok((_, other)) => Err(ApiError::Internal(format!("expected credentials, got {other:?}"))),
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
    if login.is_empty() || login.len() > validate::MAX_EMAIL {
        return Err(ApiError::invalid("login", "must be a username or an e-mail address"));
    }
    app.limiter.check(ip, Some(login))?;
    let denied = ApiError::Unauthorized("wrong login or password");
    let Some((revision, user, hash)) = credentials(app, login).await? else {
        app.passwords.verify_dummy(input.password).await?;
        return Err(denied);
    };
    if !app.passwords.verify(input.password, hash).await? {
        return Err(denied);
    }
    let token = app.tokens.issue(&user)?;
    Ok((
        revision,
        Session {
            user: user.into(),
            token,
        },
    ))
}

/// Check the caller's current password (rate limited like a login).
async fn check_current_password(
    app: &AppState,
    ip: Option<IpAddr>,
    caller: &Caller,
    password: Option<String>,
) -> Result<(), ApiError> {
    let password = password.ok_or_else(|| {
        ApiError::invalid(
            "current_password",
            "is required to change the username, the e-mail or the password",
        )
    })?;
    app.limiter.check(ip, Some(&caller.user.username))?;
    let (_, _, hash) = credentials(app, &caller.user.username)
        .await?
        .ok_or(ApiError::Unauthorized("the token's user does not exist"))?;
    if !app.passwords.verify(password, hash).await? {
        return Err(ApiError::Forbidden("current_password is wrong".into()));
    }
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
    // Unchanged values are dropped, so re-sending a whole profile needs no password.
    let username = patch
        .username
        .as_deref()
        .map(validate::username)
        .transpose()?
        .filter(|u| *u != caller.user.username);
    let email = patch
        .email
        .as_deref()
        .map(validate::email)
        .transpose()?
        .filter(|e| *e != caller.user.email);
    let display_name = patch
        .display_name
        .as_deref()
        .map(|d| validate::text("display_name", d, validate::MAX_DISPLAY_NAME, true))
        .transpose()?;
    if username.is_some() || email.is_some() {
        check_current_password(app, ip, caller, patch.current_password).await?;
    }
    let fingerprint = json!({ "username": username, "email": email, "display_name": display_name });
    let command = Command::UpdateProfile {
        username,
        email,
        display_name,
    };
    let done = app.execute(meta, Some(caller.id()), &fingerprint, command).await?;
    let revision = done.revision;
    Ok((revision, done.user()?))
}

async fn replace_password(
    app: &AppState,
    ip: Option<IpAddr>,
    caller: &Caller,
    meta: &WriteMeta,
    change: PasswordChange,
) -> Result<(u64, Session), ApiError> {
    Passwords::check_policy("new_password", &change.new_password)?;
    check_current_password(app, ip, caller, Some(change.current_password)).await?;
    let fingerprint = json!({ "new_password": app.secret_digest(&change.new_password)? });
    let password_hash = app.passwords.hash(change.new_password).await?;
    let command = Command::ChangePassword {
        password_hash: password_hash.into(),
    };
    let done = app.execute(meta, Some(caller.id()), &fingerprint, command).await?;
    let revision = done.revision;
    let user = done.user()?;
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
