//! Kafka: the validator node ([`node`]), topic creation, and the `send` / `receive` tools that
//! drive it from JSON Lines files. All clients are librdkafka (rdkafka); options from the
//! config's `[kafka.consumer]` and `[kafka.producer]` tables pass through under their
//! librdkafka names.

pub mod access;
pub mod bench;
pub mod group;
pub mod node;
pub mod rebuild;
pub mod receive;
pub mod reply;
pub mod send;
pub mod txn;

use crate::config::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::types::RDKafkaErrorCode;
use std::time::{Duration, Instant};

/// Header names carried by verdict, block and dead-letter messages: where the share message
/// came from, so that a reader can drop the repeats that at-least-once delivery allows.
pub const H_SOURCE_TOPIC: &str = "source_topic";
pub const H_SOURCE_PARTITION: &str = "source_partition";
pub const H_SOURCE_OFFSET: &str = "source_offset";
/// Block messages: the share's 128-byte record, raw, so that the block can be rebuilt (its
/// coinbase is the job's with the share's extranonce).
pub const H_SHARE_RECORD: &str = "share_record";
/// Dead-letter messages: why the message could not be used.
pub const H_ERROR: &str = "error";
/// Dead-letter messages: the source message's payload size in bytes (larger than the
/// dead letter's payload when that was cut to fit).
pub const H_ORIGINAL_SIZE: &str = "original_size";
/// Dead-letter messages whose key was cut to 1 KiB: the source key's size.
pub const H_ORIGINAL_KEY_SIZE: &str = "original_key_size";
/// Dead-letter messages sent without payload because the broker refused even the cut one:
/// its reason. The source headers say where the message is.
pub const H_PAYLOAD_DROPPED: &str = "payload_dropped";

/// Settings every client gets: the brokers, a client id that names the tool in broker
/// logs, and `kafka.client` with the secrets (TLS, SASL).
fn base(k: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("client.id", client_id);
    for (key, v) in &k.client {
        c.set(key, v);
    }
    for (key, v) in k.secrets.iter() {
        c.set(key, v);
    }
    access::kerberos_defaults(k, &mut c);
    c
}

/// Producer settings: the pass-through options, then what the delivery guarantee needs
/// (acks from all in-sync replicas, idempotence so that retries after a broker failure
/// neither duplicate nor reorder), which the config cannot turn off.
pub fn producer_config(k: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut c = base(k, client_id);
    // Low latency by default: a verdict waits at most 1 ms for company.
    c.set("linger.ms", "1");
    for (key, v) in &k.producer {
        c.set(key, v);
    }
    for (key, v) in [("acks", "all"), ("enable.idempotence", "true")] {
        if k.producer.get(key).is_some_and(|x| x != v) {
            tracing::warn!("kafka.producer.{key} is ignored: the node always uses {key}={v}");
        }
        c.set(key, v);
    }
    c
}

/// Consumer settings for a reader outside any group (jobs reader, `receive`): partitions are
/// assigned by hand and nothing is committed.
pub fn reader_config(k: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut c = base(k, client_id);
    // Only committed transactional messages (exactly_once delivery); the same as
    // read_uncommitted for messages written without transactions.
    c.set("isolation.level", "read_committed");
    // When the prefetch queue is full (queued.max.messages.kbytes, 64 MB), librdkafka stops
    // fetching a partition and looks again only after fetch.queue.backoff.ms, 1000 ms by
    // default. A node catching up on a backlog fills the queue all the time, and then drained
    // it in half a second and sat idle for the other half: its drain rate was 0.7 M header
    // shares/s with the default and 1.8 M with 10 ms (docs/benchmarks.md).
    c.set("fetch.queue.backoff.ms", "10");
    for (key, v) in &k.consumer {
        c.set(key, v);
    }
    // librdkafka wants a group id before it assigns partitions by hand; this one is never
    // joined (no subscribe) and nothing is committed under it.
    c.set("group.id", "sharecheck-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true");
    c
}

/// Client context of the readers: librdkafka's logs go to tracing, and the end-of-partition
/// events the readers ask for are not reported as errors.
pub struct ReaderContext;

impl ClientContext for ReaderContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        log_librdkafka(level, fac, msg);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(error, KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF);
        if !eof {
            tracing::warn!(target: "librdkafka", "{error}: {reason}");
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// librdkafka's log lines at their tracing level.
pub fn log_librdkafka(level: RDKafkaLogLevel, fac: &str, msg: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", "{fac}: {msg}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", "{fac}: {msg}"),
        _ => tracing::debug!(target: "librdkafka", "{fac}: {msg}"),
    }
}

