//! `sharecheck jobs`, the job maker: the Bitcoin node's block templates become stratum jobs
//! on the jobs topic, with what a block submitter needs to rebuild each job's block on the
//! templates topic.
//!
//! Several job makers may run; one publishes. They are members of one Kafka consumer group
//! subscribed to the one-partition templates topic, and the member the group gives that
//! partition is the active one: when it stops answering (killed, host lost), the group
//! gives the partition to another within `jobs.failover_ms`. The active one writes through a
//! transactional producer whose `transactional.id` all job makers share, so the one that
//! takes over fences its predecessor (`init_transactions`): a job maker that was paused and
//! still believes it is active cannot publish any more. Each job and its template go in one
//! transaction, so a job is never visible without its template.

use super::rpc::{BlockTemplate, Rpc, RpcError};
use super::template::{job_from_template, CoinbasePlan, StoredTemplate};
use crate::config::{Config, KafkaConfig};
use crate::kafka::txn::{classify, TxnFailure, TXN_TIMEOUT};
use crate::kafka::{now_ms, producer_config, reader_config};
use crate::model::Job;
use crate::wire::binary::encode_job;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What a job maker did, reported when it stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JobsSummary {
    pub jobs: u64,
    pub clean_jobs: u64,
    /// Times it became the active job maker.
    pub terms: u64,
}

/// The payout script of `[jobs]`: `coinbase_script`, or `payout_address` on `network`.
pub fn payout_script(cfg: &crate::config::JobsConfig) -> anyhow::Result<Vec<u8>> {
    if let Some(hex) = &cfg.coinbase_script {
        return crate::wire::hex::decode(hex)
            .map_err(|e| anyhow::anyhow!("jobs.coinbase_script is not hex: {e}"));
    }
    let Some(addr) = &cfg.payout_address else {
        anyhow::bail!(
            "set jobs.payout_address (or jobs.coinbase_script): where the block reward goes"
        );
    };
    let network: bitcoin::Network = cfg.network.parse().map_err(|_| {
        anyhow::anyhow!(
            "jobs.network {:?}: use bitcoin, testnet, testnet4, signet or regtest",
            cfg.network
        )
    })?;
    let a: bitcoin::Address<bitcoin::address::NetworkUnchecked> = addr
        .parse()
        .map_err(|e| anyhow::anyhow!("jobs.payout_address {addr:?}: {e}"))?;
    let a = a
        .require_network(network)
        .map_err(|e| anyhow::anyhow!("jobs.payout_address {addr:?}: {e}"))?;
    Ok(a.script_pubkey().into_bytes())
}

/// The transactional id every job maker of a group shares.
fn transactional_id(k: &KafkaConfig) -> String {
    format!("{}.jobmaker-{}", k.group_id, k.topics.jobs)
}

/// Runs a job maker until `stop`: standby while another is active, publishing while it is.
pub fn run(cfg: &Config, rpc: &Rpc, stop: &AtomicBool) -> anyhow::Result<JobsSummary> {
    let plan = CoinbasePlan {
        payout_script: payout_script(&cfg.jobs)?,
        tag: cfg.jobs.coinbase_tag.as_bytes().to_vec(),
        extranonce_len: cfg.jobs.extranonce1_size + cfg.jobs.extranonce2_size,
    };
    let election = election_consumer(cfg)?;
    let mut maker = Maker {
        cfg,
        rpc,
        plan,
        publisher: None,
        last_tip: None,
        last_template: Instant::now(),
        last_job_ms: 0,
        summary: JobsSummary::default(),
        fenced_at: None,
        last_rpc_error: None,
    };
    tracing::info!(
        node = rpc.url(0),
        jobs = %cfg.kafka.topics.jobs,
        templates = %cfg.kafka.topics.templates,
        "job maker started; standby until the group makes it active"
    );
    let poll = Duration::from_millis(cfg.jobs.poll_ms);
    let mut next_poll = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // Serves the group: rebalances and heartbeats (the templates themselves are not
        // needed here; the partition is paused once held).
        let _ = election.poll(Duration::from_millis(50));
        if !holds_partition(&election, &cfg.kafka.topics.templates) {
            maker.standby();
            continue;
        }
        if Instant::now() < next_poll {
            continue;
        }
        next_poll = Instant::now() + poll;
        maker.tick();
    }
    Ok(maker.summary)
}

