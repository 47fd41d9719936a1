//! `agenda-admin` (also `consensus-svc admin …` inside the store image): the operator's
//! command line. It talks to the stores over the cluster's own links — mutual TLS with a
//! store certificate and HMAC-signed requests, configured exactly as a store is
//! (`CLUSTER_HMAC_SECRET_FILE`, `CLUSTER_TLS_*_FILE`) — so it needs no extra credential and
//! reaches stores that are not published outside the overlay network.

use std::path::PathBuf;
use std::time::Duration;

use agenda_shared::auth::{Receiver, RpcAuth};
use agenda_shared::proto::admin_client::AdminClient;
use agenda_shared::proto::{BackupRequest, ChangeMembershipRequest, TransferLeaderRequest, backup_chunk};
use agenda_shared::rpc::channel::{SignedChannel, lazy_channel, signed};
use agenda_shared::rpc::store::StoreClient;
use agenda_shared::rpc::tls::{ClusterTls, Role};
use agenda_shared::status::StoreStatus;
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::EnvConfig;
use crate::backup::{self, BackupHeader, BackupWriter};

/// Operate an Agenda cluster: its stores' status and membership, online backups, restore.
///
/// Credentials come from the same settings as a store's: CLUSTER_HMAC_SECRET_FILE (or
/// CLUSTER_HMAC_SECRET) and CLUSTER_TLS_CA_FILE / CLUSTER_TLS_CERT_FILE /
/// CLUSTER_TLS_KEY_FILE with a store certificate (INSECURE_CLUSTER_LINKS=1 for plain-text
/// test clusters). Inside the store image: `consensus-svc admin <command>`.
#[derive(Debug, Parser)]
#[command(name = "agenda-admin", version)]
pub struct Cli {
    /// A store to start from, host:port (any one; the others are found through it).
    #[arg(long, global = true, env = "AGENDA_STORE", default_value = "127.0.0.1:7000")]
    pub store: String,
    /// A discovery agent, host:port: `status` adds each slot's agent and API health from
    /// its member table (inside the store image DISCOVERY_ADDR already names the slot's).
    #[arg(long, global = true, env = "DISCOVERY_ADDR")]
    pub discovery: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every slot: its store's role, term, applied index, lag, entry formats and alarms,
    /// and (with --discovery) the health of its discovery agent and API.
    Status,
    /// The Raft membership.
    Members {
        /// What to do with it.
        #[command(subcommand)]
        action: MembersAction,
    },
    /// Leadership.
    Leader {
        /// What to do with it.
        #[command(subcommand)]
        action: LeaderAction,
    },
    /// Take an online backup: a consistent copy of the whole agenda at a known revision,
    /// from a follower (by default), while the cluster serves writes.
    Backup {
        /// Where to write it (written as FILE.partial, renamed once complete and checked).
        #[arg(long)]
        out: PathBuf,
        /// Take it from this store instead of a follower.
        #[arg(long)]
        from: Option<String>,
    },
    /// Check a backup file whole: header, size, checksum, the database's integrity.
    Verify {
        /// The backup file.
        file: PathBuf,
    },
    /// Seed a new cluster from a backup: writes the store of one slot into an empty data
    /// folder, as a cluster of one voter with a new cluster id at the backup's revision.
    /// Start that store, then the other slots' stores with empty volumes: they join it.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The store's empty data folder (its DATA_DIR).
        #[arg(long)]
        data_dir: PathBuf,
        /// The slot it is (NODE_ID, e.g. agenda-1).
        #[arg(long)]
        slot: String,
        /// The address the other stores reach it at (its ADVERTISE_ADDR, e.g. store-1:7000).
        #[arg(long)]
        advertise: String,
    },
}

/// `members` actions.
#[derive(Debug, Subcommand)]
pub enum MembersAction {
    /// Voters and learners, as the leader sees them.
    List,
    /// Take a voter out of the membership (a slot whose host is gone for good; a store
    /// that still runs and is discovered is added back by the leader).
    Remove {
        /// Its slot (agenda-N) or Raft id.
        member: String,
    },
}

