//! ZooKeeper mode: what the node brings to the group it joins, its capacity (configured, or
//! its backend measured now) and a reader of the shares topic's partitions for the leader.

use crate::backend::Backend;
use crate::balance::{NodeBalance, PartitionSource};
use crate::config::{Config, KafkaConfig};
use crate::kafka::{partitions_of, reader_config, ReaderContext};
use crate::metrics::Metrics;
use rdkafka::consumer::BaseConsumer;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Joins the group of `cfg.balance`. The capacity is `balance.capacity`, or else `backend`'s
/// shares/s measured now at the configured batch size. The group's status goes to the
/// `sharecheck_zookeeper_*` gauges every second while the node runs.
pub(super) async fn join(
    cfg: &Config,
    backend: &dyn Backend,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<NodeBalance> {
    let capacity = match cfg.balance.capacity {
        Some(c) => c,
        None => measure(cfg, backend)?,
    };
    let partitions = partition_source(&cfg.kafka)?;
    let b = crate::balance::join(&cfg.balance, vec![backend.name()], capacity, partitions).await?;
    let (status, m) = (Arc::downgrade(&b.status), metrics.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        // Ends with the group: the node drops its NodeBalance when it leaves.
        while let Some(s) = status.upgrade() {
            m.zookeeper_connected
                .set(s.connected.load(Ordering::Relaxed) as i64);
            m.zookeeper_leader
                .set(s.leader.load(Ordering::Relaxed) as i64);
            m.zookeeper_members
                .set(s.members.load(Ordering::Relaxed) as i64);
            drop(s);
            tick.tick().await;
        }
    });
    Ok(b)
}

/// `backend`'s shares/s, for one second at the configured batch size (at most 65536).
fn measure(cfg: &Config, backend: &dyn Backend) -> anyhow::Result<f64> {
    let batch = cfg.backend.batch.max_shares.min(1 << 16);
    let r = tokio::task::block_in_place(|| {
        crate::backend::select::measure(backend, batch, Duration::from_secs(1))
    })
    .map_err(|e| {
        anyhow::anyhow!("cannot measure the backend's capacity ({e:#}); set balance.capacity")
    })?;
    tracing::info!(
        capacity = r.round(),
        "measured capacity (shares/s); balance.capacity overrides it"
    );
    Ok(r)
}

/// The partitions of the shares topic, through a metadata client of their own.
fn partition_source(k: &KafkaConfig) -> anyhow::Result<PartitionSource> {
    let meta: BaseConsumer<ReaderContext> = reader_config(k, "sharecheck-balance")
        .create_with_context(ReaderContext)
        .map_err(|e| anyhow::anyhow!("cannot create the Kafka metadata client: {e}"))?;
    let meta = Arc::new(meta);
    let topic = k.topics.shares.clone();
    Ok(Arc::new(move || {
        partitions_of(&meta, &topic, Duration::from_secs(10))
    }))
}
