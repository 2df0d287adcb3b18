//! Checks 1–6 of each batch, after the jobs reader caught up with the jobs topic, by each
//! partition's own validator.

use super::clients::Shared;
use super::gather::{Item, Work};
use super::jobs::JobLog;
use super::ownership::{Epoch, Ownership};
use crate::kafka::rebuild::Rebuilder;
use crate::model::{Batch, ValidationConfig, Validator};
use std::collections::HashMap;
use std::time::Instant;

/// One partition's validator and how far it has applied the job log.
struct PartitionValidator {
    epoch: Epoch,
    validator: Validator,
    /// Absolute index in the job log of the next job to apply.
    applied: u64,
}

/// The validators of the partitions one lane holds.
///
/// One [`Validator`] per share partition: duplicates are tracked per partition by contract,
/// so the duplicate sets are per partition anyway, and a whole validator per partition keeps
/// the rules in one place untouched and lets a revoked partition's state go in one step.
/// What it costs is each job's context (a midstate and a few hundred bytes) once per
/// partition, which is small beside the duplicate sets.
pub struct Validators {
    by_partition: HashMap<i32, PartitionValidator>,
    vcfg: ValidationConfig,
    rebuilder: Rebuilder,
}

impl Validators {
    pub fn new(sh: &Shared) -> Validators {
        let vcfg = sh.cfg.validation.clone();
        Validators {
            by_partition: HashMap::new(),
            rebuilder: Rebuilder::new(&sh.cfg.kafka, vcfg.job_ttl_s),
            vcfg,
        }
    }

    /// Entries of every duplicate set of the lane's validators.
    fn seen_entries(&self) -> usize {
        self.by_partition
            .values()
            .map(|v| v.validator.seen_entries())
            .sum()
    }

    /// Drops the validators (duplicate sets and all) of partitions whose holding ended.
    fn retain_current(&mut self, ownership: &Ownership) {
        self.by_partition
            .retain(|_, v| ownership.is_current(v.epoch));
    }

    /// A validator for every item's epoch: a partition gained (or rewound) since its
    /// validator was made gets a new one, rebuilt from the shares topic.
    fn ensure(&mut self, items: &[Item], jobs: &JobLog, sh: &Shared) {
        for item in items {
            if self
                .by_partition
                .get(&item.epoch.partition)
                .is_none_or(|v| v.epoch != item.epoch)
            {
                let v = self.gained(item, jobs, sh);
                self.by_partition.insert(item.epoch.partition, v);
            }
        }
    }

    /// The jobs published so far, into the validators of the items' partitions; the job log
    /// stays locked only for that (other lanes and the jobs reader use it too).
    fn apply_jobs(&mut self, items: &[Item], jobs: &JobLog) {
        let st = jobs.state();
        let end = st.end();
        for item in items {
            let Some(v) = self.by_partition.get_mut(&item.epoch.partition) else {
                continue;
            };
            for i in v.applied.max(st.base)..end {
                let (ctx, ts) = &st.jobs[(i - st.base) as usize];
                v.validator.add_job_ctx_at(ctx.clone(), *ts);
            }
            v.applied = end;
        }
    }

    /// Checks 1–6 of every record, into one batch for the backend.
    fn check(&mut self, items: &[Item], shares: usize) -> Batch {
        let mut batch = Batch::with_capacity(shares);
        for item in items {
            let Some(v) = self.by_partition.get_mut(&item.epoch.partition) else {
                continue;
            };
            for rec in &item.records {
                v.validator.check_at(rec, item.ts, &mut batch);
            }
        }
        batch
    }

    /// A validator for a partition this node just gained (its first message to validate is
    /// `item`): the jobs, then the duplicate sets of the shares before `item`, replayed by
    /// [`crate::kafka::rebuild`].
    fn gained(&mut self, item: &Item, jobs: &JobLog, sh: &Shared) -> PartitionValidator {
        let mut v = Validator::new(self.vcfg.clone());
        let applied = {
            let st = jobs.state();
            for (ctx, ts) in &st.jobs {
                v.add_job_ctx_at(ctx.clone(), *ts);
            }
            st.end()
        };
        let t0 = Instant::now();
        let p = item.epoch.partition;
        match self.rebuilder.rebuild(&mut v, p, item.offset, &sh.abort) {
            Ok(r) => {
                sh.metrics.rebuilt_shares.inc_by(r.recorded);
                tracing::info!(
                    partition = p,
                    from = r.from,
                    until = r.until,
                    shares = r.shares,
                    recorded = r.recorded,
                    complete = r.complete,
                    "duplicate sets rebuilt in {:.0?}",
                    t0.elapsed()
                );
            }
            Err(e) => tracing::warn!(
                partition = p,
                "duplicate sets not rebuilt ({e:#}); copies of earlier shares go undetected"
            ),
        }
        PartitionValidator {
            epoch: item.epoch,
            validator: v,
            applied,
        }
    }
}

/// The prepare stage of one lane: for each batch, drops the items whose holding ended,
/// waits until the jobs published before the batch was dispatched are read, and runs checks
/// 1–6.
pub fn prepare_stage(
    rx: std::sync::mpsc::Receiver<Work>,
    tx: std::sync::mpsc::SyncSender<(Work, Batch)>,
    jobs: &JobLog,
    sh: &Shared,
    lane: usize,
) {
    let mut validators = Validators::new(sh);
    let entries = sh
        .metrics
        .duplicate_entries
        .with_label_values(&[&lane.to_string()]);
    for mut work in rx {
        // Items of partitions taken away since they were fetched belong to the next owner,
        // and so do those partitions' state.
        work.items.retain(|it| sh.ownership.is_current(it.epoch));
        validators.retain_current(&sh.ownership);
        check_routes(&mut work, sh);
        let t0 = Instant::now();
        if !jobs.catch_up(work.jobs_ticket, &sh.abort) {
            return;
        }
        tracing::trace!("jobs caught up in {:?}", t0.elapsed());
        validators.ensure(&work.items, jobs, sh);
        validators.apply_jobs(&work.items, jobs);
        let batch = validators.check(&work.items, work.shares);
        entries.set(validators.seen_entries() as i64);
        if tx.send((work, batch)).is_err() {
            return;
        }
    }
}

/// Checks the reply route each share message names (config and broker metadata, cached):
/// an item keeps its route or gets the reason it is refused, counted and logged (once per
/// batch, at most), and its verdicts go to the verdicts topic.
fn check_routes(work: &mut Work, sh: &Shared) {
    let mut first_refusal = None;
    for item in &mut work.items {
        let Some(r) = item.reply.take() else { continue };
        let r = r.and_then(|route| sh.routes.check(route, &sh.consumer));
        if let Err(why) = &r {
            sh.metrics.replies_refused.inc();
            first_refusal.get_or_insert((item.epoch.partition, item.offset, why.clone()));
        }
        item.reply = Some(r);
    }
    static LAST_LOG: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let Some((partition, offset, why)) = first_refusal else {
        return;
    };
    // One line per 10 s: a producer naming a bad route on every message must not flood
    // the log; the counter has the number.
    let mut last = LAST_LOG.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10)) {
        *last = Some(Instant::now());
        tracing::warn!(
            partition,
            offset,
            "reply route refused ({why}); its verdicts go to the verdicts topic"
        );
    }
}
