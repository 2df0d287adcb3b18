//! `sharecheck cluster status`: the group as ZooKeeper and Kafka see it.

use super::{Assignment, Member, Paths};
use crate::config::Config;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use zookeeper_client::Error as ZkError;

#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    #[serde(flatten)]
    pub member: Member,
    /// Partitions the assignment gives it.
    pub assigned: usize,
    /// Partitions whose owner znode it holds.
    pub owned: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionStatus {
    pub partition: i32,
    /// The node the assignment gives it to.
    pub assigned: Option<String>,
    /// The node holding its owner znode (validating it now).
    pub owner: Option<String>,
    /// The group's committed offset (None: nothing committed yet).
    pub committed: Option<i64>,
    /// The high watermark (next offset to be written); None when the broker did not say.
    pub end: Option<i64>,
    /// end − committed (everything, when nothing is committed).
    pub lag: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub group: String,
    pub zookeeper: String,
    pub leader: Option<String>,
    pub generation: Option<u64>,
    pub members: Vec<MemberStatus>,
    pub owners: BTreeMap<i32, String>,
    pub partitions: Vec<PartitionStatus>,
}

/// What ZooKeeper holds for the group.
pub struct ZkView {
    pub members: Vec<Member>,
    pub leader: Option<String>,
    pub assignment: Option<Assignment>,
    pub owners: BTreeMap<i32, String>,
}

use super::auth::hint;

/// Reads the group's znodes. A group nobody has joined yet reads as empty.
pub async fn read_zk(
    addr: &str,
    group: &str,
    timeout: Duration,
    auth: Option<&super::auth::ZkAuth>,
) -> anyhow::Result<ZkView> {
    let c = super::zk::connect(addr, timeout, auth).await?;
    let paths = Paths::new(group);
    let list = |path: String| {
        let c = c.clone();
        async move {
            match c.list_children(&path).await {
                Ok(k) => Ok(k),
                Err(ZkError::NoNode) => Ok(Vec::new()),
                Err(e) => Err(anyhow::anyhow!("cannot list {path}: {e}{}", hint(&e))),
            }
        }
    };
    let data = |path: String| {
        let c = c.clone();
        async move {
            match c.get_data(&path).await {
                Ok((d, _)) => Ok(Some(d)),
                Err(ZkError::NoNode) => Ok(None),
                Err(e) => Err(anyhow::anyhow!("cannot read {path}: {e}{}", hint(&e))),
            }
        }
    };
    let mut members = Vec::new();
    for id in list(paths.members()).await? {
        if let Some(d) = data(paths.member(&id)).await? {
            match serde_json::from_slice::<Member>(&d) {
                Ok(m) => members.push(m),
                Err(e) => members.push(Member {
                    host: format!("(unreadable member data: {e})"),
                    node_id: id,
                    backends: Vec::new(),
                    capacity: 0.0,
                }),
            }
        }
    }
    members.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    let mut election = list(paths.election()).await?;
    election.sort_by_key(|k| {
        k.rsplit('_')
            .next()
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(i64::MAX)
    });
    let mut leader = None;
    for e in &election {
        if let Some(d) = data(format!("{}/{e}", paths.election())).await? {
            leader = Some(String::from_utf8_lossy(&d).into_owned());
            break;
        }
    }
    let assignment = match data(paths.assignment()).await? {
        Some(d) => Some(serde_json::from_slice::<Assignment>(&d).map_err(|e| {
            anyhow::anyhow!("{} holds no valid assignment: {e}", paths.assignment())
        })?),
        None => None,
    };
    let mut owners = BTreeMap::new();
    for p in list(paths.owners()).await? {
        let Ok(n) = p.parse::<i32>() else { continue };
        if let Some(d) = data(paths.owner(n)).await? {
            owners.insert(n, String::from_utf8_lossy(&d).into_owned());
        }
    }
    Ok(ZkView {
        members,
        leader,
        assignment,
        owners,
    })
}

/// (partition, committed offset, high watermark).
pub use super::PartitionOffsets;

/// Puts the two views together.
pub fn combine(cfg: &Config, zk: ZkView, kafka: Vec<PartitionOffsets>) -> ClusterStatus {
    let assigned = zk
        .assignment
        .as_ref()
        .map(|a| a.owners.clone())
        .unwrap_or_default();
    let members = zk
        .members
        .into_iter()
        .map(|m| MemberStatus {
            assigned: assigned.values().filter(|o| **o == m.node_id).count(),
            owned: zk.owners.values().filter(|o| **o == m.node_id).count(),
            member: m,
        })
        .collect();
    let partitions = kafka
        .into_iter()
        .map(|(p, committed, end)| PartitionStatus {
            partition: p,
            assigned: assigned.get(&p).cloned(),
            owner: zk.owners.get(&p).cloned(),
            committed,
            end,
            lag: end.map(|e| e - committed.unwrap_or(0).min(e)),
        })
        .collect();
    ClusterStatus {
        group: cfg.balance.group.clone(),
        zookeeper: cfg.balance.zookeeper.clone(),
        leader: zk.leader,
        generation: zk.assignment.as_ref().map(|a| a.generation),
        members,
        owners: zk.owners,
        partitions,
    }
}

fn opt(v: Option<i64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

/// The human-readable form.
pub fn render(s: &ClusterStatus) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "group {} at {}; leader {}; assignment generation {}",
        s.group,
        s.zookeeper,
        s.leader.as_deref().unwrap_or("(none)"),
        s.generation
            .map(|g| g.to_string())
            .unwrap_or_else(|| "(none)".into())
    );
    let _ = writeln!(
        o,
        "\n{:<20} {:<20} {:>14} {:>8} {:>6}  backends",
        "member", "host", "capacity", "assigned", "owned"
    );
    for m in &s.members {
        let _ = writeln!(
            o,
            "{:<20} {:<20} {:>14.0} {:>8} {:>6}  {}",
            m.member.node_id,
            m.member.host,
            m.member.capacity,
            m.assigned,
            m.owned,
            m.member.backends.join(",")
        );
    }
    let _ = writeln!(
        o,
        "\n{:>9} {:<20} {:<20} {:>12} {:>12} {:>10}",
        "partition", "assigned", "owner", "committed", "end", "lag"
    );
    for p in &s.partitions {
        let _ = writeln!(
            o,
            "{:>9} {:<20} {:<20} {:>12} {:>12} {:>10}",
            p.partition,
            p.assigned.as_deref().unwrap_or("-"),
            p.owner.as_deref().unwrap_or("-"),
            p.committed
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            opt(p.end),
            opt(p.lag)
        );
    }
    o
}