/// `leader` actions.
#[derive(Debug, Subcommand)]
pub enum LeaderAction {
    /// Hand leadership to another voter (before maintenance of the leader's host).
    Transfer {
        /// The slot (agenda-N) or Raft id to hand over to; default: the most caught up.
        #[arg(long)]
        to: Option<String>,
    },
}

/// Parse the arguments (after the program name) and run.
pub async fn main_with(args: impl IntoIterator<Item = String>) -> anyhow::Result<()> {
    let cli = Cli::parse_from(std::iter::once("agenda-admin".to_owned()).chain(args));
    run(cli).await
}

/// Run one command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Verify { file } => {
            let header = backup::verify(file).with_context(|| format!("{}", file.display()))?;
            print(cli.json, &header, || describe(&header));
        }
        Command::Restore {
            from,
            data_dir,
            slot,
            advertise,
        } => {
            let restored = backup::restore(from, data_dir, slot, advertise)?;
            print(cli.json, &restored, || {
                format!(
                    "restored revision {} into {} as {slot} (raft id {}), new cluster {}\n\
                     start this store now, then the other slots' stores with empty data folders",
                    restored.header.revision,
                    data_dir.display(),
                    restored.raft_id,
                    restored.cluster_id
                )
            });
        }
        Command::Status => {
            let links = Links::from_env()?;
            let stores = cluster_statuses(&links, &cli.store).await?;
            let (slots, discovery_error) = match &cli.discovery {
                None => (Vec::new(), None),
                Some(addr) => match links.members(addr).await {
                    Ok(members) => (members, None),
                    Err(e) => (Vec::new(), Some(format!("{e:#}"))),
                },
            };
            let report = StatusReport {
                stores,
                slots,
                discovery_error,
            };
            print(cli.json, &report, || status_table(&report));
        }
        Command::Members {
            action: MembersAction::List,
        } => {
            let links = Links::from_env()?;
            let rows = cluster_statuses(&links, &cli.store).await?;
            let view = rows
                .iter()
                .filter_map(|r| r.status.as_ref())
                .find(|s| s.role == "leader")
                .or_else(|| rows.iter().find_map(|r| r.status.as_ref()))
                .context("no store answered")?;
            print(cli.json, &view.members, || {
                let mut out = format!(
                    "{:<12} {:<18} {:<24} {:<8} {:>9} {:>6}\n",
                    "SLOT", "RAFT ID", "ADDRESS", "ROLE", "MATCHED", "FORMAT"
                );
                for m in &view.members {
                    out.push_str(&format!(
                        "{:<12} {:<18} {:<24} {:<8} {:>9} {:>6}\n",
                        m.node_name,
                        m.raft_id,
                        m.addr,
                        if m.voter { "voter" } else { "learner" },
                        m.matched_index.map_or("-".into(), |v| v.to_string()),
                        m.max_entry_format.map_or("-".into(), |v| v.to_string()),
                    ));
                }
                out.trim_end().to_owned()
            });
        }
        Command::Members {
            action: MembersAction::Remove { member },
        } => {
            let links = Links::from_env()?;
            let (leader, view) = leader_view(&links, &cli.store).await?;
            let id = resolve(&view, member)?;
            let voters: Vec<u64> = view
                .members
                .iter()
                .filter(|m| m.voter && m.raft_id != id)
                .map(|m| m.raft_id)
                .collect();
            if !view.members.iter().any(|m| m.voter && m.raft_id == id) {
                bail!("{member} is not a voter (learners leave by themselves when their slot moves on)");
            }
            let reply = AdminClient::new(links.channel(&leader)?)
                .change_membership(ChangeMembershipRequest { voters, retain: false })
                .await
                .context("change membership")?
                .into_inner();
            let log_id: serde_json::Value = serde_json::from_slice(&reply.data).unwrap_or_default();
            print(cli.json, &log_id, || {
                format!("{member} removed (membership entry {log_id})")
            });
        }
        Command::Leader {
            action: LeaderAction::Transfer { to },
        } => {
            let links = Links::from_env()?;
            let (leader, view) = leader_view(&links, &cli.store).await?;
            let to = to.as_deref().map(|t| resolve(&view, t)).transpose()?.unwrap_or(0);
            if to == view.raft_id {
                print(cli.json, &serde_json::json!({ "leader": to }), || {
                    format!("{} already leads", view.node_name)
                });
                return Ok(());
            }
            let reply = AdminClient::new(links.channel(&leader)?)
                .transfer_leader(TransferLeaderRequest { to })
                .await
                .context("leader transfer")?
                .into_inner();
            let done: crate::node::Transferred = serde_json::from_slice(&reply.data).context("the leader's answer")?;
            let name = |id: Option<u64>| {
                id.and_then(|id| view.members.iter().find(|m| m.raft_id == id))
                    .map_or("?".to_owned(), |m| m.node_name.clone())
            };
            print(cli.json, &done, || {
                format!(
                    "leadership handed from {} to {} (writes paused {} ms)",
                    view.node_name,
                    name(done.leader),
                    done.paused_ms
                )
            });
        }
        Command::Backup { out, from } => {
            let links = Links::from_env()?;
            let source = match from {
                Some(addr) => addr.clone(),
                None => pick_follower(&links, &cli.store).await?,
            };
            let header = take_backup(&links, &source, out).await?;
            print(cli.json, &header, || {
                format!("{}\nwritten to {}", describe(&header), out.display())
            });
        }
    }
    Ok(())
}