/// A member of the job makers' group, subscribed to the templates topic.
fn election_consumer(cfg: &Config) -> anyhow::Result<BaseConsumer<ElectionContext>> {
    let k = &cfg.kafka;
    let mut c = reader_config(k, "sharecheck-jobmaker");
    c.set("group.id", format!("{}.jobmaker", k.group_id))
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "latest")
        // Sticky: a job maker joining or leaving does not move the role from the active
        // one (each move costs a clean job that resets every miner's work).
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", cfg.jobs.failover_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (cfg.jobs.failover_ms / 4).max(100).to_string(),
        );
    let consumer: BaseConsumer<ElectionContext> = c
        .create_with_context(ElectionContext)
        .map_err(|e| anyhow::anyhow!("cannot create the job makers' group member: {e}"))?;
    consumer
        .subscribe(&[&k.topics.templates])
        .map_err(|e| anyhow::anyhow!("cannot subscribe to {}: {e}", k.topics.templates))?;
    Ok(consumer)
}

fn holds_partition<C: rdkafka::consumer::ConsumerContext>(
    c: &BaseConsumer<C>,
    topic: &str,
) -> bool {
    c.assignment()
        .map(|a| {
            a.elements_for_topic(topic)
                .iter()
                .any(|e| e.partition() == 0)
        })
        .unwrap_or(false)
}

/// The group member's context: the partition is paused as soon as it is held (the job maker
/// writes templates, it does not read them).
struct ElectionContext;

impl rdkafka::client::ClientContext for ElectionContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        crate::kafka::log_librdkafka(level, fac, msg);
    }
}

impl rdkafka::consumer::ConsumerContext for ElectionContext {
    fn post_rebalance(&self, c: &BaseConsumer<Self>, r: &rdkafka::consumer::Rebalance<'_>) {
        if let rdkafka::consumer::Rebalance::Assign(tpl) = r {
            let _ = c.pause(tpl);
        }
    }
}

/// The active job maker's transactional producer.
struct Publisher {
    producer: BaseProducer,
}

impl Publisher {
    /// A producer with the shared transactional id, initialised: every earlier producer of
    /// the id is fenced from here on.
    fn start(k: &KafkaConfig) -> Result<Publisher, String> {
        let mut c = producer_config(k, "sharecheck-jobmaker");
        c.set("transactional.id", transactional_id(k))
            .set("message.max.bytes", crate::kafka::TEMPLATE_MESSAGE_MAX);
        let producer: BaseProducer = c
            .create()
            .map_err(|e| format!("cannot create the job maker's producer: {e}"))?;
        producer
            .init_transactions(TXN_TIMEOUT)
            .map_err(|e| format!("init_transactions: {e}"))?;
        Ok(Publisher { producer })
    }

    /// The template, then the job, in one transaction.
    fn publish(&self, k: &KafkaConfig, job: &Job, t: &StoredTemplate) -> Result<(), KafkaError> {
        let template = serde_json::to_vec(t).expect("a template serializes");
        let encoded = encode_job(job);
        self.producer.begin_transaction()?;
        let records = [
            BaseRecord::to(&k.topics.templates)
                .key(&job.job_id)
                .payload(&template),
            BaseRecord::to(&k.topics.jobs)
                .key(&job.job_id)
                .payload(&encoded),
        ];
        for r in records {
            if let Err((e, _)) = self.producer.send(r) {
                let _ = self.producer.abort_transaction(TXN_TIMEOUT);
                return Err(e);
            }
        }
        self.producer.commit_transaction(TXN_TIMEOUT)
    }
}

