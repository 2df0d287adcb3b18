//! The job lifecycle of a [`Validator`]: jobs coming in, superseded by clean jobs, expiring,
//! pushed out by the caps (`max_live_jobs`, `max_jobs_ahead`, `max_seen_entries`) and
//! remembered as stale.

use super::sv2::root_key;
use super::{work_of, JobEntry, Validator, NEXT_JOB_SEQ, SUPERSEDED_SLACK_MS};
use crate::model::job::{Job, JobCtx, JobError};
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Validator {
    pub(super) fn insert_job(&mut self, job: Job, at: Option<i64>) -> Result<(), JobError> {
        self.insert_ctx(Arc::new(JobCtx::new(job)?), at);
        Ok(())
    }

    pub(super) fn insert_ctx(&mut self, ctx: Arc<JobCtx>, at: Option<i64>) {
        if let Some(e) = self.live.get(&ctx.job.job_id) {
            // A re-sent job that a clean job already superseded counts as new, as it does in
            // arrival order (where the superseded job is no longer live).
            if (Arc::ptr_eq(&e.ctx, &ctx) || e.ctx.job == ctx.job) && e.stale_after_ms.is_none() {
                if ctx.job.clean_jobs {
                    self.supersede_others(&ctx.job, at);
                }
                return;
            }
        }
        let id = ctx.job.job_id.clone();
        if ctx.job.clean_jobs {
            self.supersede_others(&ctx.job, at);
        }
        self.stale.remove(&id);
        let seq = NEXT_JOB_SEQ.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = at {
            self.next_expiry_ms = self.next_expiry_ms.min(self.ttl_deadline(t));
        }
        // A different job under a known id replaces it (and leaves its work's set).
        self.remove_live(&id);
        let work = work_of(&ctx.job, self.seed);
        self.work_sets.entry(work).or_default().jobs += 1;
        let root_key = ctx.job.merkle_root.map(|r| {
            let key = root_key(&ctx.job.prevhash, &r, ctx.job.nbits, self.seed);
            self.by_root.insert(key, id.clone());
            self.stale_roots.remove(&key);
            key
        });
        self.live.insert(
            id.clone(),
            JobEntry {
                ctx,
                seq,
                work,
                root_key,
                published_ms: at,
                stale_after_ms: None,
            },
        );
        if let Some(t) = at.filter(|t| *t > self.clock_ms || !self.ahead.is_empty()) {
            self.ahead.push_back((id.clone(), seq, t));
            self.ahead_live += 1;
        }
        self.live_order.push_back((id, seq));
        self.cap_live_jobs();
    }

    /// Forgets the oldest live jobs beyond `max_live_jobs`. In service mode only jobs the
    /// clock has reached count: a node that reads the job log ahead of its shares (after a
    /// restart, a backlog or a partition move) holds many jobs newer than the share it
    /// judges, and forgetting by arrival alone would drop that share's own job, which the
    /// share, judged by its stamp, should still find. The jobs ahead count once the clock
    /// passes them ([`Validator::advance`] calls this again); at most `max_jobs_ahead` of
    /// them are kept, so a partition whose shares stop while jobs keep coming stays
    /// bounded.
    pub(super) fn cap_live_jobs(&mut self) {
        let ahead = self.ahead_live.min(self.cfg.max_jobs_ahead);
        let mut retired = false;
        while self.live.len() > self.cfg.max_live_jobs + ahead {
            match self.live_order.pop_front() {
                Some((old, s)) => match self.live.get(&old).filter(|e| e.seq == s) {
                    // A superseded job waiting out its slack is stale to `verify`, which
                    // judges by arrival: pushed out, it is remembered as stale, as there.
                    Some(e) if e.stale_after_ms.is_some() => {
                        self.retire(old);
                        retired = true;
                    }
                    Some(_) => {
                        self.remove_live(&old);
                    }
                    None => {}
                },
                None => break,
            }
        }
        if retired {
            self.trim_stale();
        }
        self.pass_ahead(i64::MIN);
    }

    /// Drops the leading entries of `ahead` that are dead or stamped at or before `clock`
    /// (the clock has reached them: they count toward `max_live_jobs` from now on).
    pub(super) fn pass_ahead(&mut self, clock: i64) {
        while let Some((id, seq, t)) = self.ahead.front() {
            let live = self.live.get(id).is_some_and(|e| e.seq == *seq);
            if live && *t > clock {
                break;
            }
            if live {
                self.ahead_live -= 1;
            }
            self.ahead.pop_front();
        }
    }

    pub(super) fn ttl_deadline(&self, published_ms: i64) -> i64 {
        published_ms.saturating_add((self.cfg.job_ttl_s as i64).saturating_mul(1000))
    }

    /// A clean job arrived: in arrival order every other job is stale now; with timestamps,
    /// every other job turns stale for shares stamped after `at + stale_grace_ms`. A clean
    /// standard job (SV2's SetNewPrevHash) spares the jobs of its own prevhash: SV2 sends a
    /// prev hash to each channel, activating that channel's job, and "a new prev hash makes
    /// earlier jobs stale" means the jobs of the old block, not the other channels' jobs of
    /// the new one (which would otherwise stale each other in turn).
    pub(super) fn supersede_others(&mut self, clean: &Job, at: Option<i64>) {
        let keep = clean.job_id.as_str();
        let spare = clean.merkle_root.map(|_| clean.prevhash);
        let superseded =
            |id: &str, e: &JobEntry| id != keep && spare.is_none_or(|p| e.ctx.job.prevhash != p);
        let Some(t) = at else {
            let ids: Vec<String> = (self.live.iter())
                .filter(|(id, e)| superseded(id, e))
                .map(|(id, _)| id.clone())
                .collect();
            self.make_stale(ids);
            return;
        };
        let stale_after = t.saturating_add(self.cfg.stale_grace_ms as i64);
        let mut next = self.next_expiry_ms;
        for (id, e) in self.live.iter_mut() {
            if superseded(id, e) && e.stale_after_ms.is_none() {
                e.stale_after_ms = Some(stale_after);
                next = next.min(stale_after.saturating_add(SUPERSEDED_SLACK_MS));
            }
        }
        self.next_expiry_ms = next;
    }

    /// Service mode: moves the clock to `ts_ms` (it never goes back) and retires the jobs
    /// that expired or whose superseded grace is long over: they go to the stale list and
    /// their duplicate sets are freed.
    pub(super) fn advance(&mut self, ts_ms: i64) {
        self.clock_ms = self.clock_ms.max(ts_ms);
        self.expire();
        // After expiry (the jobs it retired no longer count toward max_live_jobs), the jobs
        // the clock has now reached count.
        self.pass_ahead(self.clock_ms);
        self.cap_live_jobs();
    }

    /// Retires the live jobs whose time is up at the clock (their TTL, or the slack after a
    /// clean job superseded them).
    pub(super) fn expire(&mut self) {
        if self.clock_ms < self.next_expiry_ms {
            return;
        }
        let clock = self.clock_ms;
        let mut retire = Vec::new();
        let mut next = i64::MAX;
        for (id, e) in &self.live {
            let mut deadline = i64::MAX;
            if let Some(p) = e.published_ms {
                deadline = deadline.min(self.ttl_deadline(p));
            }
            if let Some(s) = e.stale_after_ms {
                deadline = deadline.min(s.saturating_add(SUPERSEDED_SLACK_MS));
            }
            if clock >= deadline {
                retire.push(id.clone());
            } else {
                next = next.min(deadline);
            }
        }
        self.next_expiry_ms = next;
        if retire.is_empty() {
            return;
        }
        for id in retire {
            self.retire(id);
        }
        let live = &self.live;
        self.live_order
            .retain(|(id, s)| live.get(id).is_some_and(|e| e.seq == *s));
        self.ahead
            .retain(|(id, s, _)| live.get(id).is_some_and(|e| e.seq == *s));
        self.trim_stale();
    }

    /// Makes a live job stale: its shares (and, for a standard job, its header shares) are
    /// `stale` from now on. The caller trims the stale lists.
    pub(super) fn retire(&mut self, id: String) {
        if let Some(key) = self.remove_live(&id).and_then(|e| e.root_key) {
            if self.stale_roots.insert(key) {
                self.stale_roots_order.push_back(key);
            }
        }
        if self.stale.insert(id.clone()) {
            self.stale_order.push_back(id);
        }
    }

    /// Takes a job out of the live ones; its work's duplicate set goes with the last job
    /// that carries it.
    pub(super) fn remove_live(&mut self, id: &str) -> Option<JobEntry> {
        let e = self.live.remove(id)?;
        if self.ahead.front().is_some_and(|f| e.seq >= f.1) {
            self.ahead_live -= 1;
        }
        if let Some(key) = e.root_key {
            if self.by_root.get(&key).is_some_and(|j| j == id) {
                self.by_root.remove(&key);
            }
        }
        if let Some(w) = self.work_sets.get_mut(&e.work) {
            w.jobs -= 1;
            if w.jobs == 0 {
                if let Some(w) = self.work_sets.remove(&e.work) {
                    self.stratum_seen -= w.seen.len();
                }
            }
        }
        Some(e)
    }

    /// The stratum duplicate sets are at `max_seen_entries`: retires the oldest live jobs
    /// (stale from now on) until there is room. False when `for_job` itself had to go, or
    /// holds the whole cap alone: its share is then `stale`, never let through unchecked.
    pub(super) fn make_room(&mut self, for_job: &str) -> bool {
        while self.stratum_seen >= self.cfg.max_seen_entries {
            let Some((old, seq)) = self.live_order.pop_front() else {
                return false;
            };
            if self.live.get(&old).is_none_or(|e| e.seq != seq) {
                continue;
            }
            if old == for_job && self.live.len() == 1 {
                self.live_order.push_front((old, seq));
                return false;
            }
            self.retire(old);
            self.jobs_retired_early += 1;
        }
        self.trim_stale();
        self.live.contains_key(for_job)
    }

    pub(super) fn trim_stale(&mut self) {
        while self.stale.len() > self.cfg.max_stale_jobs {
            match self.stale_order.pop_front() {
                Some(old) => {
                    self.stale.remove(&old);
                }
                None => break,
            }
        }
        while self.stale_roots.len() > self.cfg.max_stale_jobs {
            match self.stale_roots_order.pop_front() {
                Some(old) => {
                    self.stale_roots.remove(&old);
                }
                None => break,
            }
        }
    }

    fn make_stale(&mut self, ids: Vec<String>) {
        for id in ids {
            self.retire(id);
        }
        let live = &self.live;
        self.live_order.retain(|(id, _)| live.contains_key(id));
        self.trim_stale();
    }
}