fn print<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        println!("{}", text());
    }
}

fn describe(h: &BackupHeader) -> String {
    format!(
        "backup of cluster {} at revision {}, taken {} ms after the epoch on {}: {} bytes, schema {}, entry format {}",
        h.cluster_id.as_deref().unwrap_or("(no id)"),
        h.revision,
        h.taken_at_ms,
        h.node,
        h.bytes,
        h.schema_version,
        h.entry_format
    )
}

/// How this tool links to stores.
struct Links {
    secret: agenda_shared::auth::ClusterSecret,
    tls: ClusterTls,
    name: String,
}

impl Links {
    fn from_env() -> anyhow::Result<Self> {
        let env: EnvConfig = agenda_shared::config::load().map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        let secret = env.cluster_secret().context("cluster secret")?;
        let tls = env.cluster_tls().context("cluster links")?;
        let name = if env.node_id.is_empty() {
            "agenda-admin".to_owned()
        } else {
            format!("{}-admin", env.node_id)
        };
        Ok(Self { secret, tls, name })
    }

    fn channel(&self, addr: &str) -> anyhow::Result<SignedChannel> {
        let channel = lazy_channel(addr, &self.tls, Role::Store, Duration::from_secs(3))
            .with_context(|| format!("link to {addr}"))?;
        Ok(signed(
            channel,
            RpcAuth::new(self.secret.clone(), self.name.clone()),
            &Receiver::addr(addr),
        ))
    }

    /// The member table of the agent at `addr`.
    async fn members(&self, addr: &str) -> anyhow::Result<Vec<SlotRow>> {
        let auth = RpcAuth::new(self.secret.clone(), self.name.clone());
        let mut client = agenda_shared::rpc::agent::connect(addr, auth, &self.tls)
            .with_context(|| format!("link to the agent {addr}"))?;
        let reply = tokio::time::timeout(
            Duration::from_secs(5),
            client.members(agenda_shared::discovery_proto::MembersRequest {}),
        )
        .await
        .with_context(|| format!("the agent {addr} did not answer in time"))?
        .with_context(|| format!("members of {addr}"))?
        .into_inner();
        Ok(agenda_shared::rpc::agent::members_of(reply)
            .into_iter()
            .map(|m| SlotRow {
                slot: m.node_id,
                agent: m.state.to_string(),
                api_ready: m.api_ready,
                store_raft_id: m.store_raft_id,
                store_alarms: m.store_alarms,
            })
            .collect())
    }

    async fn status(&self, addr: &str) -> anyhow::Result<StoreStatus> {
        let mut client = StoreClient::new(self.channel(addr)?);
        tokio::time::timeout(Duration::from_secs(5), client.status())
            .await
            .with_context(|| format!("{addr} did not answer in time"))?
            .with_context(|| format!("status of {addr}"))
    }
}