/// Headers naming the source message.
pub fn source_headers(topic: &str, partition: i32, offset: i64) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header {
            key: H_SOURCE_TOPIC,
            value: Some(topic),
        })
        .insert(Header {
            key: H_SOURCE_PARTITION,
            value: Some(&partition.to_string()),
        })
        .insert(Header {
            key: H_SOURCE_OFFSET,
            value: Some(&offset.to_string()),
        })
}

/// The value of a header as text, if present and UTF-8.
pub fn header_str<H: Headers>(h: &H, name: &str) -> Option<String> {
    h.iter()
        .find(|x| x.key == name)
        .and_then(|x| x.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_string)
}

/// The partition ids of `topic`, waiting up to `wait` for it to exist.
pub fn partitions_of<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    wait: Duration,
) -> anyhow::Result<Vec<i32>> {
    let deadline = Instant::now() + wait;
    let mut said = false;
    loop {
        let err = match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md) => {
                let t = md.topics().iter().find(|t| t.name() == topic);
                match t {
                    Some(t) if t.error().is_none() && !t.partitions().is_empty() => {
                        return Ok(t.partitions().iter().map(|p| p.id()).collect());
                    }
                    Some(t) => match t.error() {
                        Some(e) => RDKafkaErrorCode::from(e).to_string(),
                        None => "no partitions".into(),
                    },
                    None => "not in metadata".into(),
                }
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            anyhow::bail!(
                "topic {topic:?} is not available ({err}); create it with `sharecheck topics create` \
                 or check kafka.brokers"
            );
        }
        // A topic just created can take a moment to show in the metadata; one that does not
        // exist should not leave the command silent meanwhile.
        if !said {
            said = true;
            tracing::warn!(
                "topic {topic:?} is not available ({err}); waiting up to {} s for it (create \
                 it with `sharecheck topics create`)",
                wait.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The end offset of each of `topic`'s `partitions`, in one ListOffsets request (timestamp
/// -1 asks for the end; with read_committed, the last stable offset). `fetch_watermarks`
/// would send two requests per partition (it also asks for the start), and each request
/// costs the broker ~0.2 ms of CPU: with a query per batch that was a visible share of the
/// broker's work in a drain.
pub fn end_offsets<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
    wait: Duration,
) -> anyhow::Result<Vec<(i32, i64)>> {
    let mut tpl = rdkafka::TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::End)?;
    }
    let r = consumer.offsets_for_times(tpl, wait)?;
    let mut ends = Vec::with_capacity(partitions.len());
    for el in r.elements() {
        if let Err(e) = el.error() {
            anyhow::bail!("{topic} partition {}: {e}", el.partition());
        }
        match el.offset() {
            rdkafka::Offset::Offset(o) => ends.push((el.partition(), o)),
            o => anyhow::bail!(
                "{topic} partition {}: no end offset ({o:?})",
                el.partition()
            ),
        }
    }
    anyhow::ensure!(
        ends.len() == partitions.len(),
        "{topic}: {} end offsets for {} partitions",
        ends.len(),
        partitions.len()
    );
    Ok(ends)
}

/// The templates topic's `max.message.bytes`: a block template's transactions as hex.
pub const TEMPLATE_MESSAGE_MAX: &str = "16777216";

/// What `topics create` did with one topic.
#[derive(Debug, PartialEq, Eq)]
pub enum TopicOutcome {
    Created,
    Existed,
}

/// Deletes the topics of `k` (for tools that made topics of their own, such as
/// `bench-kafka`); topics that do not exist are not an error.
pub async fn delete_topics(k: &KafkaConfig) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = base(k, "sharecheck-admin")
        .create()
        .map_err(|e| anyhow::anyhow!("cannot create a Kafka admin client: {e}"))?;
    let t = &k.topics;
    let names = [
        t.shares.as_str(),
        t.jobs.as_str(),
        t.verdicts.as_str(),
        t.blocks.as_str(),
        t.dead_letter.as_str(),
        t.templates.as_str(),
        t.replies.as_str(),
        t.sharelog.as_str(),
    ];
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = tokio::time::timeout(Duration::from_secs(60), admin.delete_topics(&names, &opts))
        .await
        .map_err(|_| anyhow::anyhow!("no answer from Kafka at {} within 60 s", k.brokers))?
        .map_err(|e| anyhow::anyhow!("deleting topics at {} failed: {e}", k.brokers))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((name, code)) => anyhow::bail!("cannot delete topic {name:?}: {code}"),
        }
    }
    Ok(())
}

