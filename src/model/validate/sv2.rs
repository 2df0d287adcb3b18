//! Shares judged against standard jobs (jobs that state their merkle root, as Stratum V2's
//! `NewMiningJob` does): SV2 standard shares, found by job id, and header shares, found by
//! the prevhash, merkle root and nbits in their header. Both build the same 80-byte header
//! and share one duplicate set per job's work, so the same proof of work sent both ways is
//! a duplicate.

use super::{Batch, U256};
use super::{
    HashTask, JobEntry, Malformed, RecordError, ShareView, Status, TaskMeta, ValidationConfig,
    Validator, Verdict,
};
use crate::model::share::u32_at;
use bytemuck::Zeroable;
use xxhash_rust::xxh3::xxh3_128_with_seed;

/// What a standard share says beyond its job: the full version, ntime and nonce.
#[derive(Debug, Clone, Copy)]
pub(super) struct StandardShare {
    pub version: u32,
    pub ntime: u32,
    pub nonce: u32,
}

/// The key a header share finds its standard job by: prevhash, merkle root and nbits, all
/// three as the header carries them.
pub(super) fn root_key(prevhash: &[u8; 32], root: &[u8; 32], nbits: u32, seed: u64) -> u128 {
    let mut b = [0u8; 68];
    b[..32].copy_from_slice(prevhash);
    b[32..64].copy_from_slice(root);
    b[64..].copy_from_slice(&nbits.to_le_bytes());
    xxh3_128_with_seed(&b, seed)
}

/// The latest ntime a share on `entry`'s job may carry by the job alone: the job's ntime
/// plus `max_ntime_offset_s`; for an SV2 share (`sv2`) in service mode also no further ahead
/// of the job's min_ntime than the seconds since the job was published, plus
/// `sv2_ntime_slack_s` (the SV2 mining protocol: ntime ≤ min_ntime + the seconds since the
/// message that set it). The bound by now ([`Validator::latest_ntime`]) applies on top.
pub(super) fn entry_ntime_limit(
    entry: &JobEntry,
    ts: Option<i64>,
    sv2: bool,
    cfg: &ValidationConfig,
) -> u32 {
    let lo = entry.ctx.job.ntime;
    let by_offset = lo.saturating_add(cfg.max_ntime_offset_s);
    match (sv2, ts, entry.published_ms) {
        (true, Some(t), Some(p)) => {
            let elapsed_s = (t.saturating_sub(p) / 1000).clamp(0, u32::MAX as i64) as u32;
            by_offset.min(
                lo.saturating_add(elapsed_s)
                    .saturating_add(cfg.sv2_ntime_slack_s),
            )
        }
        _ => by_offset,
    }
}

impl Validator {
    /// A header share outside audit mode: it must be a share of a live standard job (same
    /// prevhash, merkle root and nbits), and is then judged as that job's standard share.
    pub(super) fn check_bound_header(
        &mut self,
        view: &ShareView<'_>,
        header: &[u8; 80],
        ts: Option<i64>,
        batch: Option<&mut Batch>,
    ) -> Result<(), Verdict> {
        let prev: [u8; 32] = header[4..36].try_into().expect("32");
        let root: [u8; 32] = header[36..68].try_into().expect("32");
        let nbits = u32_at(header, 72);
        let key = root_key(&prev, &root, nbits, self.seed);
        let Some(job_id) = self.by_root.get(&key).cloned() else {
            // 2. unknown_job, 3. stale: not the work of any live job.
            let status = if self.stale_roots.contains(&key) {
                Status::Stale
            } else {
                Status::UnknownJob
            };
            return Err(Verdict::rejected(view.id, status));
        };
        let share = StandardShare {
            version: u32_at(header, 0),
            ntime: u32_at(header, 68),
            nonce: u32_at(header, 76),
        };
        self.check_standard(view, &job_id, share, ts, batch)
    }