/// What `status` prints.
#[derive(Debug, Serialize)]
struct StatusReport {
    /// Every store of the membership, as it answered.
    stores: Vec<StatusRow>,
    /// Every slot of the agent's member table (empty without --discovery).
    slots: Vec<SlotRow>,
    /// Why the agent could not be asked.
    discovery_error: Option<String>,
}

/// One store in `status`.
#[derive(Debug, Serialize)]
struct StatusRow {
    addr: String,
    /// Its slot, as the membership names it.
    slot: Option<String>,
    status: Option<StoreStatus>,
    error: Option<String>,
    lag: Option<u64>,
}

/// One slot of the member table in `status`.
#[derive(Debug, Serialize)]
struct SlotRow {
    slot: String,
    /// The slot's agent: alive, suspect, dead or left.
    agent: String,
    /// The slot's API reported itself ready.
    api_ready: bool,
    store_raft_id: Option<u64>,
    /// The store's alarms as its agent last heard them.
    store_alarms: Vec<String>,
}

async fn cluster_statuses(links: &Links, start: &str) -> anyhow::Result<Vec<StatusRow>> {
    let first = links.status(start).await?;
    let mut addrs: Vec<String> = first.members.iter().map(|m| m.addr.clone()).collect();
    if addrs.is_empty() {
        addrs.push(start.to_owned());
    }
    let slot_of = |addr: &str| {
        first
            .members
            .iter()
            .find(|m| m.addr == addr)
            .map(|m| m.node_name.clone())
            .or_else(|| (addr == start).then(|| first.node_name.clone()))
    };
    let answers = futures::future::join_all(addrs.iter().map(|a| links.status(a))).await;
    let top = answers
        .iter()
        .filter_map(|a| a.as_ref().ok().and_then(|s| s.applied_index))
        .max();
    let mut rows: Vec<StatusRow> = addrs
        .into_iter()
        .zip(answers)
        .map(|(addr, answer)| match answer {
            Ok(s) => StatusRow {
                slot: Some(s.node_name.clone()),
                addr,
                lag: top.map(|t| t.saturating_sub(s.applied_index.unwrap_or(0))),
                status: Some(s),
                error: None,
            },
            Err(e) => StatusRow {
                slot: slot_of(&addr),
                addr,
                status: None,
                error: Some(format!("{e:#}")),
                lag: None,
            },
        })
        .collect();
    rows.sort_by_key(|r| {
        let slot = r.slot.as_deref().and_then(agenda_shared::rpc::member::parse_slot);
        (slot.is_none(), slot, r.addr.clone())
    });
    Ok(rows)
}

fn status_table(report: &StatusReport) -> String {
    let sidecars = !report.slots.is_empty();
    let slot_row = |name: Option<&str>| name.and_then(|n| report.slots.iter().find(|s| s.slot == n));
    let mut out = format!(
        "{:<12} {:<24} {:<10} {:>6} {:>9} {:>6} {:>7}",
        "SLOT", "ADDRESS", "ROLE", "TERM", "APPLIED", "LAG", "FORMAT"
    );
    if sidecars {
        out.push_str(&format!("  {:<8} {:<6}", "AGENT", "API"));
    }
    out.push_str("  NOTE\n");
    let sidecar_cells = |slot: Option<&SlotRow>| match slot {
        Some(s) => format!("  {:<8} {:<6}", s.agent, if s.api_ready { "ready" } else { "no" }),
        None => format!("  {:<8} {:<6}", "-", "-"),
    };
    for r in &report.stores {
        let slot = r.slot.as_deref();
        match &r.status {
            Some(s) => out.push_str(&format!(
                "{:<12} {:<24} {:<10} {:>6} {:>9} {:>6} {:>7}",
                s.node_name,
                r.addr,
                s.role,
                s.term,
                s.applied_index.unwrap_or(0),
                r.lag.unwrap_or(0),
                format!("{}/{}", s.applied_entry_format, s.max_entry_format),
            )),
            None => out.push_str(&format!(
                "{:<12} {:<24} {:<10} {:>6} {:>9} {:>6} {:>7}",
                slot.unwrap_or("?"),
                r.addr,
                "down",
                "-",
                "-",
                "-",
                "-",
            )),
        }
        if sidecars {
            out.push_str(&sidecar_cells(slot_row(slot)));
        }
        let note = match &r.status {
            Some(s) => s.halted.as_deref().or(s.alarm.as_deref()).unwrap_or("").to_owned(),
            None => r.error.clone().unwrap_or_default(),
        };
        out.push_str(&format!("  {note}\n"));
    }
    // Slots the agent knows whose store is not in the membership (a slot down before it
    // joined, or one that left).
    for s in &report.slots {
        if report.stores.iter().any(|r| r.slot.as_deref() == Some(s.slot.as_str())) {
            continue;
        }
        out.push_str(&format!(
            "{:<12} {:<24} {:<10} {:>6} {:>9} {:>6} {:>7}{}  not a member{}\n",
            s.slot,
            "-",
            "-",
            "-",
            "-",
            "-",
            "-",
            sidecar_cells(Some(s)),
            if s.store_alarms.is_empty() {
                String::new()
            } else {
                format!("; alarms {}", s.store_alarms.join(","))
            }
        ));
    }
    if let Some(e) = &report.discovery_error {
        out.push_str(&format!("(no sidecar health: {e})\n"));
    }
    out.trim_end().to_owned()
}