/// Creates the topics of the config through the Admin API. Topics that already exist are
/// left as they are (their partition count and retention are not changed).
pub async fn create_topics(k: &KafkaConfig) -> anyhow::Result<Vec<(String, TopicOutcome)>> {
    let admin: AdminClient<DefaultClientContext> = base(k, "sharecheck-admin")
        .create()
        .map_err(|e| anyhow::anyhow!("cannot create a Kafka admin client: {e}"))?;
    let t = &k.topics;
    let big = t.partitions;
    let plan: [(&str, i32, i64); 8] = [
        (&t.shares, big, t.retention_ms),
        (&t.jobs, 1, t.jobs_retention_ms),
        (&t.verdicts, big, t.retention_ms),
        (&t.blocks, 1, t.jobs_retention_ms),
        (&t.dead_letter, 1, t.retention_ms),
        (&t.templates, 1, t.jobs_retention_ms),
        (&t.replies, t.reply_partitions, t.retention_ms),
        (&t.sharelog, big, t.jobs_retention_ms),
    ];
    let retention: Vec<String> = plan.iter().map(|p| p.2.to_string()).collect();
    let topics: Vec<NewTopic> = plan
        .iter()
        .zip(&retention)
        .map(|(&(name, parts, _), r)| {
            let topic = NewTopic::new(name, parts, TopicReplication::Fixed(t.replication))
                .set("retention.ms", r);
            if name == t.shares || name == t.jobs {
                // Staleness and job expiry are judged by these topics' timestamps: the
                // broker's append time, which no producer can steer (a share stamped 50
                // minutes ahead once expired every job of its partition).
                return topic.set("message.timestamp.type", "LogAppendTime");
            }
            if name != t.templates {
                return topic;
            }
            // One template per job id is enough (the latest), and a template holds a whole
            // block's transactions: up to 4 MB of weight, twice that as hex.
            topic
                .set("cleanup.policy", "compact,delete")
                .set("max.message.bytes", TEMPLATE_MESSAGE_MAX)
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results =
        tokio::time::timeout(Duration::from_secs(60), admin.create_topics(&topics, &opts))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                "no answer from Kafka at {} within 60 s; is the broker up (scripts/kafka.sh up)?",
                k.brokers
            )
            })?
            .map_err(|e| anyhow::anyhow!("creating topics at {} failed: {e}", k.brokers))?;
    let mut out = Vec::new();
    for r in results {
        match r {
            Ok(name) => out.push((name, TopicOutcome::Created)),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                out.push((name, TopicOutcome::Existed))
            }
            Err((name, code)) => anyhow::bail!("cannot create topic {name:?}: {code}"),
        }
    }
    Ok(out)
}

/// Topics among `topics` whose `message.timestamp.type` is not `LogAppendTime`, with the
/// type they have (an empty list when every one has it, or when the brokers do not say).
pub async fn create_time_topics(
    k: &KafkaConfig,
    topics: &[&str],
) -> anyhow::Result<Vec<(String, String)>> {
    use rdkafka::admin::ResourceSpecifier;
    let admin: AdminClient<DefaultClientContext> = base(k, "sharecheck-admin")
        .create()
        .map_err(|e| anyhow::anyhow!("cannot create a Kafka admin client: {e}"))?;
    let specs: Vec<ResourceSpecifier<'_>> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results = tokio::time::timeout(
        Duration::from_secs(30),
        admin.describe_configs(&specs, &opts),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer from Kafka at {} within 30 s", k.brokers))?
    .map_err(|e| anyhow::anyhow!("describing topics at {} failed: {e}", k.brokers))?;
    let mut out = Vec::new();
    for (topic, r) in topics.iter().zip(results) {
        let Ok(resource) = r else { continue };
        let ts = resource
            .get("message.timestamp.type")
            .and_then(|e| e.value.clone());
        if let Some(ts) = ts.filter(|t| t != "LogAppendTime") {
            out.push((topic.to_string(), ts));
        }
    }
    Ok(out)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
