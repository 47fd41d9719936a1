//! `mark` and `check-mark`: what the backup and restore round trip of the Swarm
//! end-to-end test writes before a backup (or after it) and looks for once the cluster
//! has been restored from it.
//!
//! A mark is a user and one appointment of theirs. `check-mark` logs the user in and
//! finds the appointment; `check-mark --absent` proves the user does not exist (a login
//! answered `401 unauthorized`, the answer for an unknown name).

use anyhow::{Context, bail, ensure};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;

use crate::api::{Api, Call, short};
use crate::report::Report;

fn password(user: &str) -> String {
    format!("{user}-mark-password")
}

fn title(user: &str) -> String {
    format!("mark of {user}")
}

/// `mark`: register `user`, book one appointment, print `marked user=… appointment=…
/// revision=…`.
pub(crate) async fn mark(api: &Api, user: &str) -> anyhow::Result<()> {
    let mut report = Report::new("mark");
    let body = json!({
        "username": user,
        "email": format!("{user}@e2e.invalid"),
        "password": password(user),
        "display_name": format!("mark {user}"),
    });
    let session = api
        .call(&Call::post("/register", body), 0)
        .await?
        .expect(201)
        .with_context(|| format!("register {user}"))?;
    let token = session["token"].as_str().context("register answered no token")?;
    let start = OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT) + time::Duration::days(400);
    let appointment = json!({
        "title": title(user),
        "start_time": start.format(&Rfc3339)?,
        "end_time": (start + time::Duration::hours(1)).format(&Rfc3339)?,
    });
    let reply = api
        .call(
            &Call::post("/api/appointments", appointment).token(token),
            1 % api.len(),
        )
        .await?;
    let revision = reply.revision().ok();
    let created = reply.expect(201).context("book the mark's appointment")?;
    let id = created["id"].as_str().context("appointment id")?;
    report.ok(&format!("{user} registered and booked {id}"));
    println!(
        "marked user={user} appointment={id} revision={}",
        revision.map_or_else(|| "?".to_owned(), |r| r.to_string())
    );
    Ok(())
}

/// `check-mark`: `user` logs in and sees the mark's appointment (or, `absent`, does not
/// exist). Retries while the cluster is not answering, until `deadline`.
pub(crate) async fn check(api: &Api, user: &str, absent: bool, deadline: Instant) -> anyhow::Result<()> {
    let mut report = Report::new("check-mark");
    let body = json!({ "username": user, "password": password(user) });
    let reply = loop {
        match api.call(&Call::post("/login", body.clone()), 0).await {
            Ok(reply) => break reply,
            Err(e) if Instant::now() < deadline => {
                report.note(&format!("login not answered yet: {e}"));
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    if absent {
        ensure!(
            reply.status == 401 && reply.body["code"] == "unauthorized",
            "{user} should not exist, but the login answered {} {}",
            reply.status,
            short(&reply.body)
        );
        report.ok(&format!("{user} does not exist, as expected"));
        return Ok(());
    }
    let session = reply.expect(200).with_context(|| format!("log in {user}"))?;
    let token = session["token"].as_str().context("login answered no token")?;
    let from = OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT) + time::Duration::days(300);
    let to = from + time::Duration::days(200);
    let path = format!(
        "/api/appointments?start={}&end={}",
        from.format(&Rfc3339)?,
        to.format(&Rfc3339)?
    );
    let listed = api
        .call(&Call::get(path).token(token), 0)
        .await?
        .expect(200)
        .context("list the mark's appointments")?;
    let appointments = listed["appointments"].as_array().context("appointments")?;
    let found = appointments.iter().any(|a| a["title"] == title(user).as_str());
    if !found {
        bail!(
            "{user} logged in but the appointment '{}' is missing: {}",
            title(user),
            short(&listed)
        );
    }
    report.ok(&format!("{user} logged in and found '{}'", title(user)));
    Ok(())
}
