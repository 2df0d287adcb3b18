//! `sharecheck blocks`, the block submitter: every block candidate on the blocks topic is
//! rebuilt into its block (the share's header, its coinbase from the job's template and the
//! share's extranonce, the template's transactions) and submitted to the Bitcoin node, to
//! each configured node in turn until one takes it. A block message's offset is committed
//! only once a node answered (accepted, duplicate or rejected): a crash or a node outage
//! delays a block, never loses it, and submitting a block twice is harmless (the second
//! answer is `duplicate`).

use super::rpc::Rpc;
use super::template::{rebuild_block, sha256d, StoredTemplate};
use crate::config::{Config, KafkaConfig};
use crate::kafka::{reader_config, ReaderContext, H_SHARE_RECORD};
use crate::model::share::ShareData;
use crate::wire::binary::{decode_verdicts, ShareRecord};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Templates kept for rebuilding blocks: the newest ones (a block share names a recent job).
const MAX_TEMPLATES: usize = 10_000;

/// What the submitter did, reported when it stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BlocksSummary {
    pub accepted: u64,
    pub duplicate: u64,
    pub rejected: u64,
    /// Block messages that cannot become a block (no template for the job, a header share,
    /// a header that does not commit to the job's transactions).
    pub unbuildable: u64,
}

/// What became of one block message.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Duplicate,
    Rejected(String),
    Unbuildable(String),
    /// Shutdown came first: the offset is not committed.
    Stopped,
}

/// The templates topic, read from the beginning: the template of each job, by job id.
struct Templates {
    reader: BaseConsumer<ReaderContext>,
    topic: String,
    by_job: HashMap<String, StoredTemplate>,
    order: VecDeque<String>,
}

impl Templates {
    fn open(k: &KafkaConfig) -> anyhow::Result<Templates> {
        let mut c = reader_config(k, "sharecheck-blocks-templates");
        c.set("receive.message.max.bytes", "100000000");
        let reader: BaseConsumer<ReaderContext> = c
            .create_with_context(ReaderContext)
            .map_err(|e| anyhow::anyhow!("cannot create the templates reader: {e}"))?;
        let topic = &k.topics.templates;
        let parts = crate::kafka::partitions_of(&reader, topic, Duration::from_secs(30))?;
        let mut tpl = TopicPartitionList::new();
        for p in parts {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        reader.assign(&tpl)?;
        Ok(Templates {
            reader,
            topic: topic.clone(),
            by_job: HashMap::new(),
            order: VecDeque::new(),
        })
    }

    /// Reads what is there now; with `until_end`, until the end of every partition as it is
    /// now (so that the template of any job published before is in), at most `limit`.
    fn read(&mut self, until_end: bool, limit: Duration) {
        let deadline = Instant::now() + limit;
        let ends = until_end.then(|| self.ends()).flatten().unwrap_or_default();
        loop {
            let reached = ends.iter().all(|(p, end)| self.position(*p) >= *end);
            if (until_end && reached) || Instant::now() >= deadline {
                return;
            }
            match self.reader.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => Self::take(&mut self.by_job, &mut self.order, &m),
                Some(Err(KafkaError::PartitionEOF(_))) if !until_end => return,
                None if !until_end => return,
                _ => {}
            }
        }
    }

    fn ends(&self) -> Option<Vec<(i32, i64)>> {
        let parts: Vec<i32> = self
            .reader
            .assignment()
            .ok()?
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        crate::kafka::end_offsets(&self.reader, &self.topic, &parts, Duration::from_secs(5)).ok()
    }

    fn position(&self, partition: i32) -> i64 {
        self.reader
            .position()
            .ok()
            .and_then(|p| {
                p.elements_for_topic(&self.topic)
                    .iter()
                    .find(|e| e.partition() == partition)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
            })
            .unwrap_or(0)
    }

    fn take(
        by_job: &mut HashMap<String, StoredTemplate>,
        order: &mut VecDeque<String>,
        m: &BorrowedMessage<'_>,
    ) {
        let Some(t) = m
            .payload()
            .and_then(|p| serde_json::from_slice::<StoredTemplate>(p).ok())
        else {
            tracing::warn!(
                offset = m.offset(),
                "a templates message that is not a template; skipped"
            );
            return;
        };
        let id = t.job_id.clone();
        if by_job.insert(id.clone(), t).is_none() {
            order.push_back(id);
        }
        while order.len() > MAX_TEMPLATES {
            if let Some(old) = order.pop_front() {
                by_job.remove(&old);
            }
        }
    }

    /// The template of `job_id`, reading the topic to its end first if it is not in yet.
    fn get(&mut self, job_id: &str) -> Option<&StoredTemplate> {
        if !self.by_job.contains_key(job_id) {
            self.read(true, Duration::from_secs(30));
        }
        self.by_job.get(job_id)
    }
}

