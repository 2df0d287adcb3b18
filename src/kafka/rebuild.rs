//! Duplicate sets of a gained share partition, rebuilt before it is validated.
//!
//! A node that gains a partition (at start, after a restart, or when the group moves it)
//! validates it from the committed offset. The shares before that offset were validated by
//! an earlier owner whose duplicate sets are gone; a copy of one of them sent again would be
//! accepted. So before validating, a reader of its own replays the partition from the first
//! message stamped at or after `now − validation.job_ttl_s` (older shares belong to expired
//! jobs, whose copies are stale anyway) up to the first offset to validate, and records each
//! share as seen in the partition's validator ([`Validator::record_seen_at`]): no verdicts,
//! no hashing, the same checks 1–6 that decide what a validated share leaves in the sets.

use super::{now_ms, reader_config, ReaderContext};
use crate::config::KafkaConfig;
use crate::model::Validator;
use crate::wire::binary::decode_shares;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a replay may make no progress (broker away) before the partition is validated
/// with what was rebuilt so far.
const STALL_LIMIT: Duration = Duration::from_secs(30);

/// What one replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rebuilt {
    /// Offsets replayed: `from..until`.
    pub from: i64,
    pub until: i64,
    /// Share records read, and those recorded in a duplicate set.
    pub shares: u64,
    pub recorded: u64,
    /// False when the replay stopped early (broker away, shutdown).
    pub complete: bool,
}

/// The replay reader of one node, created on first use and reused for every gained
/// partition.
pub struct Rebuilder {
    kafka: KafkaConfig,
    topic: String,
    ttl_ms: i64,
    consumer: Option<BaseConsumer<ReaderContext>>,
}

impl Rebuilder {
    pub fn new(kafka: &KafkaConfig, job_ttl_s: u64) -> Rebuilder {
        Rebuilder {
            kafka: kafka.clone(),
            topic: kafka.topics.shares.clone(),
            ttl_ms: (job_ttl_s as i64).saturating_mul(1000),
            consumer: None,
        }
    }

    fn consumer(&mut self) -> anyhow::Result<&BaseConsumer<ReaderContext>> {
        if self.consumer.is_none() {
            let mut cc = reader_config(&self.kafka, "sharecheck-dedup-rebuild");
            // The replay ends at a known offset: no long-polling at the end of it.
            cc.set("fetch.wait.max.ms", "20");
            let c = cc
                .create_with_context(ReaderContext)
                .map_err(|e| anyhow::anyhow!("cannot create the replay reader: {e}"))?;
            self.consumer = Some(c);
        }
        Ok(self.consumer.as_ref().expect("created above"))
    }

    /// Replays `partition` up to `until` (exclusive) into `v`, which already holds the jobs.
    pub fn rebuild(
        &mut self,
        v: &mut Validator,
        partition: i32,
        until: i64,
        abort: &AtomicBool,
    ) -> anyhow::Result<Rebuilt> {
        if until <= 0 {
            // The partition's first message: nothing was validated before it (and a round
            // trip for offsets_for_times per new partition would only delay its start).
            return Ok(Rebuilt {
                from: until,
                until,
                complete: true,
                ..Rebuilt::default()
            });
        }
        let topic = self.topic.clone();
        let since = now_ms().saturating_sub(self.ttl_ms);
        let c = self.consumer()?;
        let mut q = TopicPartitionList::new();
        q.add_partition_offset(&topic, partition, Offset::Offset(since))?;
        let from = c
            .offsets_for_times(q, Duration::from_secs(10))
            .map_err(|e| anyhow::anyhow!("offsets_for_times: {e}"))?
            .find_partition(&topic, partition)
            .map(|e| e.offset());
        let from = match from {
            Some(Offset::Offset(o)) => o,
            // No message stamped that late: nothing to replay.
            _ => until,
        };
        let mut r = Rebuilt {
            from,
            until,
            complete: true,
            ..Rebuilt::default()
        };
        if from >= until {
            return Ok(r);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, partition, Offset::Offset(from))?;
        c.assign(&tpl)?;
        let mut progress = Instant::now();
        let mut next = from;
        while next < until {
            if abort.load(Ordering::Relaxed) || progress.elapsed() > STALL_LIMIT {
                r.complete = false;
                break;
            }
            let m = match c.poll(Duration::from_millis(100)) {
                None => continue,
                Some(Ok(m)) => m,
                // Compaction or transaction markers can leave the last offsets empty.
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => {
                    tracing::debug!(partition, "replay: {e}");
                    continue;
                }
            };
            progress = Instant::now();
            next = m.offset() + 1;
            if m.offset() >= until {
                break;
            }
            // Undecodable messages went to the dead-letter topic; they hold no shares.
            let Ok(recs) = decode_shares(m.payload().unwrap_or(&[])) else {
                continue;
            };
            let ts = m.timestamp().to_millis().unwrap_or_else(now_ms);
            for rec in recs.iter() {
                r.shares += 1;
                if v.record_seen_at(rec, ts) {
                    r.recorded += 1;
                }
            }
        }
        let _ = c.unassign();
        Ok(r)
    }
}
