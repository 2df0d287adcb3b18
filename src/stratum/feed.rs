//! The gateway's job feed: the jobs topic, from its last message on, to every session.

use crate::config::KafkaConfig;
use crate::kafka::{reader_config, ReaderContext};
use crate::model::job::JobStep;
use crate::model::{Job, JobCtx};
use crate::wire::binary::decode_job;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The job sessions mine on now; None until the first usable job is read.
pub type Current = watch::Receiver<Option<Arc<Job>>>;

/// What a job must allow for this gateway's sessions.
#[derive(Debug, Clone, Copy)]
pub struct Fit {
    /// extranonce1 + extranonce2 bytes the sessions fill.
    pub slot: usize,
    /// The version-rolling mask mining.configure grants (jobs.version_mask).
    pub mask: u32,
}

/// Starts the reader thread; it ends when `stop` is raised.
pub fn start(k: &KafkaConfig, fit: Fit, stop: Arc<AtomicBool>) -> anyhow::Result<Current> {
    let c: BaseConsumer<ReaderContext> = reader_config(k, "sharecheck-stratum-jobs")
        .create_with_context(ReaderContext)
        .map_err(|e| anyhow::anyhow!("cannot create the jobs reader: {e}"))?;
    let topic = &k.topics.jobs;
    let timeout = Duration::from_secs(10);
    // The last job of each partition is the one to mine on: earlier ones are superseded.
    let mut tpl = TopicPartitionList::new();
    for p in crate::kafka::partitions_of(&c, topic, timeout)? {
        let (low, high) = c
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| anyhow::anyhow!("offsets of {topic}: {e}"))?;
        tpl.add_partition_offset(topic, p, Offset::Offset((high - 1).max(low)))?;
    }
    c.assign(&tpl)
        .map_err(|e| anyhow::anyhow!("cannot read {topic}: {e}"))?;
    let (tx, rx) = watch::channel(None);
    std::thread::Builder::new()
        .name("stratum-jobs".into())
        .spawn(move || read(c, tx, fit, &stop))?;
    Ok(rx)
}

/// Whether stratum V1 sessions can mine `job`: a coinbase job. A standard job (SV2
/// `NewMiningJob`, its future form or the activation of one) states a merkle root and no
/// coinbase, and a jobs topic shared with SV2 front ends carries them too: announced, every
/// share on one would be malformed (a stratum share on a standard job).
fn sv1_minable(job: &Job) -> bool {
    job.merkle_root.is_none() && job.step == JobStep::Live
}

fn read(
    c: BaseConsumer<ReaderContext>,
    tx: watch::Sender<Option<Arc<Job>>>,
    fit: Fit,
    stop: &AtomicBool,
) {
    let slot = fit.slot;
    while !stop.load(Ordering::Relaxed) {
        let Some(Ok(m)) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let job = match decode_job(m.payload().unwrap_or(&[])) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(offset = m.offset(), "job message skipped: {e}");
                continue;
            }
        };
        if !sv1_minable(&job) {
            tracing::debug!(
                job_id = job.job_id,
                "SV2 standard job skipped: stratum V1 sessions mine coinbase jobs only"
            );
            continue;
        }
        // The node refuses the same jobs (bad nbits, sizes over the limits): announcing one
        // would only earn the miners `unknown_job`.
        if let Err(e) = JobCtx::new(job.clone()) {
            tracing::warn!(job_id = job.job_id, "unusable job skipped: {e}");
            continue;
        }
        // A job whose coinbase reserves another extranonce size than the sessions fill:
        // every share on it would be malformed.
        if job.extranonce_size.is_some_and(|n| n as usize != slot) {
            tracing::error!(
                job_id = job.job_id,
                "job skipped: its coinbase reserves {} extranonce bytes, this gateway's \
                 sessions fill {slot} (jobs.extranonce1_size + jobs.extranonce2_size)",
                job.extranonce_size.unwrap_or(0)
            );
            continue;
        }
        // Sessions roll the bits they were granted; a job that allows fewer would answer
        // honest shares with bad_version. Announced (a pool may narrow its mask on purpose),
        // but said loudly.
        if fit.mask & !job.version_mask != 0 {
            tracing::error!(
                job_id = job.job_id,
                "job's version_mask {:08x} does not cover the mask sessions are granted \
                 ({:08x}, jobs.version_mask): shares rolling the other bits get bad_version",
                job.version_mask,
                fit.mask
            );
        }
        tracing::debug!(job_id = job.job_id, clean = job.clean_jobs, "job");
        if tx.send(Some(Arc::new(job))).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_get_coinbase_jobs_only() {
        let line = r#"{"job": {"job_id": "6a", "prevhash": "00000000000000000000000000000000000000000000000000000000000000aa", "coinb1": "01", "coinb2": "02", "merkle_branch": [], "version": "20000000", "nbits": "1d00ffff", "ntime": "66a0e2b1", "clean_jobs": true}}"#;
        let crate::wire::jsonl::Line::Job(Ok(coinbase)) = crate::wire::jsonl::parse_line(line)
        else {
            panic!("a job line")
        };
        assert!(sv1_minable(&coinbase));
        let standard = Job {
            coinb1: Vec::new(),
            coinb2: Vec::new(),
            merkle_root: Some([1; 32]),
            ..coinbase.clone()
        };
        assert!(!sv1_minable(&standard));
        let future = Job {
            step: JobStep::Future,
            ..standard.clone()
        };
        assert!(!sv1_minable(&future));
        let activation = Job {
            merkle_root: None,
            step: JobStep::Activation,
            ..standard
        };
        assert!(!sv1_minable(&activation));
    }
}