/// Runs the submitter until `stop`.
pub fn run(cfg: &Config, rpc: &Rpc, stop: &AtomicBool) -> anyhow::Result<BlocksSummary> {
    let k = &cfg.kafka;
    let mut templates = Templates::open(k)?;
    let mut c = reader_config(k, "sharecheck-blocks");
    c.set("group.id", format!("{}.blocks", k.group_id))
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer<ReaderContext> = c
        .create_with_context(ReaderContext)
        .map_err(|e| anyhow::anyhow!("cannot create the blocks consumer: {e}"))?;
    consumer
        .subscribe(&[&k.topics.blocks])
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", k.topics.blocks))?;
    tracing::info!(blocks = %k.topics.blocks, nodes = rpc.endpoints(), "block submitter started");
    let mut summary = BlocksSummary::default();
    while !stop.load(Ordering::Relaxed) {
        templates.read(false, Duration::from_millis(20));
        let Some(r) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = match r {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("blocks consumer: {e}");
                continue;
            }
        };
        let outcome = handle(&m, &mut templates, rpc, stop);
        match &outcome {
            Outcome::Accepted => summary.accepted += 1,
            Outcome::Duplicate => summary.duplicate += 1,
            Outcome::Rejected(_) => summary.rejected += 1,
            Outcome::Unbuildable(_) => summary.unbuildable += 1,
            Outcome::Stopped => break,
        }
        commit(&consumer, &m, stop);
    }
    Ok(summary)
}

/// Commits the message's offset, retrying until the broker takes it (a block already
/// answered for would otherwise be submitted again after a restart: harmless, but noisy).
fn commit(consumer: &BaseConsumer<ReaderContext>, m: &BorrowedMessage<'_>, stop: &AtomicBool) {
    while let Err(e) = consumer.commit_message(m, CommitMode::Sync) {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        tracing::warn!("cannot commit the block message's offset ({e}); retrying");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A block message into its block and to the node.
fn handle(
    m: &BorrowedMessage<'_>,
    templates: &mut Templates,
    rpc: &Rpc,
    stop: &AtomicBool,
) -> Outcome {
    let (p, o) = (m.partition(), m.offset());
    let built = build(m, templates);
    let (hash, block) = match built {
        Ok(x) => x,
        Err(why) => {
            tracing::error!(
                partition = p,
                offset = o,
                "block candidate not submitted: {why}"
            );
            return Outcome::Unbuildable(why);
        }
    };
    let outcome = submit(rpc, &hex(&block), stop);
    match &outcome {
        Outcome::Accepted => tracing::info!(%hash, offset = o, "block accepted"),
        Outcome::Duplicate => tracing::info!(%hash, offset = o, "block already known to the node"),
        Outcome::Rejected(why) => tracing::warn!(%hash, offset = o, "block rejected: {why}"),
        _ => {}
    }
    outcome
}

/// The block of a block message, with its hash (display order).
fn build(m: &BorrowedMessage<'_>, templates: &mut Templates) -> Result<(String, Vec<u8>), String> {
    let verdicts = decode_verdicts(m.payload().unwrap_or(&[]))
        .map_err(|e| format!("not a block message: {e}"))?;
    let header = verdicts
        .first()
        .and_then(|v| v.header.as_deref().copied())
        .ok_or("the block message has no header")?;
    let raw = m
        .headers()
        .and_then(|h| h.iter().find(|x| x.key == H_SHARE_RECORD))
        .and_then(|x| x.value)
        .filter(|v| v.len() == std::mem::size_of::<ShareRecord>())
        .ok_or("the block message has no share record")?;
    let rec: ShareRecord = bytemuck::pod_read_unaligned(raw);
    let view = rec
        .check()
        .map_err(|e| format!("its share record: {e:?}"))?;
    let ShareData::Stratum {
        job_id,
        extranonce1,
        extranonce2,
        ..
    } = view.data
    else {
        return Err("a header share: its coinbase and transactions are not known".into());
    };
    let t = templates
        .get(job_id)
        .ok_or_else(|| format!("no template for job {job_id:?} on the templates topic"))?;
    let extranonce = [extranonce1, extranonce2].concat();
    let block = rebuild_block(&header, &extranonce, t).map_err(|e| e.to_string())?;
    let mut h = sha256d(&header);
    h.reverse();
    Ok((hex(&h), block))
}

/// submitblock on each node in turn until one takes it; while no node answers at all,
/// again every second, until `stop`.
fn submit(rpc: &Rpc, block_hex: &str, stop: &AtomicBool) -> Outcome {
    let mut warned = false;
    loop {
        let mut rejected = None;
        for i in 0..rpc.endpoints() {
            match rpc.submit_block_at(i, block_hex) {
                Ok(None) => return Outcome::Accepted,
                Ok(Some(r)) if r.contains("duplicate") => return Outcome::Duplicate,
                Ok(Some(r)) => rejected = Some(format!("{}: {r}", rpc.url(i))),
                Err(e) => {
                    if !warned {
                        tracing::warn!(
                            "cannot submit to {} ({e}); trying the next node",
                            rpc.url(i)
                        );
                    }
                }
            }
        }
        if let Some(r) = rejected {
            return Outcome::Rejected(r);
        }
        if !warned {
            tracing::warn!("no Bitcoin node answered; the block is submitted once one does");
            warned = true;
        }
        if stop.load(Ordering::Relaxed) {
            return Outcome::Stopped;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn hex(b: &[u8]) -> String {
    crate::wire::hex::encode(b)
}
