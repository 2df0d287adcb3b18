//! The validation rules, in one place.
//!
//! A share goes through [`Validator::check`], which applies checks 1–6 of the contract in
//! order (malformed, unknown_job, stale, bad_version, bad_ntime, duplicate) on the host and,
//! when they all pass, queues a [`HashTask`] in a [`Batch`]. A backend hashes the batch's tasks
//! (the only expensive step, and the only one a backend does), and [`Batch::finish`] applies
//! check 7 (block / accepted / low_difficulty) and returns the verdicts in input order.

use super::job::{header_words_from_bytes, Job, JobCtx, JobError};
use super::share::{ShareData, ShareRecord, ShareView};
use super::target::{achieved_difficulty, U256};
use super::{Malformed, RecordError, Status, Verdict};
use crate::sha256::{soft, State};
use bytemuck::{Pod, Zeroable};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::hash::{BuildHasherDefault, Hasher};

/// The maps and sets of checks 2–6 hash with foldhash, seeded per process: they are looked up
/// once or twice per share, and SipHash (std's default) was the largest single cost of a
/// node's preparation stage. Their keys are either keyed fingerprints (`u128`, random to
/// anyone without the seed) or ids the pool itself chose (job ids, prevhashes in a window of
/// a few), so flooding them with colliding keys is not open to miners.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// A duplicate set: keyed 128-bit fingerprints, which are already uniformly random to anyone
/// without the validator's seed, so the set uses their low 64 bits as the hash instead of
/// hashing them again (the insert is once per share).
type FingerprintSet = std::collections::HashSet<u128, BuildHasherDefault<FingerprintHasher>>;

/// The hasher of [`FingerprintSet`]: the fingerprint's low half.
#[derive(Default)]
struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u128(&mut self, fp: u128) {
        self.0 = fp as u64;
    }

    /// Only `u128` keys are hashed here; anything else is folded in byte by byte all the same.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
}
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_128_with_seed;

mod audit;
mod jobs;
mod sv2;
use sv2::entry_ntime_limit;

/// Validation settings (the `[validation]` table of the config file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    /// A share's ntime may be at most this many seconds after its job's ntime. Default 7200.
    pub max_ntime_offset_s: u32,
    /// A share's ntime may be at most this many seconds after now: the share's Kafka
    /// timestamp in the node, the clock in `verify`. Consensus refuses a block whose time is
    /// more than 2 h past the receiving node's clock, and a job's own ntime may already be
    /// ahead of it, so the bound against the job alone let through blocks the network
    /// refuses; the margin below 2 h (as ckpool's 7000 s) leaves room for clocks that differ.
    /// Default 7000.
    pub max_ntime_future_s: u32,
    /// Live (not stale) jobs kept; beyond this the oldest is forgotten and its shares become
    /// unknown_job. In the node, jobs stamped after the share being judged do not count
    /// until its clock reaches them (see `max_jobs_ahead`). A pool with SV2 standard
    /// channels publishes one job per channel per template: set this above channels × jobs
    /// per block. Default 1024.
    pub max_live_jobs: usize,
    /// Service mode: jobs stamped after the share a validator is at, kept beyond
    /// `max_live_jobs`. A node behind its shares (a backlog, a partition taken over from a
    /// stopped node) has read the jobs published since; a share finds its job as long as no
    /// more than this many were published after it. The node's job log keeps
    /// `max_live_jobs + max_jobs_ahead` jobs for the same reason. Default 8192.
    pub max_jobs_ahead: usize,
    /// Stale job ids remembered (so their shares are `stale`, not `unknown_job`). Default 65536.
    pub max_stale_jobs: usize,
    /// Header shares are de-duplicated per prevhash; this many recent prevhashes keep their
    /// duplicate sets. Default 16.
    pub header_prevhash_window: usize,
    /// Service mode: a share is stale when a clean_jobs job was published (Kafka message
    /// timestamp) more than this many milliseconds before the share. Default 1000.
    pub stale_grace_ms: u64,
    /// Service mode: a job expires (with its duplicate set) this many seconds after it was
    /// published; later shares for it are stale. Default 600.
    pub job_ttl_s: u64,
    /// Entries the stratum shares' duplicate sets of one validator (a share partition) may
    /// hold together, about 80 bytes each. At the cap the oldest live job is retired early
    /// (its shares are `stale` from then on, its set freed), so memory stays bounded and no
    /// duplicate is ever accepted; a single job over the cap has its further shares `stale`.
    /// Header shares' sets have the same cap of their own. Default 4194304.
    pub max_seen_entries: usize,
    /// SV2 shares (standard and extended), service mode: ntime may run ahead of the job's
    /// min_ntime by the seconds since the job was published plus this slack (the SV2 mining
    /// protocol's rule, with room for the clocks of pool and broker to differ). Default 600.
    pub sv2_ntime_slack_s: u32,
    /// Judge header shares on their own (the header against its own nbits), without a job:
    /// for audits of historical headers (`verify --audit-headers`). Never set by the config
    /// file, and never in a node: there a header share must belong to a live job.
    #[serde(skip)]
    pub audit_headers: bool,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            max_ntime_offset_s: 7200,
            max_ntime_future_s: 7000,
            max_live_jobs: 1024,
            max_jobs_ahead: 8192,
            max_stale_jobs: 65536,
            header_prevhash_window: 16,
            stale_grace_ms: 1000,
            job_ttl_s: 600,
            max_seen_entries: 4 << 20,
            sv2_ntime_slack_s: 600,
            audit_headers: false,
        }
    }
}

/// One share to hash, in a form every backend (CPU, GPU, FPGA) can take as is: 104 bytes,
/// plain old data, referring to its job by index into the batch's job table.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct HashTask {
    /// Index into [`Batch::jobs`]; [`HashTask::HEADER`] for a header share.
    pub job: u32,
    /// Final block version (after version rolling).
    pub version: u32,
    pub ntime: u32,
    pub nonce: u32,
    /// Bytes of extranonce1 ‖ extranonce2 at the start of `data` (stratum shares).
    pub en_len: u32,
    pub reserved: u32,
    /// Stratum: extranonce1 ‖ extranonce2. Header share: the 80 header bytes.
    pub data: [u8; 80],
}

impl HashTask {
    /// `job` value of a header share.
    pub const HEADER: u32 = u32::MAX;

    pub fn is_header(&self) -> bool {
        self.job == Self::HEADER
    }

    pub fn extranonce(&self) -> &[u8] {
        &self.data[..self.en_len as usize]
    }
}

