//! Child mode: run one sidecar from its environment, exactly as its own binary would.

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

/// Run the sidecar `kind` (`store`, `discovery` or `api`) until SIGINT/SIGTERM.
pub(crate) async fn run(kind: &str) -> anyhow::Result<()> {
    // Die with the supervisor even if it is killed without a chance to stop us.
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).context("parent-death signal")?;
    agenda_shared::telemetry::init(false);
    let token = CancellationToken::new();
    agenda_shared::shutdown::cancel_on_signal(token.clone());
    match kind {
        "store" => {
            let env: consensus_svc::EnvConfig = agenda_shared::config::load().map_err(|e| anyhow::anyhow!("{e}"))?;
            let secret = env.cluster_secret().context("cluster secret")?;
            let tls = env.cluster_tls().context("cluster links")?;
            let config = env.into_config(secret, tls, None).map_err(|e| anyhow::anyhow!(e))?;
            consensus_svc::App::build(config).await?.run(token).await?;
        }
        "discovery" => {
            let env: discovery_svc::EnvConfig = agenda_shared::config::load().map_err(|e| anyhow::anyhow!("{e}"))?;
            let secret = env.cluster_secret().context("cluster secret")?;
            let tls = env.cluster_tls().context("cluster links")?;
            let config = env.into_config(secret, tls, None).map_err(|e| anyhow::anyhow!(e))?;
            discovery_svc::App::build(config).await?.run(token).await?;
        }
        "api" => {
            let env: api_svc::EnvConfig = agenda_shared::config::load().map_err(|e| anyhow::anyhow!("{e}"))?;
            let config = env.into_config().context("configuration")?;
            api_svc::App::build(config).await?.run(token).await?;
        }
        other => bail!("unknown child kind {other:?}"),
    }
    Ok(())
}
