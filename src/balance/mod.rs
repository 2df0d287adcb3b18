//! ZooKeeper balancing (`balance.mode = "zookeeper"`): the validator nodes of a group share
//! the partitions of the shares topic by capacity, and a partition is never validated by two
//! nodes at once.
//!
//! ```text
//! /sharecheck/<group>/members/<node-id>    ephemeral, JSON Member {host, node_id, backends, capacity}
//! /sharecheck/<group>/election/n_<seq>     ephemeral sequential; the lowest is the leader
//! /sharecheck/<group>/assignment           JSON Assignment {generation, owners, ...}, by the leader
//! /sharecheck/<group>/owners/<partition>   ephemeral, data = node id: who validates it now
//! ```
//!
//! - [`assign`]: the pure capacity-weighted sticky assignment.
//! - [`zk`]: the coordinator a node runs: membership, election, the leader's assignment, and
//!   ownership fencing; it tells the node which partitions to start and stop ([`Command`]).
//! - [`auth`]: the credentials and the ACLs of the znodes.
//! - [`tls`]: TLS to ZooKeeper (`balance.zookeeper_tls`).
//! - [`status`]: what `sharecheck cluster status` reports.

pub mod assign;
#[cfg(feature = "zookeeper")]
pub mod auth;
#[cfg(feature = "zookeeper")]
pub mod status;
#[cfg(feature = "zookeeper")]
pub mod tls;
#[cfg(feature = "zookeeper")]
pub mod zk;

use crate::config::{valid_name, BalanceConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tokio::sync::oneshot;

/// The znode every group lives under.
pub const PARENT: &str = "/sharecheck";

/// The data of a member znode.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub host: String,
    pub node_id: String,
    /// The backend(s) this node validates with, e.g. `["cpu:sha-ni"]`.
    pub backends: Vec<String>,
    /// Shares/s: configured, or measured at start.
    pub capacity: f64,
}

/// The data of the assignment znode, written by the leader.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Assignment {
    /// Bumped on every change; nodes log it, `cluster status` shows it.
    pub generation: u64,
    /// Partitions of the shares topic when it was computed.
    pub partitions: usize,
    /// Partition → node id.
    pub owners: BTreeMap<i32, String>,
    /// Node id → capacity the assignment was computed with.
    pub capacities: BTreeMap<String, f64>,
    /// The leader that wrote it.
    pub leader: String,
}

impl Assignment {
    /// The partitions assigned to `node`, in order.
    pub fn of(&self, node: &str) -> Vec<i32> {
        self.owners
            .iter()
            .filter(|(_, o)| o.as_str() == node)
            .map(|(p, _)| *p)
            .collect()
    }
}

/// ZooKeeper paths of a group.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: String,
}

impl Paths {
    pub fn new(group: &str) -> Paths {
        Paths {
            root: format!("{PARENT}/{group}"),
        }
    }
    pub fn members(&self) -> String {
        format!("{}/members", self.root)
    }
    pub fn member(&self, id: &str) -> String {
        format!("{}/members/{id}", self.root)
    }
    pub fn election(&self) -> String {
        format!("{}/election", self.root)
    }
    pub fn assignment(&self) -> String {
        format!("{}/assignment", self.root)
    }
    pub fn owners(&self) -> String {
        format!("{}/owners", self.root)
    }
    pub fn owner(&self, partition: i32) -> String {
        format!("{}/owners/{partition}", self.root)
    }
}

/// This machine's host name (for the default node id and the member data).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success
    // (and a truncated name is still cut at the first NUL or the buffer end below).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let s = String::from_utf8_lossy(&buf[..end]).into_owned();
    if valid_name(&s) {
        s
    } else {
        "localhost".into()
    }
}

/// What the coordinator asks of the node's share consumer.
#[derive(Debug)]
pub enum Command {
    /// The owner znode is ours: start validating the partition from its committed offset,
    /// with fresh validator state.
    Start(i32),
    /// Stop fetching the partition, finish its in-flight batches, commit its offset, then
    /// answer; only then is the owner znode deleted.
    Release(i32, oneshot::Sender<()>),
    /// The ZooKeeper session is lost (or may be): stop every partition at once, without
    /// waiting for anything, before another node can own them.
    StopAll,
}

/// Where the partitions of the shares topic come from (a Kafka metadata request); called on
/// a blocking thread.
pub type PartitionSource = std::sync::Arc<dyn Fn() -> anyhow::Result<Vec<i32>> + Send + Sync>;

/// A partition of the shares topic with its committed and end offsets (None: unknown).
pub type PartitionOffsets = (i32, Option<i64>, Option<i64>);

/// A node's side of the balancing: the running coordinator and the commands it sends.
pub struct NodeBalance {
    #[cfg(feature = "zookeeper")]
    pub coordinator: zk::Coordinator,
    pub commands: tokio::sync::mpsc::UnboundedReceiver<Command>,
    /// What the coordinator knows of the group now, for the node's metrics.
    pub status: std::sync::Arc<GroupStatus>,
}

/// The coordinator's view of the group, kept up to date as it changes.
#[derive(Debug, Default)]
pub struct GroupStatus {
    /// The ZooKeeper session is connected.
    pub connected: std::sync::atomic::AtomicBool,
    /// This node leads the group (computes the assignment).
    pub leader: std::sync::atomic::AtomicBool,
    /// Members of the group as the leader last read them; 0 on the other nodes.
    pub members: std::sync::atomic::AtomicUsize,
}

impl NodeBalance {
    /// Leaves the group: no more commands are taken, and the coordinator's session ends
    /// (its owner znodes go, so other nodes may take the partitions).
    pub async fn close(self) {
        drop(self.commands);
        #[cfg(feature = "zookeeper")]
        self.coordinator.close().await;
    }
}

/// Joins the group of `b` (zookeeper mode) as a member validating with `backends` at
/// `capacity` shares/s. `partitions` reads the partitions of the shares topic, which the
/// leader spreads over the members.
#[cfg(not(feature = "zookeeper"))]
pub async fn join(
    _: &BalanceConfig,
    _: Vec<String>,
    _: f64,
    _: PartitionSource,
) -> anyhow::Result<NodeBalance> {
    anyhow::bail!(
        "balance.mode = \"zookeeper\" needs sharecheck built with its zookeeper feature \
         (this build has it off); use balance.mode = \"kafka\" or rebuild with it"
    )
}

/// Joins the group of `b` (zookeeper mode) as a member validating with `backends` at
/// `capacity` shares/s.
#[cfg(feature = "zookeeper")]
pub async fn join(
    b: &BalanceConfig,
    backends: Vec<String>,
    capacity: f64,
    partitions: PartitionSource,
) -> anyhow::Result<NodeBalance> {
    use std::time::Duration;
    let host = hostname();
    let member = Member {
        node_id: b.node_id.clone().unwrap_or_else(|| host.clone()),
        host,
        backends,
        capacity,
    };
    let (tx, commands) = tokio::sync::mpsc::unbounded_channel();
    let status = std::sync::Arc::new(GroupStatus::default());
    let coordinator = zk::Coordinator::start(
        zk::Options {
            connect: b.zookeeper.clone(),
            auth: auth::ZkAuth::from_config(b)?,
            group: b.group.clone(),
            session_timeout: Duration::from_millis(b.session_timeout_ms),
            member,
            partitions,
            poll: Duration::from_secs(5),
            status: status.clone(),
        },
        tx,
    )
    .await?;
    Ok(NodeBalance {
        coordinator,
        commands,
        status,
    })
}