/// What check 7 needs about a queued task.
#[derive(Debug, Clone, Copy)]
pub struct TaskMeta {
    pub id: u64,
    pub share_target: U256,
    pub network_target: U256,
}

/// Outcome of [`Validator::check`].
#[derive(Debug)]
pub enum Prepared {
    /// Decided without hashing, with this status (the verdict is in the batch).
    Done(Status),
    /// Queued in the batch for hashing.
    Queued,
}

/// Where a share's verdict comes from, in input order: the next verdict decided before
/// hashing (`Batch::done` holds them in order) or a queued task (its index in
/// `Batch::tasks`). This keeps the per-share entry at 8 bytes instead of a whole [`Verdict`].
#[derive(Clone, Copy)]
enum Slot {
    Done,
    Task(u32),
}

/// Shares in input order, some decided and some waiting for their hash, plus the job table
/// the waiting ones refer to.
#[derive(Default)]
pub struct Batch {
    pub jobs: Vec<Arc<JobCtx>>,
    job_index: HashMap<u64, u32>,
    pub tasks: Vec<HashTask>,
    meta: Vec<TaskMeta>,
    slots: Vec<Slot>,
    done: Vec<Verdict>,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// A batch with room for `shares` shares, so that filling it does not reallocate (and
    /// copy) its task list as it grows.
    pub fn with_capacity(shares: usize) -> Batch {
        Batch {
            tasks: Vec::with_capacity(shares),
            meta: Vec::with_capacity(shares),
            slots: Vec::with_capacity(shares),
            ..Batch::default()
        }
    }

    /// Shares in the batch (decided and queued).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The targets of the queued tasks (`meta()[i]` for `tasks[i]`), for backends that compare
    /// on the device.
    pub fn meta(&self) -> &[TaskMeta] {
        &self.meta
    }

    /// Appends a verdict decided outside the validator (e.g. a line that is not JSON).
    pub fn push_verdict(&mut self, v: Verdict) {
        self.slots.push(Slot::Done);
        self.done.push(v);
    }

    /// Queues a task that passed checks 1–6.
    fn push_task(&mut self, task: HashTask, meta: TaskMeta) {
        self.slots.push(Slot::Task(self.tasks.len() as u32));
        self.tasks.push(task);
        self.meta.push(meta);
    }

    fn job_slot(&mut self, seq: u64, ctx: &Arc<JobCtx>) -> u32 {
        let jobs = &mut self.jobs;
        *self.job_index.entry(seq).or_insert_with(|| {
            jobs.push(ctx.clone());
            (jobs.len() - 1) as u32
        })
    }

    /// Check 7 on the hashes (one per task, as the backend returned them), and the verdicts of
    /// the whole batch in input order. Clears the batch for reuse.
    pub fn finish(&mut self, hashes: &[State]) -> Vec<Verdict> {
        let mut out = Vec::with_capacity(self.slots.len());
        self.finish_each(hashes, |v| out.push(v));
        out
    }

    /// [`Batch::finish`] handing each verdict to `f` in input order instead of collecting
    /// them, so that a caller that encodes verdicts straight away never holds the whole list.
    pub fn finish_each(&mut self, hashes: &[State], mut f: impl FnMut(Verdict)) {
        assert_eq!(hashes.len(), self.tasks.len(), "one hash per task");
        let mut done = self.done.drain(..);
        for slot in self.slots.drain(..) {
            f(match slot {
                Slot::Done => done.next().expect("one decided verdict per Done slot"),
                Slot::Task(i) => {
                    let i = i as usize;
                    classify(&self.jobs, &self.tasks[i], &self.meta[i], &hashes[i])
                }
            });
        }
        drop(done);
        self.jobs.clear();
        self.job_index.clear();
        self.tasks.clear();
        self.meta.clear();
    }
}

/// Check 7: block if hash ≤ network target, else accepted if hash ≤ share target, else
/// low_difficulty.
fn classify(jobs: &[Arc<JobCtx>], task: &HashTask, meta: &TaskMeta, hash: &State) -> Verdict {
    let value = U256::from_hash_state(hash);
    let status = if value <= meta.network_target {
        Status::Block
    } else if value <= meta.share_target {
        Status::Accepted
    } else {
        Status::LowDifficulty
    };
    let header = (status == Status::Block).then(|| Box::new(block_header(jobs, task)));
    Verdict {
        id: Some(meta.id),
        status,
        hash: Some(value.to_be_bytes()),
        difficulty: Some(achieved_difficulty(&value)),
        header,
        error: None,
        rolling_forbidden: false,
    }
}

/// The full header of a task, rebuilt on the host with the scalar reference (only for blocks,
/// which are rare, so backends return just the hash).
pub fn block_header(jobs: &[Arc<JobCtx>], task: &HashTask) -> [u8; 80] {
    if task.is_header() {
        return task.data;
    }
    let ctx = &jobs[task.job as usize];
    super::job::header_bytes(&reference_header_words(ctx, task))
}

/// The twenty header words of a stratum task, computed with the scalar reference: the
/// definition every backend's hashing must match.
pub fn reference_header_words(ctx: &JobCtx, task: &HashTask) -> [u32; 20] {
    let en = task.extranonce();
    let mut s = ctx.coinb1_midstate;
    for i in 0..ctx.tail_blocks(en.len()) {
        soft::compress(&mut s, &ctx.tail_block(en, i));
    }
    let mut root = soft::sha256_32(&s);
    for b in &ctx.branch {
        root = soft::sha256d_64(&root, b);
    }
    ctx.header_words(task.version, &root, task.ntime, task.nonce)
}

/// The hash of a task by the scalar reference.
pub fn reference_hash(jobs: &[Arc<JobCtx>], task: &HashTask) -> State {
    if task.is_header() {
        soft::sha256d_80(&header_words_from_bytes(&task.data))
    } else {
        soft::sha256d_80(&reference_header_words(&jobs[task.job as usize], task))
    }
}

struct JobEntry {
    ctx: Arc<JobCtx>,
    seq: u64,
    /// The fingerprint of the job's work ([`work_of`]): the key of its duplicate set.
    work: u128,
    /// A standard job: the key its header shares find it by ([`root_key`]).
    root_key: Option<u128>,
    /// Service mode: when the job was published (ms since the epoch).
    published_ms: Option<i64>,
    /// Service mode: shares stamped after this instant are stale (a clean job superseded this
    /// one). The entry, and its duplicate set, stays until the clock is well past it, because
    /// shares stamped before it may still arrive.
    stale_after_ms: Option<i64>,
}

