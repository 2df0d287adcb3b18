//! The consumer group's progress as `sharecheck cluster status` shows it beside the ZooKeeper
//! view: each partition's committed offset and end.

use crate::balance::PartitionOffsets;
use crate::config::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::time::Duration;

/// Committed offset (None if none) and high watermark per partition of the shares topic, for
/// the consumer group `kafka.group_id`. A watermark the broker cannot give now (a partition
/// whose leader is moving) is None rather than an error: the rest of the status still helps.
pub fn offsets(k: &KafkaConfig) -> anyhow::Result<Vec<PartitionOffsets>> {
    let c: BaseConsumer = super::reader_config(k, "sharecheck-status")
        .set("group.id", &k.group_id)
        .create()
        .map_err(super::access::creation_error)?;
    let parts = super::partitions_of(&c, &k.topics.shares, Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition(&k.topics.shares, *p);
    }
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .map_err(|e| anyhow::anyhow!("cannot read the committed offsets of {}: {e}", k.group_id))?;
    let mut out = Vec::new();
    for e in committed.elements() {
        let mut high = None;
        for attempt in 0..5 {
            match c.fetch_watermarks(&k.topics.shares, e.partition(), Duration::from_secs(10)) {
                Ok((_, h)) => {
                    high = Some(h);
                    break;
                }
                Err(x) if attempt == 4 => {
                    tracing::warn!("cannot read the end of partition {}: {x}", e.partition())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        let off = match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        };
        out.push((e.partition(), off, high));
    }
    out.sort_unstable();
    Ok(out)
}
