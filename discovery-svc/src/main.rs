//! `discovery-svc` binary: load config, start telemetry, run until SIGINT/SIGTERM.
//! `discovery-svc healthcheck` asks the local agent for its member table with a signed
//! `Members` call (used by Docker; exits 0 when the agent answers).

use std::time::Duration;

use agenda_shared::auth::{ClusterSecret, RpcAuth};
use agenda_shared::discovery_proto::{MemberState, MembersRequest};
use agenda_shared::rpc::tls::ClusterTls;
use anyhow::Context;
use discovery_svc::{App, EnvConfig};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env: EnvConfig = agenda_shared::config::load().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
    let secret = env.cluster_secret().context("cluster secret")?;
    let tls = env.cluster_tls().context("cluster links")?;
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return healthcheck(env, secret, tls).await;
    }
    agenda_shared::telemetry::init(env.log_format == "json");
    let hostname = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty());
    let config = env.into_config(secret, tls, hostname).map_err(|e| anyhow::anyhow!(e))?;
    let app = App::build(config).await?;
    let token = CancellationToken::new();
    agenda_shared::shutdown::cancel_on_signal(token.clone());
    app.run(token).await?;
    Ok(())
}

async fn healthcheck(env: EnvConfig, secret: ClusterSecret, tls: ClusterTls) -> anyhow::Result<()> {
    let port = env.discovery_listen.port();
    let node = format!("{}-healthcheck", env.node_id);
    let mut client =
        agenda_shared::rpc::agent::connect(&format!("127.0.0.1:{port}"), RpcAuth::new(secret, node), &tls)?;
    let reply = tokio::time::timeout(Duration::from_secs(3), client.members(MembersRequest {}))
        .await
        .context("the local discovery agent did not answer in time")?
        .context("members")?
        .into_inner();
    let alive = reply
        .members
        .iter()
        .filter(|m| m.state == MemberState::Alive as i32)
        .count();
    println!(
        "{} sees {} members, {alive} alive",
        reply.self_node_id,
        reply.members.len()
    );
    Ok(())
}