/// How long a superseded job's entry outlives its stale instant, in ms of the validator's
/// clock: the clock is the newest timestamp seen, and shares from other producers in the same
/// partition can carry slightly older stamps; they must still find the job (and its duplicate
/// set) rather than be called stale or let a duplicate through.
const SUPERSEDED_SLACK_MS: i64 = 10_000;

/// Job sequence numbers are unique in the process, not per validator: a [`Batch`] indexes its
/// job table by them, and the service fills one batch from the validators of several
/// partitions.
static NEXT_JOB_SEQ: AtomicU64 = AtomicU64::new(0);

/// The duplicate set of one piece of work, shared by the live jobs that carry it.
#[derive(Default)]
struct WorkSet {
    seen: FingerprintSet,
    /// Live jobs with this work; the set goes with the last of them.
    jobs: u32,
}

/// A fingerprint of what a job's shares hash besides their own fields: prevhash, nbits, the
/// coinbase parts and the merkle branch. Two jobs with the same work (a job re-issued under
/// a new id) make the same header from the same share fields, and one header is one proof
/// of work, so they share one duplicate set: the copy of a share sent under the other job
/// id is a duplicate.
fn work_of(job: &Job, seed: u64) -> u128 {
    let mut b =
        Vec::with_capacity(64 + job.coinb1.len() + job.coinb2.len() + 32 * job.merkle_branch.len());
    b.extend_from_slice(&job.prevhash);
    b.extend_from_slice(&job.nbits.to_le_bytes());
    b.extend_from_slice(&(job.coinb1.len() as u32).to_le_bytes());
    b.extend_from_slice(&job.coinb1);
    b.extend_from_slice(&(job.coinb2.len() as u32).to_le_bytes());
    b.extend_from_slice(&job.coinb2);
    for h in &job.merkle_branch {
        b.extend_from_slice(h);
    }
    if let Some(root) = &job.merkle_root {
        b.push(b'R');
        b.extend_from_slice(root);
    }
    xxh3_128_with_seed(&b, seed)
}

/// The duplicate-set key of a stratum share: its decoded fields and the rolled version (the
/// work is implied by the set).
fn stratum_fingerprint(
    en1: &[u8],
    en2: &[u8],
    ntime: u32,
    nonce: u32,
    version: u32,
    seed: u64,
) -> u128 {
    let mut key = [0u8; 46];
    key[0] = en1.len() as u8;
    key[1] = en2.len() as u8;
    key[2..6].copy_from_slice(&ntime.to_le_bytes());
    key[6..10].copy_from_slice(&nonce.to_le_bytes());
    key[10..14].copy_from_slice(&version.to_le_bytes());
    key[14..14 + en1.len()].copy_from_slice(en1);
    let e2 = 14 + en1.len();
    key[e2..e2 + en2.len()].copy_from_slice(en2);
    xxh3_128_with_seed(&key[..e2 + en2.len()], seed)
}

/// Jobs seen so far and the duplicate sets: the state that checks 2–6 need.
pub struct Validator {
    cfg: ValidationConfig,
    live: HashMap<String, JobEntry>,
    /// Stratum shares' duplicate sets, by the work of their jobs.
    work_sets: HashMap<u128, WorkSet>,
    /// Entries in `work_sets`, all together (bounded by `max_seen_entries`).
    stratum_seen: usize,
    /// Entries in `headers_seen`, all together (bounded by `max_seen_entries`).
    header_seen: usize,
    jobs_retired_early: u64,
    /// Live job ids in arrival order, for eviction beyond `max_live_jobs`.
    live_order: VecDeque<(String, u64)>,
    stale: HashSet<String>,
    stale_order: VecDeque<String>,
    /// Standard jobs by [`root_key`] (prevhash, merkle root, nbits): how a header share
    /// finds the job it belongs to.
    by_root: HashMap<u128, String>,
    /// Root keys of retired standard jobs, so that their header shares are `stale`, not
    /// `unknown_job` (at most `max_stale_jobs`, oldest forgotten first).
    stale_roots: HashSet<u128>,
    stale_roots_order: VecDeque<u128>,
    /// Header shares' duplicate sets per prevhash, oldest first, at most
    /// `header_prevhash_window` of them: a window of a few, searched newest first, finds the
    /// current prevhash at once where a map would hash 32 bytes per share.
    headers_seen: VecDeque<([u8; 32], FingerprintSet)>,
    /// Service mode: the newest timestamp seen (jobs and shares), in ms.
    clock_ms: i64,
    /// Service mode: the earliest instant at which some live entry expires or turns stale,
    /// so that advancing the clock is a comparison, not a scan, for almost every share.
    next_expiry_ms: i64,
    /// Service mode: the newest live jobs, from the first one stamped after the clock (id,
    /// seq, stamp), in arrival order: they do not count toward `max_live_jobs` until the
    /// clock passes them ([`Validator::cap_live_jobs`]). Dead entries are skipped.
    ahead: VecDeque<(String, u64, i64)>,
    /// Live jobs among `ahead` (every live job from its first entry's seq on).
    ahead_live: usize,
    /// Seed of the duplicate fingerprints, random per process so that nobody can aim at a
    /// collision.
    seed: u64,
}

impl Validator {
    pub fn new(cfg: ValidationConfig) -> Validator {
        Validator {
            cfg,
            live: HashMap::default(),
            work_sets: HashMap::default(),
            stratum_seen: 0,
            header_seen: 0,
            jobs_retired_early: 0,
            live_order: VecDeque::new(),
            stale: HashSet::default(),
            stale_order: VecDeque::new(),
            by_root: HashMap::default(),
            stale_roots: HashSet::default(),
            stale_roots_order: VecDeque::new(),
            headers_seen: VecDeque::new(),
            clock_ms: i64::MIN,
            next_expiry_ms: i64::MAX,
            ahead: VecDeque::new(),
            ahead_live: 0,
            seed: rand::random(),
        }
    }

    pub fn config(&self) -> &ValidationConfig {
        &self.cfg
    }

    /// Live jobs held.
    pub fn live_jobs(&self) -> usize {
        self.live.len()
    }

    /// Duplicate-set entries held (for metrics and memory checks).
    pub fn seen_entries(&self) -> usize {
        self.stratum_seen + self.header_seen
    }

    /// Adds a job. With clean_jobs, every other job becomes stale and its duplicate set is
    /// dropped (a stale share is rejected before the duplicate check, so the set is dead).
    /// Re-sending an identical job changes nothing; a different job under a known id replaces
    /// it with a fresh duplicate set.
    pub fn add_job(&mut self, job: Job) -> Result<(), JobError> {
        self.insert_job(job, None)
    }