    /// Checks 2–6 of a share on a standard job (1 is done).
    pub(super) fn check_standard(
        &mut self,
        view: &ShareView<'_>,
        job_id: &str,
        share: StandardShare,
        ts: Option<i64>,
        batch: Option<&mut Batch>,
    ) -> Result<(), Verdict> {
        let id = view.id;
        let latest = self.latest_ntime(ts);
        // 2. unknown_job, 3. stale
        let Some(entry) = self.live.get(job_id) else {
            let status = if self.stale.contains(job_id) {
                Status::Stale
            } else {
                Status::UnknownJob
            };
            return Err(Verdict::rejected(id, status));
        };
        if let (Some(t), Some(after)) = (ts, entry.stale_after_ms) {
            if t > after {
                return Err(Verdict::rejected(id, Status::Stale));
            }
        }
        let job = &entry.ctx.job;
        if job.merkle_root.is_none() {
            let e = Malformed::Record(RecordError::JobKind);
            return Err(Verdict::malformed(Some(id), e));
        }
        // 4. bad_version: only the bits the job lets roll may differ from its version.
        if (share.version ^ job.version) & !job.version_mask != 0 {
            return Err(Verdict::bad_version(id, job.version_mask));
        }
        // 5. bad_ntime
        let hi = entry_ntime_limit(entry, ts, true, &self.cfg).min(latest);
        if share.ntime < job.ntime || share.ntime > hi {
            return Err(Verdict::rejected(id, Status::BadNtime));
        }
        // 6. duplicate: by (version, ntime, nonce) in the job's work (prevhash, merkle root
        // and nbits are the work's).
        let mut key = [0u8; 13];
        key[0] = b'S';
        key[1..5].copy_from_slice(&share.version.to_le_bytes());
        key[5..9].copy_from_slice(&share.ntime.to_le_bytes());
        key[9..13].copy_from_slice(&share.nonce.to_le_bytes());
        let fp = xxh3_128_with_seed(&key, self.seed);
        let work = entry.work;
        if self.work_sets.entry(work).or_default().seen.contains(&fp) {
            return Err(Verdict::rejected(id, Status::Duplicate));
        }
        if self.stratum_seen >= self.cfg.max_seen_entries && !self.make_room(job_id) {
            return Err(Verdict::rejected(id, Status::Stale));
        }
        let Some(entry) = self.live.get(job_id) else {
            return Err(Verdict::rejected(id, Status::Stale));
        };
        self.work_sets.entry(work).or_default().seen.insert(fp);
        self.stratum_seen += 1;
        let Some(batch) = batch else {
            return Ok(());
        };
        let header = entry
            .ctx
            .standard_header(share.version, share.ntime, share.nonce)
            .expect("a standard job");
        let network_target: U256 = entry.ctx.network_target;
        let mut task = HashTask::zeroed();
        task.job = HashTask::HEADER;
        task.data = header;
        batch.push_task(
            task,
            TaskMeta {
                id,
                share_target: view.target,
                network_target,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use crate::model::job::SV2_VERSION_MASK;
    use crate::model::share::ShareTarget;

    const T: ShareTarget = ShareTarget::Difficulty(1e-9);

    /// A standard job: prevhash [p; 32], merkle root [r; 32].
    fn standard(id: &str, p: u8, r: u8, clean: bool) -> Job {
        Job {
            job_id: id.into(),
            prevhash: [p; 32],
            coinb1: Vec::new(),
            coinb2: Vec::new(),
            merkle_branch: Vec::new(),
            version: 0x2000_0000,
            nbits: 0x1703_4219,
            ntime: 1000,
            clean_jobs: clean,
            version_mask: SV2_VERSION_MASK,
            extranonce_size: None,
            merkle_root: Some([r; 32]),
            step: Default::default(),
        }
    }

    /// A coinbase job with a 4 + 4-byte extranonce slot.
    fn coinbase(id: &str) -> Job {
        Job {
            coinb1: vec![1; 42],
            coinb2: vec![2; 60],
            merkle_branch: vec![[3; 32]; 2],
            extranonce_size: Some(8),
            merkle_root: None,
            ..standard(id, 1, 0, false)
        }
    }

    fn header_of(job: &Job, version: u32, ntime: u32, nonce: u32) -> [u8; 80] {
        JobCtx::new(job.clone())
            .unwrap()
            .standard_header(version, ntime, nonce)
            .unwrap()
    }

    fn status(p: Prepared) -> Option<Status> {
        match p {
            Prepared::Done(s) => Some(s),
            Prepared::Queued => None,
        }
    }

    fn std_share(id: u64, job: &str, version: u32, ntime: u32, nonce: u32) -> ShareRecord {
        ShareRecord::sv2_standard(id, job, ntime, nonce, version, T)
    }

    #[test]
    fn header_shares_belong_to_a_live_standard_job() {
        let mut v = Validator::new(ValidationConfig::default());
        let mut b = Batch::new();
        let j = standard("a", 5, 6, true);
        let h = header_of(&j, j.version, 1010, 7);
        // No job states this work yet: unknown_job, never accepted or block.
        let rec = ShareRecord::header(1, &h, T);
        assert_eq!(status(v.check(&rec, &mut b)), Some(Status::UnknownJob));
        v.add_job(j.clone()).unwrap();
        assert_eq!(
            status(v.check(&ShareRecord::header(2, &h, T), &mut b)),
            None
        );
        assert_eq!(b.meta().len(), 1);
        // Another nbits is another job's work.
        let mut other = h;
        other[72..76].copy_from_slice(&0x1d00_ffffu32.to_le_bytes());
        let rec = ShareRecord::header(3, &other, T);
        assert_eq!(status(v.check(&rec, &mut b)), Some(Status::UnknownJob));
        // The same header again, and the same work as a standard share: duplicates.
        let rec = ShareRecord::header(4, &h, T);
        assert_eq!(status(v.check(&rec, &mut b)), Some(Status::Duplicate));
        let rec = std_share(5, "a", j.version, 1010, 7);
        assert_eq!(status(v.check(&rec, &mut b)), Some(Status::Duplicate));
        // A new block: the job's header shares are stale.
        v.add_job(standard("b", 8, 6, true)).unwrap();
        let h2 = header_of(&j, j.version, 1011, 9);
        let rec = ShareRecord::header(6, &h2, T);
        assert_eq!(status(v.check(&rec, &mut b)), Some(Status::Stale));
        // Audit mode judges the header alone.
        let mut audit = Validator::new(ValidationConfig {
            audit_headers: true,
            ..Default::default()
        });
        let rec = ShareRecord::header(7, &h, T);
        assert_eq!(status(audit.check(&rec, &mut b)), None);
    }

    #[test]
    fn standard_shares_get_every_reject_status() {
        let mut v = Validator::new(ValidationConfig::default());
        let mut b = Batch::new();
        let j = standard("7", 5, 6, true);
        v.add_job(j.clone()).unwrap();
        v.add_job(coinbase("c")).unwrap();
        let ver = j.version;
        let cases = [
            (std_share(1, "7", ver, 1000, 1), None),
            (std_share(2, "7", ver | 0x1fff_ffe0, 1000, 2), None),
            (std_share(3, "7", ver, 1000, 1), Some(Status::Duplicate)),
            // Same nonce, other ntime or version: other work.
            (std_share(4, "7", ver, 1001, 1), None),
            (std_share(5, "7", ver ^ 0x20, 1000, 1), None),
            (std_share(6, "8", ver, 1000, 1), Some(Status::UnknownJob)),
            // A bit outside BIP323's mask.
            (
                std_share(7, "7", ver ^ 1, 1000, 3),
                Some(Status::BadVersion),
            ),
            (
                std_share(8, "7", ver ^ 0x4000_0000, 1000, 3),
                Some(Status::BadVersion),
            ),
            (std_share(9, "7", ver, 999, 3), Some(Status::BadNtime)),
            (
                std_share(10, "7", ver, 1000 + 7201, 3),
                Some(Status::BadNtime),
            ),
            (std_share(11, "c", ver, 1000, 3), Some(Status::Malformed)),
        ];
        for (rec, want) in cases {
            assert_eq!(status(v.check(&rec, &mut b)), want, "share {}", rec.id());
        }
        // A stratum share on the standard job: malformed, its kind does not fit.
        let rec = ShareRecord::stratum(12, "7", &[1; 4], &[2; 4], 1000, 1, None, T);
        assert_eq!(status(v.check(&rec, &mut b)), Some(Status::Malformed));
        v.add_job(standard("9", 6, 6, true)).unwrap();
        let rec = std_share(13, "7", ver, 1000, 5);
        assert_eq!(status(v.check(&rec, &mut b)), Some(Status::Stale));
        let verdicts = b.finish(&vec![[0u32; 8]; b.meta().len()]);
        let malformed: Vec<_> = verdicts
            .iter()
            .filter(|v| v.status == Status::Malformed)
            .map(|v| v.error.clone())
            .collect();
        let kind = Some(Malformed::Record(RecordError::JobKind));
        assert_eq!(malformed, vec![kind.clone(), kind]);
    }

    /// SV2 sends a new prev hash to each channel, activating that channel's job: clean
    /// standard jobs of one prevhash do not stale each other, only the jobs of another
    /// prevhash (and a coinbase job, which has its own prevhash, goes stale with its block).
    #[test]
    fn channels_activated_on_one_prevhash_stay_live_together() {
        for timed in [false, true] {
            let mut v = Validator::new(ValidationConfig {
                stale_grace_ms: 0,
                ..Default::default()
            });
            let mut b = Batch::new();
            let t0 = 1_700_000_000_000i64;
            let add = |v: &mut Validator, j: Job, t: i64| match timed {
                true => v.add_job_at(j, t).unwrap(),
                false => v.add_job(j).unwrap(),
            };
            add(&mut v, coinbase("old"), t0);
            add(&mut v, standard("a", 5, 1, true), t0 + 1);
            add(&mut v, standard("b", 5, 2, true), t0 + 2);
            add(&mut v, standard("c", 5, 3, true), t0 + 3);
            let check = |v: &mut Validator, b: &mut Batch, id: u64, job: &str, t: i64| {
                let rec = std_share(id, job, 0x2000_0000, 1000, id as u32);
                match timed {
                    true => status(v.check_at(&rec, t, b)),
                    false => status(v.check(&rec, b)),
                }
            };
            let t = t0 + 10_000;
            for (id, job) in [(1, "a"), (2, "b"), (3, "c")] {
                assert_eq!(
                    check(&mut v, &mut b, id, job, t),
                    None,
                    "{job}, timed {timed}"
                );
            }
            let old = ShareRecord::stratum(4, "old", &[1; 4], &[2; 4], 1000, 4, None, T);
            let got = match timed {
                true => status(v.check_at(&old, t, &mut b)),
                false => status(v.check(&old, &mut b)),
            };
            assert_eq!(
                got,
                Some(Status::Stale),
                "the old block's job, timed {timed}"
            );
            // The next block: every job of prevhash 5 is stale.
            add(&mut v, standard("d", 6, 1, true), t + 1);
            for (id, job) in [(5, "a"), (6, "b"), (7, "c")] {
                let got = check(&mut v, &mut b, id, job, t + 10_000);
                assert_eq!(got, Some(Status::Stale), "{job}, timed {timed}");
            }
            assert_eq!(check(&mut v, &mut b, 8, "d", t + 10_000), None);
        }
    }

    /// The SV2 rule: ntime at most min_ntime + the seconds since the job came + the slack.
    #[test]
    fn sv2_ntime_is_bounded_by_the_time_since_the_job() {
        let mut v = Validator::new(ValidationConfig {
            sv2_ntime_slack_s: 10,
            ..Default::default()
        });
        let mut b = Batch::new();
        let now_ms = 1_700_000_000_000i64;
        let mut j = standard("a", 5, 6, true);
        j.ntime = (now_ms / 1000) as u32;
        v.add_job_at(j.clone(), now_ms).unwrap();
        let at = |id, ntime| std_share(id, "a", j.version, ntime, id as u32);
        // 100 s after the job: up to min_ntime + 110.
        let t = now_ms + 100_000;
        assert_eq!(status(v.check_at(&at(1, j.ntime + 110), t, &mut b)), None);
        let late = v.check_at(&at(2, j.ntime + 111), t, &mut b);
        assert_eq!(status(late), Some(Status::BadNtime));
        // Stratum shares keep the offset rule alone.
        let mut c = coinbase("c");
        c.ntime = j.ntime;
        v.add_job_at(c, now_ms).unwrap();
        let s = ShareRecord::stratum(3, "c", &[1; 4], &[2; 4], j.ntime + 1000, 1, None, T);
        assert_eq!(status(v.check_at(&s, t, &mut b)), None);
    }

    #[test]
    fn extended_shares_carry_the_full_version_and_fill_the_slot() {
        let mut v = Validator::new(ValidationConfig::default());
        let mut b = Batch::new();
        let j = coinbase("c");
        v.add_job(j.clone()).unwrap();
        let ext = |id, en: &[u8], version| {
            ShareRecord::sv2_extended(id, "c", &[1; 4], en, 1000, id as u32, version, T)
        };
        assert_eq!(status(v.check(&ext(1, &[2; 4], j.version), &mut b)), None);
        let rolled = j.version | 0x0000_1fe0;
        assert_eq!(status(v.check(&ext(2, &[2; 4], rolled), &mut b)), None);
        let bad = v.check(&ext(3, &[2; 4], j.version ^ 2), &mut b);
        assert_eq!(status(bad), Some(Status::BadVersion));
        let short = v.check(&ext(4, &[2; 3], j.version), &mut b);
        assert_eq!(status(short), Some(Status::Malformed));
        // The same share as a stratum share with the rolled bits: one proof of work.
        let s = ShareRecord::stratum(5, "c", &[1; 4], &[2; 4], 1000, 1, Some(0), T);
        assert_eq!(status(v.check(&s, &mut b)), Some(Status::Duplicate));
        let verdicts = b.finish(&vec![[0u32; 8]; b.meta().len()]);
        let e = verdicts.iter().find(|v| v.id == Some(4)).unwrap();
        assert_eq!(e.sv2_error(), Some("bad-extranonce-size"));
        let e = verdicts.iter().find(|v| v.id == Some(3)).unwrap();
        assert_eq!(e.sv2_error(), Some("invalid-non-rollable-version-bit"));
    }

    /// A standard share hashes the same header as the header share of that header.
    #[test]
    fn standard_and_header_shares_hash_the_same_header() {
        let j = standard("a", 5, 6, true);
        let h = header_of(&j, j.version | 0x2000, 1005, 99);
        let mut tasks = Vec::new();
        for rec in [
            std_share(1, "a", j.version | 0x2000, 1005, 99),
            ShareRecord::header(2, &h, T),
        ] {
            let mut v = Validator::new(ValidationConfig::default());
            v.add_job(j.clone()).unwrap();
            let mut b = Batch::new();
            assert_eq!(status(v.check(&rec, &mut b)), None);
            let Some(Slot::Task(t)) = b.slots.first() else {
                panic!("queued");
            };
            tasks.push(b.tasks[*t as usize]);
        }
        assert_eq!(tasks[0], tasks[1]);
        assert_eq!(tasks[0].data, h);
    }
}