/// The job maker's state.
struct Maker<'a> {
    cfg: &'a Config,
    rpc: &'a Rpc,
    plan: CoinbasePlan,
    publisher: Option<Publisher>,
    /// The tip of the last job published (None: publish a clean job at once).
    last_tip: Option<String>,
    last_template: Instant,
    /// Job ids are the publication time in ms (strictly increasing), so that they stay
    /// unique across restarts and hand-overs.
    last_job_ms: i64,
    summary: JobsSummary,
    /// When a commit found this job maker fenced: it waits a failover period before it
    /// may initialise again (its group membership is then up to date).
    fenced_at: Option<Instant>,
    last_rpc_error: Option<Instant>,
}

impl Maker<'_> {
    fn standby(&mut self) {
        if self.publisher.take().is_some() {
            tracing::warn!("no longer the active job maker: standby");
        }
        self.last_tip = None;
    }

    /// One poll of the node while active: a clean job on a new tip, a refreshed one every
    /// `refresh_s`.
    fn tick(&mut self) {
        if self.publisher.is_none() && !self.become_active() {
            return;
        }
        let tip = match self.rpc.best_block_hash() {
            Ok(t) => t,
            Err(e) => return self.rpc_error(e),
        };
        let clean = self.last_tip.as_deref() != Some(tip.as_str());
        let refresh = Duration::from_secs(self.cfg.jobs.refresh_s);
        if !clean && self.last_template.elapsed() < refresh {
            return;
        }
        let template = match self.rpc.block_template(None) {
            Ok(t) => t,
            Err(e) => return self.rpc_error(e),
        };
        // The template may already be on a newer tip than the one just read.
        let clean = self.last_tip.as_deref() != Some(template.previousblockhash.as_str());
        self.publish(&template, clean);
    }

    fn become_active(&mut self) -> bool {
        let wait = Duration::from_millis(self.cfg.jobs.failover_ms);
        if self.fenced_at.is_some_and(|t| t.elapsed() < wait) {
            return false;
        }
        match Publisher::start(&self.cfg.kafka) {
            Ok(p) => {
                self.publisher = Some(p);
                self.fenced_at = None;
                self.last_tip = None;
                self.summary.terms += 1;
                tracing::info!("active job maker (earlier ones fenced)");
                true
            }
            Err(e) => {
                tracing::warn!("cannot become the active job maker ({e}); retrying");
                self.fenced_at = Some(Instant::now());
                false
            }
        }
    }

    fn publish(&mut self, template: &BlockTemplate, clean: bool) {
        let ms = now_ms().max(self.last_job_ms + 1);
        let job_id = format!("{ms:x}");
        let made = job_from_template(
            template,
            &self.plan,
            &job_id,
            clean,
            self.cfg.jobs.version_mask,
        );
        let (job, stored) = match made {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(height = template.height, "template not usable: {e}");
                self.last_template = Instant::now();
                return;
            }
        };
        let Some(p) = &self.publisher else { return };
        match p.publish(&self.cfg.kafka, &job, &stored) {
            Ok(()) => {
                self.last_job_ms = ms;
                self.last_tip = Some(template.previousblockhash.clone());
                self.last_template = Instant::now();
                self.summary.jobs += 1;
                self.summary.clean_jobs += clean as u64;
                tracing::info!(
                    job_id,
                    height = template.height,
                    transactions = template.transactions.len(),
                    clean_jobs = clean,
                    "job published"
                );
            }
            Err(e) if classify(&e) == TxnFailure::Fatal => {
                tracing::warn!("job maker fenced ({e}): another one is active now; standby");
                self.publisher = None;
                self.fenced_at = Some(Instant::now());
            }
            Err(e) => {
                // The transaction was aborted: nothing of it is visible; the next poll
                // publishes again.
                tracing::warn!(job_id, "job not published ({e}); trying again");
                let _ = p.producer.abort_transaction(TXN_TIMEOUT);
            }
        }
    }

    /// One line per 10 s while the node does not answer.
    fn rpc_error(&mut self, e: RpcError) {
        if self
            .last_rpc_error
            .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
        {
            tracing::warn!("Bitcoin node: {e}");
            self.last_rpc_error = Some(Instant::now());
        }
    }
}