    /// Service mode: adds a job published at `ts_ms` (its Kafka message timestamp). Unlike
    /// [`Validator::add_job`], a clean job does not make the others stale at once: their
    /// shares stamped up to `ts_ms + stale_grace_ms` are still judged normally (see
    /// [`Validator::check_at`]). Jobs expire `job_ttl_s` after they were published.
    ///
    /// A job does not move the clock: only shares do. A node behind on its partition (after
    /// a restart, a broker outage or a partition move) holds jobs much newer than the shares
    /// it validates, and those shares are judged by their own stamps, as they would have been
    /// without the delay.
    pub fn add_job_at(&mut self, job: Job, ts_ms: i64) -> Result<(), JobError> {
        self.insert_job(job, Some(ts_ms))
    }

    /// [`Validator::add_job_at`] for a job whose context is built already. The service
    /// builds it once per job and shares it among the validators of all its partitions,
    /// instead of building (and cloning the job for) one per partition.
    pub fn add_job_ctx_at(&mut self, ctx: Arc<JobCtx>, ts_ms: i64) {
        self.insert_ctx(ctx, Some(ts_ms))
    }

    /// The latest ntime a share stamped `ts` (ms; None: now by the clock) may carry.
    fn latest_ntime(&self, ts: Option<i64>) -> u32 {
        let now_s = match ts {
            Some(t) => t.div_euclid(1000),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        };
        now_s
            .saturating_add(self.cfg.max_ntime_future_s as i64)
            .clamp(0, u32::MAX as i64) as u32
    }

    /// Jobs retired before their time because the duplicate sets were full.
    pub fn jobs_retired_early(&self) -> u64 {
        self.jobs_retired_early
    }

    /// Checks 1–6 for one share; queues it in `batch` for hashing when they pass.
    pub fn check(&mut self, rec: &ShareRecord, batch: &mut Batch) -> Prepared {
        self.check_with(rec, None, batch)
    }

    /// Service mode: checks 1–6 for a share stamped `ts_ms` (its Kafka message timestamp).
    /// Check 3 is decided by time: the share is stale when a clean job superseded its job
    /// more than `stale_grace_ms` before `ts_ms`, or when its job expired.
    pub fn check_at(&mut self, rec: &ShareRecord, ts_ms: i64, batch: &mut Batch) -> Prepared {
        self.advance(ts_ms);
        self.check_with(rec, Some(ts_ms), batch)
    }

    /// Service mode: records a share stamped `ts_ms` as seen, without a verdict and without
    /// hashing. It goes through checks 1–6 exactly as [`Validator::check_at`] would take it,
    /// so it lands in a duplicate set only where a validated share would have; a later share
    /// with the same bytes is then a `duplicate`. This is how a node that gains a share
    /// partition rebuilds the duplicate sets of the shares validated before its committed
    /// offset (by replaying them). Returns true when the share was recorded (it passed 1–6).
    pub fn record_seen_at(&mut self, rec: &ShareRecord, ts_ms: i64) -> bool {
        self.advance(ts_ms);
        self.check_inner(rec, Some(ts_ms), None).is_ok()
    }

    fn check_with(&mut self, rec: &ShareRecord, ts: Option<i64>, batch: &mut Batch) -> Prepared {
        let v = match self.check_inner(rec, ts, Some(&mut *batch)) {
            Ok(()) => return Prepared::Queued,
            Err(v) => v,
        };
        let status = v.status;
        batch.push_verdict(v);
        Prepared::Done(status)
    }

    /// Checks 1–6; a share that passes is queued in `batch` for hashing, or, without a batch,
    /// only recorded in its duplicate set.
    fn check_inner(
        &mut self,
        rec: &ShareRecord,
        ts: Option<i64>,
        batch: Option<&mut Batch>,
    ) -> Result<(), Verdict> {
        // 1. malformed
        let view = rec
            .check()
            .map_err(|e| Verdict::malformed(Some(rec.id()), Malformed::Record(e)))?;
        match view.data {
            ShareData::Header {
                header,
                network_target,
            } if self.cfg.audit_headers => self.check_header(&view, header, network_target, batch),
            ShareData::Header { header, .. } => self.check_bound_header(&view, header, ts, batch),
            ShareData::Standard {
                job_id,
                ntime,
                nonce,
                version,
            } => {
                let share = sv2::StandardShare {
                    version,
                    ntime,
                    nonce,
                };
                self.check_standard(&view, job_id, share, ts, batch)
            }
            ShareData::Stratum { .. } => self.check_stratum(&view, ts, batch),
        }
    }