/// The leader's address and its view of the cluster.
async fn leader_view(links: &Links, start: &str) -> anyhow::Result<(String, StoreStatus)> {
    let rows = cluster_statuses(links, start).await?;
    rows.into_iter()
        .find_map(|r| r.status.filter(|s| s.role == "leader").map(|s| (r.addr, s)))
        .context("no leader answered")
}

/// A member named by slot or Raft id.
fn resolve(view: &StoreStatus, member: &str) -> anyhow::Result<u64> {
    view.members
        .iter()
        .find(|m| m.node_name == member || m.raft_id.to_string() == member)
        .map(|m| m.raft_id)
        .with_context(|| format!("{member} is not a member of the cluster"))
}

/// A healthy follower to copy from (the leader if there is none).
async fn pick_follower(links: &Links, start: &str) -> anyhow::Result<String> {
    let rows = cluster_statuses(links, start).await?;
    let healthy = |role: &str| {
        rows.iter()
            .find(|r| r.status.as_ref().is_some_and(|s| s.role == role && s.halted.is_none()))
    };
    healthy("follower")
        .or_else(|| healthy("leader"))
        .map(|r| r.addr.clone())
        .context("no store can take a backup (none answered, or all halted)")
}

/// Stream a backup from the store at `addr` into `out`.
async fn take_backup(links: &Links, addr: &str, out: &std::path::Path) -> anyhow::Result<BackupHeader> {
    download(AdminClient::new(links.channel(addr)?), out)
        .await
        .with_context(|| format!("backup from {addr}"))
}

/// Stream a backup from the store `client` talks to into `out`, and verify the file.
pub async fn download(mut client: AdminClient<SignedChannel>, out: &std::path::Path) -> anyhow::Result<BackupHeader> {
    let mut stream = client.backup(BackupRequest { linearizable: true }).await?.into_inner();
    let mut writer: Option<BackupWriter> = None;
    while let Some(chunk) = stream.message().await.context("backup stream")? {
        match chunk.part {
            Some(backup_chunk::Part::Header(h)) => {
                let header: BackupHeader = serde_json::from_slice(&h).context("backup header")?;
                writer = Some(BackupWriter::create(out, header)?);
            }
            Some(backup_chunk::Part::Data(d)) => {
                writer.as_mut().context("data before the header")?.data(&d)?;
            }
            Some(backup_chunk::Part::Sha256(sum)) => {
                let w = writer.take().context("checksum before the header")?;
                let header = w.finish(&sum)?;
                // Read it back whole before saying it is good.
                backup::verify(out).context("the written backup does not verify")?;
                return Ok(header);
            }
            None => {}
        }
    }
    bail!("the backup stream ended before its checksum")
}
