//! `sharecheck receive`: verdict batches from a topic to JSON Lines, the same lines `verify`
//! prints. Reads every partition from the beginning, outside any consumer group (nothing is
//! committed, so it can be run again and again).

use super::{
    header_str, partitions_of, reader_config, ReaderContext, H_SOURCE_OFFSET, H_SOURCE_PARTITION,
};
use crate::config::KafkaConfig;
use crate::wire::binary::decode_verdicts;
use crate::wire::jsonl::verdict_json;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::io::Write;
use std::time::{Duration, Instant};

pub struct ReceiveOptions {
    pub topic: String,
    /// Stop after this many verdicts.
    pub count: Option<u64>,
    /// Stop after this long in total.
    pub timeout: Option<Duration>,
    /// Add the source partition and offset to every line (`"src":"P:O"`).
    pub with_source: bool,
    /// Print progress on stderr every this often (the lines go to stdout).
    pub progress: Duration,
}

#[derive(Debug, Default)]
pub struct ReceiveSummary {
    pub verdicts: u64,
    pub messages: u64,
    pub undecodable: u64,
}

pub fn run(
    k: &KafkaConfig,
    opts: &ReceiveOptions,
    out: &mut dyn Write,
) -> anyhow::Result<ReceiveSummary> {
    let start = Instant::now();
    let deadline = opts.timeout.map(|t| start + t);
    let mut cc = reader_config(k, "sharecheck-receive");
    cc.set("enable.partition.eof", "false");
    let consumer: BaseConsumer<ReaderContext> = cc
        .create_with_context(ReaderContext)
        .map_err(|e| anyhow::anyhow!("cannot create a Kafka consumer: {e}"))?;
    let wait = opts.timeout.unwrap_or(Duration::from_secs(30));
    let parts = partitions_of(&consumer, &opts.topic, wait)?;
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition_offset(&opts.topic, *p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut sum = ReceiveSummary::default();
    let mut last_progress = Instant::now();
    loop {
        if opts.count.is_some_and(|c| sum.verdicts >= c) {
            break;
        }
        if last_progress.elapsed() >= opts.progress {
            last_progress = Instant::now();
            let of = opts.count.map(|c| format!(" of {c}")).unwrap_or_default();
            eprintln!(
                "sharecheck: received {}{of} verdicts in {} messages ({:.0} verdicts/s)",
                sum.verdicts,
                sum.messages,
                sum.verdicts as f64 / start.elapsed().as_secs_f64()
            );
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = match m {
            Ok(m) => m,
            Err(KafkaError::PartitionEOF(_)) => continue,
            Err(e) => {
                tracing::warn!("kafka: {e}");
                continue;
            }
        };
        sum.messages += 1;
        let verdicts = match decode_verdicts(m.payload().unwrap_or(&[])) {
            Ok(v) => v,
            Err(e) => {
                sum.undecodable += 1;
                eprintln!(
                    "sharecheck: {} partition {} offset {}: not a verdict batch: {e}",
                    m.topic(),
                    m.partition(),
                    m.offset()
                );
                continue;
            }
        };
        let src = if opts.with_source {
            let h = m.headers();
            let p = h.and_then(|h| header_str(h, H_SOURCE_PARTITION));
            let o = h.and_then(|h| header_str(h, H_SOURCE_OFFSET));
            Some(format!(
                "{}:{}",
                p.unwrap_or_default(),
                o.unwrap_or_default()
            ))
        } else {
            None
        };
        for v in &verdicts {
            let line = verdict_json(v);
            match &src {
                // Same object with one more field, appended before the closing brace.
                Some(s) => writeln!(out, "{},\"src\":\"{s}\"}}", &line[..line.len() - 1])?,
                None => writeln!(out, "{line}")?,
            }
        }
        sum.verdicts += verdicts.len() as u64;
    }
    out.flush()?;
    Ok(sum)
}