    /// Checks 2–6 of a stratum share (1 is done).
    fn check_stratum(
        &mut self,
        view: &ShareView<'_>,
        ts: Option<i64>,
        batch: Option<&mut Batch>,
    ) -> Result<(), Verdict> {
        let id = view.id;
        let ShareData::Stratum {
            job_id,
            extranonce1,
            extranonce2,
            ntime,
            nonce,
            version_bits,
            full_version,
        } = view.data
        else {
            return Ok(());
        };
        let latest = self.latest_ntime(ts);
        // 2. unknown_job, 3. stale
        let Some(entry) = self.live.get_mut(job_id) else {
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
        let ctx = &entry.ctx;
        if ctx.job.merkle_root.is_some() {
            let e = RecordError::JobKind;
            return Err(Verdict::malformed(Some(id), e.into()));
        }
        // 1 (for this job). The coinbase must be the one the job meant: its extranonce slot
        // filled exactly (SRI's bad-extranonce-size).
        let en_len = extranonce1.len() + extranonce2.len();
        if ctx
            .job
            .extranonce_size
            .is_some_and(|n| n as usize != en_len)
        {
            let e = RecordError::ExtranonceSize(en_len as u8);
            return Err(Verdict::malformed(Some(id), e.into()));
        }
        // 4. bad_version: only the bits the job lets roll may differ from its version
        // (BIP310's version_bits carry the rolled bits; an SV2 share the full version).
        let version = match version_bits {
            Some(v) if full_version => {
                if (v ^ ctx.job.version) & !ctx.job.version_mask != 0 {
                    return Err(Verdict::bad_version(id, ctx.job.version_mask));
                }
                v
            }
            Some(v) if v & !ctx.job.version_mask != 0 => {
                return Err(Verdict::bad_version(id, ctx.job.version_mask));
            }
            _ => ctx.rolled_version(version_bits),
        };
        // 5. bad_ntime: not before the job, not long after it, not too far in the future
        // (nor, for an SV2 share, further ahead than the time since the job came).
        let hi = entry_ntime_limit(entry, ts, full_version, &self.cfg).min(latest);
        if ntime < ctx.job.ntime || ntime > hi {
            return Err(Verdict::rejected(id, Status::BadNtime));
        }
        // 6. duplicate, on decoded bytes (the work is implied by the set: one per work,
        // shared by the jobs that carry it).
        let fp = stratum_fingerprint(extranonce1, extranonce2, ntime, nonce, version, self.seed);
        let work = entry.work;
        let seen = &mut self.work_sets.entry(work).or_default().seen;
        if seen.contains(&fp) {
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
        let mut task = HashTask::zeroed();
        let (ctx, seq) = (entry.ctx.clone(), entry.seq);
        task.job = batch.job_slot(seq, &ctx);
        task.version = version;
        task.ntime = ntime;
        task.nonce = nonce;
        let n1 = extranonce1.len();
        task.en_len = (n1 + extranonce2.len()) as u32;
        task.data[..n1].copy_from_slice(extranonce1);
        task.data[n1..n1 + extranonce2.len()].copy_from_slice(extranonce2);
        batch.push_task(
            task,
            TaskMeta {
                id,
                share_target: view.target,
                network_target: ctx.network_target,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::job::DEFAULT_VERSION_MASK;
    use crate::model::share::ShareTarget;

    /// A job whose coinbase differs with its id, as real jobs' do.
    fn job(id: &str, clean: bool) -> Job {
        Job {
            job_id: id.into(),
            prevhash: [1; 32],
            coinb1: [vec![1; 40], id.as_bytes().to_vec()].concat(),
            coinb2: vec![2; 60],
            merkle_branch: vec![[3; 32]; 2],
            version: 0x2000_0000,
            nbits: 0x1703_4219,
            ntime: 1000,
            clean_jobs: clean,
            version_mask: DEFAULT_VERSION_MASK,
            extranonce_size: None,
            merkle_root: None,
            step: Default::default(),
        }
    }

    fn share(id: u64, job: &str, nonce: u32) -> ShareRecord {
        ShareRecord::stratum(
            id,
            job,
            &[9, 9, 9, 9],
            &[0, 0, 0, 1],
            1000,
            nonce,
            None,
            ShareTarget::Difficulty(1.0),
        )
    }

    /// One header is one proof of work: the same share under another job id whose coinbase
    /// and merkle branch are the same (a re-issued job) is a duplicate, and the set lives on
    /// while any job with that work does. Jobs with other work keep their own sets.
    #[test]
    fn duplicates_are_found_by_the_work_across_job_ids() {
        let mut v = Validator::new(ValidationConfig::default());
        let mut b = Batch::new();
        let mut again = job("a", true);
        again.job_id = "a2".into();
        again.clean_jobs = false;
        v.add_job(job("a", true)).unwrap();
        v.add_job(again).unwrap();
        v.add_job(job("other", false)).unwrap();
        assert!(matches!(
            v.check(&share(1, "a", 7), &mut b),
            Prepared::Queued
        ));
        assert!(matches!(
            v.check(&share(2, "a2", 7), &mut b),
            Prepared::Done(Status::Duplicate)
        ));
        assert!(matches!(
            v.check(&share(3, "other", 7), &mut b),
            Prepared::Queued
        ));
        assert_eq!(v.seen_entries(), 2);
        // "a" replaced by other work under the same id: the set stays with "a2".
        let mut changed = job("a", false);
        changed.coinb2 = vec![5; 60];
        v.add_job(changed).unwrap();
        assert!(matches!(
            v.check(&share(4, "a2", 7), &mut b),
            Prepared::Done(Status::Duplicate)
        ));
        assert!(matches!(
            v.check(&share(5, "a", 7), &mut b),
            Prepared::Queued
        ));
    }

    /// A share's ntime is bounded by now + max_ntime_future_s as well as by its job's ntime:
    /// with a job ntime 89 s ahead of the clock, ntime = job + 7200 would be a block the
    /// network refuses (more than 2 h ahead of its clock).
    #[test]
    fn ntime_is_bounded_by_now_too() {
        let now_s = 1_796_000_000u32;
        let mut v = Validator::new(ValidationConfig::default());
        let mut j = job("t", true);
        j.ntime = now_s + 89;
        v.add_job_at(j, now_s as i64 * 1000).unwrap();
        let at = |ntime: u32, id: u64| {
            ShareRecord::stratum(
                id,
                "t",
                &[9; 4],
                &[0, 0, 0, 1],
                ntime,
                id as u32,
                None,
                ShareTarget::Difficulty(1.0),
            )
        };
        let mut b = Batch::new();
        let ts = now_s as i64 * 1000;
        assert!(matches!(
            v.check_at(&at(now_s + 89 + 7200, 1), ts, &mut b),
            Prepared::Done(Status::BadNtime)
        ));
        assert!(matches!(
            v.check_at(&at(now_s + 7001, 2), ts, &mut b),
            Prepared::Done(Status::BadNtime)
        ));
        assert!(matches!(
            v.check_at(&at(now_s + 7000, 3), ts, &mut b),
            Prepared::Queued
        ));
        // Without a timestamp (verify), now is the clock: a job of today is bounded too.
        let mut v = Validator::new(ValidationConfig::default());
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        let mut j = job("t", true);
        j.ntime = clock;
        v.add_job(j).unwrap();
        assert!(matches!(
            v.check(&at(clock + 7190, 4), &mut b),
            Prepared::Done(Status::BadNtime)
        ));
        assert!(matches!(
            v.check(&at(clock + 60, 5), &mut b),
            Prepared::Queued
        ));
    }

    /// The duplicate sets are capped: at the cap the oldest job is retired early (its shares
    /// stale from then on), a job alone over the cap gets its further shares stale, and a
    /// duplicate is never accepted on the way.
    #[test]
    fn the_duplicate_sets_are_capped_by_retiring_the_oldest_jobs() {
        let mut v = Validator::new(ValidationConfig {
            max_seen_entries: 100,
            ..Default::default()
        });
        let mut b = Batch::new();
        v.add_job(job("a", true)).unwrap();
        v.add_job(job("b", false)).unwrap();
        for n in 0..60u32 {
            assert!(matches!(
                v.check(&share(n as u64, "a", n), &mut b),
                Prepared::Queued
            ));
        }
        for n in 0..40u32 {
            assert!(matches!(
                v.check(&share(n as u64, "b", n), &mut b),
                Prepared::Queued
            ));
        }
        assert_eq!(v.seen_entries(), 100);
        // The cap: "a" goes, "b" goes on.
        assert!(matches!(
            v.check(&share(500, "b", 40), &mut b),
            Prepared::Queued
        ));
        assert_eq!(v.jobs_retired_early(), 1);
        assert_eq!(v.seen_entries(), 41);
        assert!(matches!(
            v.check(&share(501, "a", 70), &mut b),
            Prepared::Done(Status::Stale)
        ));
        assert!(matches!(
            v.check(&share(502, "b", 3), &mut b),
            Prepared::Done(Status::Duplicate)
        ));
        for n in 41..100u32 {
            assert!(matches!(
                v.check(&share(n as u64, "b", n), &mut b),
                Prepared::Queued
            ));
        }
        // "b" alone holds the cap: its new shares are stale, its copies still duplicates.
        assert!(matches!(
            v.check(&share(600, "b", 100), &mut b),
            Prepared::Done(Status::Stale)
        ));
        assert!(matches!(
            v.check(&share(601, "b", 7), &mut b),
            Prepared::Done(Status::Duplicate)
        ));
        assert_eq!(v.seen_entries(), 100);
    }

    /// Header shares' sets have the same cap: the oldest prevhash's set goes first.
    #[test]
    fn the_header_duplicate_sets_are_capped_too() {
        let mut v = Validator::new(ValidationConfig {
            max_seen_entries: 10,
            audit_headers: true,
            ..Default::default()
        });
        let mut b = Batch::new();
        let header = |prev: u8, nonce: u32| {
            let mut h = [0u8; 80];
            h[4..36].copy_from_slice(&[prev; 32]);
            h[76..].copy_from_slice(&nonce.to_le_bytes());
            ShareRecord::header(nonce as u64, &h, ShareTarget::Difficulty(1.0))
        };
        for n in 0..10 {
            assert!(matches!(v.check(&header(1, n), &mut b), Prepared::Queued));
        }
        assert!(matches!(
            v.check(&header(1, 10), &mut b),
            Prepared::Done(Status::Stale)
        ));
        assert!(matches!(v.check(&header(2, 0), &mut b), Prepared::Queued));
        assert_eq!(v.seen_entries(), 1, "the old prevhash's set went");
        assert!(matches!(
            v.check(&header(2, 0), &mut b),
            Prepared::Done(Status::Duplicate)
        ));
    }

    #[test]
    fn duplicate_sets_are_dropped_when_jobs_go_stale_or_are_evicted() {
        let mut v = Validator::new(ValidationConfig {
            max_live_jobs: 3,
            max_stale_jobs: 2,
            ..Default::default()
        });
        let mut b = Batch::new();
        v.add_job(job("a", true)).unwrap();
        v.add_job(job("b", false)).unwrap();
        for n in 0..100 {
            v.check(&share(n as u64, "a", n), &mut b);
            v.check(&share(n as u64, "b", n), &mut b);
        }
        assert_eq!(v.seen_entries(), 200);
        assert!(matches!(
            v.check(&share(1, "a", 5), &mut b),
            Prepared::Done(Status::Duplicate)
        ));
        // A clean job: a and b are stale, their sets gone.
        v.add_job(job("c", true)).unwrap();
        assert_eq!(v.seen_entries(), 0);
        assert_eq!(v.live_jobs(), 1);
        assert!(matches!(
            v.check(&share(1, "a", 5), &mut b),
            Prepared::Done(Status::Stale)
        ));
        // Eviction beyond max_live_jobs: the oldest live job is forgotten.
        for id in ["d", "e", "f"] {
            v.add_job(job(id, false)).unwrap();
        }
        assert_eq!(v.live_jobs(), 3);
        assert!(matches!(
            v.check(&share(1, "c", 5), &mut b),
            Prepared::Done(Status::UnknownJob)
        ));
        // Stale ids are bounded too: after two more clean jobs, "a" is forgotten.
        v.add_job(job("g", true)).unwrap();
        v.add_job(job("h", true)).unwrap();
        assert!(matches!(
            v.check(&share(1, "a", 5), &mut b),
            Prepared::Done(Status::UnknownJob)
        ));
        assert!(matches!(
            v.check(&share(1, "g", 5), &mut b),
            Prepared::Done(Status::Stale)
        ));
    }

    #[test]
    fn resent_job_keeps_its_duplicates_and_a_changed_one_resets_them() {
        let mut v = Validator::new(ValidationConfig::default());
        let mut b = Batch::new();
        v.add_job(job("a", true)).unwrap();
        assert!(matches!(
            v.check(&share(1, "a", 1), &mut b),
            Prepared::Queued
        ));
        v.add_job(job("a", true)).unwrap();
        assert!(matches!(
            v.check(&share(2, "a", 1), &mut b),
            Prepared::Done(Status::Duplicate)
        ));
        let mut changed = job("a", true);
        changed.ntime = 1001;
        v.add_job(changed).unwrap();
        assert!(matches!(
            v.check(&share(3, "a", 1), &mut b),
            Prepared::Done(Status::BadNtime)
        ));
    }

    #[test]
    fn jobs_ahead_of_the_clock_do_not_push_out_the_job_of_an_earlier_share() {
        // A node reading the job log ahead of its shares (a backlog, a partition move) holds
        // more jobs than max_live_jobs: the share stamped before the newer jobs still finds
        // its own, and it is forgotten once the clock has passed enough newer jobs.
        let mut v = Validator::new(ValidationConfig {
            max_live_jobs: 3,
            ..Default::default()
        });
        let mut b = Batch::new();
        for (i, id) in ["a", "b", "c", "d", "e", "f"].into_iter().enumerate() {
            v.add_job_at(job(id, false), 1_000 * (i as i64 + 1))
                .unwrap();
        }
        assert_eq!(v.live_jobs(), 6);
        assert!(matches!(
            v.check_at(&share(1, "a", 1), 1_500, &mut b),
            Prepared::Queued
        ));
        // At 4.5 s four jobs are reached: the oldest goes.
        assert!(matches!(
            v.check_at(&share(2, "b", 1), 4_500, &mut b),
            Prepared::Queued
        ));
        assert!(matches!(
            v.check_at(&share(3, "a", 2), 4_500, &mut b),
            Prepared::Done(Status::UnknownJob)
        ));
        assert!(matches!(
            v.check_at(&share(4, "c", 1), 6_500, &mut b),
            Prepared::Done(Status::UnknownJob)
        ));
        assert_eq!(v.live_jobs(), 3);
    }

    #[test]
    fn a_superseded_job_pushed_out_by_max_live_jobs_is_stale_not_unknown() {
        // Within the slack after a clean job the superseded jobs are still live; pushed out
        // by newer ones they are remembered as stale, which `verify` (by arrival) says.
        let mut v = Validator::new(ValidationConfig {
            max_live_jobs: 2,
            max_jobs_ahead: 0,
            ..Default::default()
        });
        let mut b = Batch::new();
        v.add_job_at(job("old", false), 1_000).unwrap();
        v.add_job_at(job("new", true), 2_000).unwrap();
        v.add_job_at(job("next", false), 3_000).unwrap();
        v.add_job_at(job("last", false), 3_500).unwrap();
        assert!(matches!(
            v.check_at(&share(1, "old", 1), 4_000, &mut b),
            Prepared::Done(Status::Stale)
        ));
        assert!(matches!(
            v.check_at(&share(2, "next", 1), 4_000, &mut b),
            Prepared::Queued
        ));
    }

    #[test]
    fn the_count_of_jobs_ahead_stays_exact_under_random_jobs_and_shares() {
        let mut v = Validator::new(ValidationConfig {
            max_live_jobs: 8,
            max_jobs_ahead: 6,
            job_ttl_s: 5,
            ..Default::default()
        });
        let mut b = Batch::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..5_000u64 {
            let r = next();
            let t = 1_000 * (i as i64 / 4) + (r % 30_000) as i64 - 10_000;
            if r % 3 == 0 {
                let _ = v.check_at(&share(i, &format!("j{}", r % 40), i as u32), t, &mut b);
            } else {
                let clean = r % 17 == 0;
                v.add_job_at(job(&format!("j{}", r % 40), clean), t)
                    .unwrap();
            }
            let counted = v
                .ahead
                .iter()
                .filter(|(id, s, _)| v.live.get(id).is_some_and(|e| e.seq == *s))
                .count();
            assert_eq!(v.ahead_live, counted, "step {i}");
            assert!(v.live_jobs() <= 14, "step {i}: {} live", v.live_jobs());
        }
    }

    #[test]
    fn jobs_ahead_of_the_clock_are_kept_up_to_max_jobs_ahead() {
        // A partition whose shares stop while jobs keep coming: the clock never reaches
        // them, and max_jobs_ahead bounds what its validator holds.
        let mut v = Validator::new(ValidationConfig {
            max_live_jobs: 2,
            max_jobs_ahead: 3,
            ..Default::default()
        });
        let mut b = Batch::new();
        assert!(matches!(
            v.check_at(&share(1, "none", 1), 500, &mut b),
            Prepared::Done(Status::UnknownJob)
        ));
        for i in 0..20 {
            v.add_job_at(job(&format!("j{i}"), false), 1_000 * (i + 1))
                .unwrap();
            assert!(v.live_jobs() <= 5, "{} live jobs", v.live_jobs());
        }
        // The newest five are kept (the oldest of the ahead ones go first).
        assert!(matches!(
            v.check_at(&share(2, "j15", 1), 600, &mut b),
            Prepared::Queued
        ));
        assert!(matches!(
            v.check_at(&share(3, "j14", 1), 600, &mut b),
            Prepared::Done(Status::UnknownJob)
        ));
    }

    #[test]
    fn a_shared_job_context_keeps_duplicate_sets_per_validator() {
        // The service builds a job's context once and hands it to every partition's
        // validator: each keeps its own duplicate set, and re-adding the same context (a
        // validator catching up on the job log again) resets nothing.
        let ctx = Arc::new(JobCtx::new(job("a", true)).unwrap());
        let (mut v1, mut v2) = (
            Validator::new(ValidationConfig::default()),
            Validator::new(ValidationConfig::default()),
        );
        let mut b = Batch::new();
        v1.add_job_ctx_at(ctx.clone(), 1_000);
        v2.add_job_ctx_at(ctx.clone(), 1_000);
        let s = share(1, "a", 1);
        assert!(matches!(v1.check_at(&s, 2_000, &mut b), Prepared::Queued));
        assert!(matches!(v2.check_at(&s, 2_000, &mut b), Prepared::Queued));
        v1.add_job_ctx_at(ctx.clone(), 1_000);
        assert!(matches!(
            v1.check_at(&share(2, "a", 1), 2_000, &mut b),
            Prepared::Done(Status::Duplicate)
        ));
        assert!(matches!(
            v1.check_at(&share(3, "b", 1), 2_000, &mut b),
            Prepared::Done(Status::UnknownJob)
        ));
    }

    #[test]
    fn header_duplicate_sets_are_bounded_by_prevhash_window() {
        let mut v = Validator::new(ValidationConfig {
            header_prevhash_window: 2,
            audit_headers: true,
            ..Default::default()
        });
        let mut b = Batch::new();
        let hdr = |prev: u8| {
            let mut h = [0u8; 80];
            h[4..36].fill(prev);
            h[72..76].copy_from_slice(&0x1d00ffffu32.to_le_bytes());
            ShareRecord::header(7, &h, ShareTarget::Difficulty(1.0))
        };
        v.check(&hdr(1), &mut b);
        assert!(matches!(
            v.check(&hdr(1), &mut b),
            Prepared::Done(Status::Duplicate)
        ));
        v.check(&hdr(2), &mut b);
        v.check(&hdr(3), &mut b);
        assert_eq!(v.seen_entries(), 2);
        // prevhash 1 fell out of the window: its set is gone.
        assert!(matches!(v.check(&hdr(1), &mut b), Prepared::Queued));
    }

    fn status(p: Prepared) -> Option<Status> {
        match p {
            Prepared::Done(s) => Some(s),
            Prepared::Queued => None,
        }
    }

    #[test]
    fn staleness_by_time_honours_the_grace_and_keeps_duplicates() {
        let mut v = Validator::new(ValidationConfig {
            stale_grace_ms: 500,
            ..Default::default()
        });
        let mut b = Batch::new();
        v.add_job_at(job("a", true), 1_000).unwrap();
        assert_eq!(status(v.check_at(&share(1, "a", 1), 1_100, &mut b)), None);
        // A clean job at t = 2000: "a" is stale only for shares stamped after 2500.
        v.add_job_at(job("b", true), 2_000).unwrap();
        assert_eq!(status(v.check_at(&share(2, "a", 2), 1_900, &mut b)), None);
        assert_eq!(status(v.check_at(&share(3, "a", 3), 2_500, &mut b)), None);
        // Within the grace the duplicate set still works.
        assert_eq!(
            status(v.check_at(&share(4, "a", 1), 2_400, &mut b)),
            Some(Status::Duplicate)
        );
        assert_eq!(
            status(v.check_at(&share(5, "a", 4), 2_501, &mut b)),
            Some(Status::Stale)
        );
        // A share stamped before the clean job, arriving after later shares, is still judged
        // on its merits.
        assert_eq!(status(v.check_at(&share(6, "a", 5), 1_950, &mut b)), None);
        assert_eq!(status(v.check_at(&share(7, "b", 1), 2_600, &mut b)), None);
        // Long after the grace the superseded entry and its set are gone; shares are stale.
        v.check_at(&share(8, "b", 2), 2_500 + SUPERSEDED_SLACK_MS + 1, &mut b);
        assert_eq!(v.live_jobs(), 1);
        assert_eq!(
            status(v.check_at(&share(9, "a", 9), 1_000, &mut b)),
            Some(Status::Stale)
        );
    }

    #[test]
    fn jobs_expire_after_their_ttl_with_their_duplicate_sets() {
        let mut v = Validator::new(ValidationConfig {
            job_ttl_s: 10,
            ..Default::default()
        });
        let mut b = Batch::new();
        v.add_job_at(job("a", false), 0).unwrap();
        v.add_job_at(job("b", false), 5_000).unwrap();
        assert_eq!(status(v.check_at(&share(1, "a", 1), 9_999, &mut b)), None);
        assert_eq!(v.seen_entries(), 1);
        assert_eq!(
            status(v.check_at(&share(2, "a", 2), 10_000, &mut b)),
            Some(Status::Stale)
        );
        assert_eq!(v.live_jobs(), 1);
        assert_eq!(v.seen_entries(), 0);
        assert_eq!(status(v.check_at(&share(3, "b", 1), 14_999, &mut b)), None);
        // A job message does not move the clock; the next share does.
        v.add_job_at(job("c", false), 15_000).unwrap();
        assert_eq!(v.live_jobs(), 2);
        assert_eq!(status(v.check_at(&share(4, "c", 1), 15_000, &mut b)), None);
        assert_eq!(v.live_jobs(), 1);
    }

    #[test]
    fn a_backlog_is_judged_by_the_shares_own_stamps() {
        // The validator holds jobs published long after the shares it validates (the node is
        // catching up): a share stamped before the clean job that superseded its job is not
        // stale, however new the newest job is.
        let mut v = Validator::new(ValidationConfig {
            stale_grace_ms: 0,
            ..Default::default()
        });
        let mut b = Batch::new();
        v.add_job_at(job("a", true), 1_000).unwrap();
        v.add_job_at(job("b", true), 2_000).unwrap();
        v.add_job_at(job("c", true), 2_000 + 5 * SUPERSEDED_SLACK_MS)
            .unwrap();
        assert_eq!(status(v.check_at(&share(1, "a", 1), 1_500, &mut b)), None);
        assert_eq!(
            status(v.check_at(&share(2, "a", 2), 2_001, &mut b)),
            Some(Status::Stale)
        );
        assert_eq!(status(v.check_at(&share(3, "b", 2), 2_001, &mut b)), None);
    }

    #[test]
    fn shares_recorded_without_verdict_make_later_copies_duplicates() {
        let mut v = Validator::new(ValidationConfig {
            stale_grace_ms: 0,
            ..Default::default()
        });
        let mut b = Batch::new();
        v.add_job_at(job("a", true), 1_000).unwrap();
        v.add_job_at(job("b", true), 2_000).unwrap();
        // Recorded: it passes checks 1-6; nothing is queued and no verdict is made.
        assert!(v.record_seen_at(&share(1, "b", 7), 2_100));
        // Not recorded, as a validated share would not be: stale, unknown job, bad ntime.
        assert!(!v.record_seen_at(&share(2, "a", 8), 2_100));
        assert!(!v.record_seen_at(&share(3, "zz", 9), 2_100));
        let early = ShareRecord::stratum(
            4,
            "b",
            &[9, 9, 9, 9],
            &[0, 0, 0, 1],
            999,
            10,
            None,
            ShareTarget::Difficulty(1.0),
        );
        assert!(!v.record_seen_at(&early, 2_100));
        assert!(b.is_empty());
        assert_eq!(v.seen_entries(), 1);
        assert_eq!(
            status(v.check_at(&share(5, "b", 7), 2_200, &mut b)),
            Some(Status::Duplicate)
        );
        assert_eq!(status(v.check_at(&share(6, "b", 8), 2_200, &mut b)), None);
        // Header shares too, on a standard job.
        let mut std_job = job("s", false);
        (std_job.coinb1, std_job.coinb2, std_job.merkle_branch) = Default::default();
        std_job.prevhash = [4; 32];
        std_job.merkle_root = Some([0; 32]);
        v.add_job_at(std_job.clone(), 2_000).unwrap();
        let mut h = [0u8; 80];
        h[..4].copy_from_slice(&std_job.version.to_le_bytes());
        h[4..36].fill(4);
        h[68..72].copy_from_slice(&std_job.ntime.to_le_bytes());
        h[72..76].copy_from_slice(&std_job.nbits.to_le_bytes());
        assert!(v.record_seen_at(
            &ShareRecord::header(7, &h, ShareTarget::Difficulty(1.0)),
            2_300
        ));
        assert_eq!(
            status(v.check_at(
                &ShareRecord::header(8, &h, ShareTarget::Difficulty(1.0)),
                2_300,
                &mut b
            )),
            Some(Status::Duplicate)
        );
    }

    #[test]
    fn arrival_order_mode_ignores_time_settings() {
        // verify has no timestamps: a clean job makes the others stale at once, nothing
        // expires, whatever the grace and the ttl say.
        let mut v = Validator::new(ValidationConfig {
            stale_grace_ms: 1_000_000,
            job_ttl_s: 0,
            ..Default::default()
        });
        let mut b = Batch::new();
        v.add_job(job("a", true)).unwrap();
        assert_eq!(status(v.check(&share(1, "a", 1), &mut b)), None);
        v.add_job(job("b", true)).unwrap();
        assert_eq!(
            status(v.check(&share(2, "a", 2), &mut b)),
            Some(Status::Stale)
        );
        assert_eq!(status(v.check(&share(3, "b", 2), &mut b)), None);
    }
}
