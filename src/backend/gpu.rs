//! The host side of the GPU kernels (kernels/sha256d.wgsl, kernels/sha256d.cl): the buffer
//! layouts both kernels read, packing a batch into them, and checking what comes back.
//!
//! Per-job work is done here once per batch and job (the midstate, byte offsets and the branch
//! as state words come from [`JobCtx`], which computed them once per job); a work item holds
//! only what varies per share. The layouts are documented word by word at the top of
//! kernels/sha256d.wgsl. [`ring`] runs a batch through a device with these layouts.

pub mod ceiling;
pub mod ring;

use crate::model::validate::TaskMeta;
use crate::model::{HashTask, JobCtx, U256};
use crate::sha256::State;
use std::sync::Arc;

/// u32 words of one job record in the job table (the variable-length data follows the records).
pub const JOB_WORDS: usize = 32;
/// u32 words of a task record before its extranonce: job index, target pair index, version,
/// ntime, nonce, extranonce length. A stratum share's record is these and its extranonce bytes.
pub const REC_HEAD_WORDS: usize = 6;
/// u32 words of a header share's record: job index ([`HashTask::HEADER`]), target pair index,
/// then the 80 header bytes.
pub const HEADER_REC_WORDS: usize = 22;
/// u32 words of a header share's record packed from its midstate: job index [`MID_JOB`],
/// target pair index, the SHA-256 state after the header's first 64 bytes, then header bytes
/// 64..80. A batch whose header shares mostly come in runs sharing their first 64 bytes (SV2
/// standard shares of one job and version) is packed this way: the host compresses each
/// run's first block once, the kernel does two compressions a share instead of three, and a
/// record is 56 bytes instead of 88.
pub const MID_REC_WORDS: usize = 14;
/// The job index of a record packed from a midstate.
pub const MID_JOB: u32 = 0xffff_fffe;
/// u32 words per task of output: 8 state words and a flags word.
pub const OUT_WORDS: usize = 9;
/// u32 words per task of targets: share target then network target, 8 limbs each.
pub const TARGET_WORDS: usize = 16;
/// Flag bit: the hash meets the share target.
pub const FLAG_SHARE: u32 = 1;
/// Flag bit: the hash meets the network target.
pub const FLAG_NETWORK: u32 = 2;
/// Longest extranonce (extranonce1 ‖ extranonce2) a kernel accepts, in bytes; the validator
/// never queues longer ones (16 + 16 bytes).
pub const MAX_EXTRANONCE: usize =
    crate::model::job::MAX_EXTRANONCE1 + crate::model::job::MAX_EXTRANONCE2;
/// Tasks per dispatch by default: bounds the device buffers (about 40 MiB at this size) while
/// keeping launches few.
pub const DEFAULT_CHUNK: usize = 1 << 18;

/// The coinbase a kernel hashes: any coinb1 and coinb2 a job may have (up to
/// [`crate::model::job::MAX_COINB`] bytes each) and any extranonce up to [`MAX_EXTRANONCE`]
/// bytes; the kernel loops over as many 64-byte tail blocks as the share needs.
pub const MAX_TAIL_BLOCKS: usize =
    (63 + MAX_EXTRANONCE + crate::model::job::MAX_COINB + 9).div_ceil(64);

/// Options shared by the GPU backends (from the `[backend]` config table).
#[derive(Debug, Clone)]
pub struct GpuOptions {
    /// Index into the list of devices of that API (as `sharecheck backends` prints it).
    pub device: usize,
    /// Work items per work group.
    pub work_group_size: u32,
    /// Most tasks per dispatch; larger batches are split.
    pub chunk: usize,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            device: 0,
            work_group_size: 64,
            chunk: DEFAULT_CHUNK,
        }
    }
}

fn push_bytes(words: &mut Vec<u32>, bytes: &[u8]) -> u32 {
    let off = words.len() as u32;
    for c in bytes.chunks(4) {
        let mut b = [0u8; 4];
        b[..c.len()].copy_from_slice(c);
        words.push(u32::from_le_bytes(b));
    }
    off
}

/// Packs the job table into `out` (cleared first).
pub fn pack_jobs(jobs: &[Arc<JobCtx>], out: &mut Vec<u32>) {
    out.clear();
    out.resize(jobs.len() * JOB_WORDS, 0);
    for (i, ctx) in jobs.iter().enumerate() {
        let t1 = push_bytes(out, &ctx.coinb1_tail);
        let c2 = push_bytes(out, &ctx.job.coinb2);
        let br = out.len() as u32;
        for b in &ctx.branch {
            out.extend_from_slice(b);
        }
        let r = &mut out[i * JOB_WORDS..(i + 1) * JOB_WORDS];
        r[..8].copy_from_slice(&ctx.coinb1_midstate);
        r[8..16].copy_from_slice(&ctx.prevhash_words);
        r[16] = ctx.job.nbits.swap_bytes();
        r[17] = ctx.coinb1_tail.len() as u32;
        r[18] = ctx.job.coinb2.len() as u32;
        r[19] = ctx.job.coinb1.len() as u32;
        r[20] = ctx.branch.len() as u32;
        r[21] = t1;
        r[22] = c2;
        r[23] = br;
    }
    // A zero-length storage binding is invalid; keep at least one word.
    if out.is_empty() {
        out.push(0);
    }
}

/// Tasks per block of host-side packing and unpacking: blocks run in parallel (rayon), so that
/// the host keeps up with a device that hashes hundreds of millions of shares a second.
const HOST_BLOCK: usize = 8192;

/// Words of the record a stratum share `t` needs.
fn stratum_record_words(t: &HashTask) -> usize {
    REC_HEAD_WORDS + (t.en_len as usize).min(MAX_EXTRANONCE).div_ceil(4)
}

/// The last few distinct first blocks (64 bytes) of the header tasks of a packing block,
/// each as the index of a task that has it and the slot of its midstate, like the CPU
/// backend's search (SV2 standard shares of a run come with the few versions their miner
/// rolls).
struct RecentFirsts {
    ways: [(usize, u32); super::cpu::PREFIX_WAYS],
    filled: usize,
    victim: usize,
}

impl RecentFirsts {
    fn new() -> RecentFirsts {
        RecentFirsts {
            ways: [(0, 0); super::cpu::PREFIX_WAYS],
            filled: 0,
            victim: 0,
        }
    }

    /// The slot of header task `t`'s first block among the recent ones of `tasks`.
    fn find(&self, tasks: &[HashTask], t: &HashTask) -> Option<u32> {
        self.ways[..self.filled]
            .iter()
            .find(|(i, _)| super::cpu::same_first_block(&tasks[*i].data, &t.data))
            .map(|&(_, slot)| slot)
    }

    /// Task `i` brought a new first block, with midstate slot `slot`.
    fn insert(&mut self, i: usize, slot: u32) {
        self.ways[self.victim] = (i, slot);
        self.victim = (self.victim + 1) % self.ways.len();
        self.filled = (self.filled + 1).min(self.ways.len());
    }
}

/// What decides a batch's record stride: the longest stratum record, the header shares, and
/// how many of those found their first 64 bytes among the recent ones of their packing block.
#[derive(Clone, Copy, Default)]
struct Shape {
    stratum_words: usize,
    headers: usize,
    repeats: usize,
}

impl Shape {
    /// The shape of one packing block (at most [`HOST_BLOCK`] tasks, as [`pack_records`]
    /// packs them: each block searches its own recent first blocks).
    fn of_block(ts: &[HashTask]) -> Shape {
        let mut s = Shape {
            stratum_words: REC_HEAD_WORDS,
            ..Shape::default()
        };
        let mut recent = RecentFirsts::new();
        for (i, t) in ts.iter().enumerate() {
            if t.is_header() {
                s.headers += 1;
                match recent.find(ts, t) {
                    Some(_) => s.repeats += 1,
                    None => recent.insert(i, 0),
                }
            } else {
                s.stratum_words = s.stratum_words.max(stratum_record_words(t));
            }
        }
        s
    }

    fn add(self, o: Shape) -> Shape {
        Shape {
            stratum_words: self.stratum_words.max(o.stratum_words),
            headers: self.headers + o.headers,
            repeats: self.repeats + o.repeats,
        }
    }

    /// Header shares are packed from midstates when at least half of them repeat a recent
    /// first block (each distinct first block costs the host one compression, which pays for
    /// itself once two shares have it); otherwise as whole headers.
    fn stride(self) -> usize {
        if self.headers == 0 {
            self.stratum_words
        } else if self.headers >= 2 && self.repeats * 2 >= self.headers {
            self.stratum_words.max(MID_REC_WORDS)
        } else {
            HEADER_REC_WORDS
        }
    }
}

/// The record stride (u32 words per task) of a batch: the longest record any of its tasks
/// needs, so that a batch of stratum shares with 8-byte extranonces uploads 32 bytes a share
/// rather than a whole [`HashTask`]; header shares take [`HEADER_REC_WORDS`], or
/// [`MID_REC_WORDS`] when they come in runs (see [`MID_REC_WORDS`]; the stride says which, for
/// [`pack_records`]). [`check_tasks`] returns it too, in the same pass.
pub fn record_stride(tasks: &[HashTask]) -> usize {
    tasks
        .chunks(HOST_BLOCK)
        .map(Shape::of_block)
        .fold(Shape::default(), Shape::add)
        .stride()
}

/// Bytes as little-endian words (a partial last word zero-padded): how the kernels read bytes.
fn le_words(dst: &mut [u32], bytes: &[u8]) {
    for (d, c) in dst.iter_mut().zip(bytes.chunks(4)) {
        let mut b = [0u8; 4];
        b[..c.len()].copy_from_slice(c);
        *d = u32::from_le_bytes(b);
    }
}

fn push_target(out: &mut Vec<u32>, t: &U256) {
    for limb in t.0 {
        out.push(limb as u32);
        out.push((limb >> 32) as u32);
    }
}

/// Packs one block of tasks into `dst` (`stride` words each); returns the block's own table of
/// target pairs (16 words each), which the records index from 0. Shares of a batch mostly have
/// a handful of distinct (share, network) target pairs, so the table stays tiny and the device
/// reads it from cache instead of 64 uploaded bytes per share.
fn pack_block(
    tasks: &[HashTask],
    meta: Option<&[TaskMeta]>,
    stride: usize,
    dst: &mut [u32],
) -> Vec<u32> {
    /// Distinct pairs remembered for reuse; a block with more gets repeats in its table.
    const REMEMBER: usize = 16;
    let mut table = Vec::new();
    let mut seen: Vec<(U256, U256, u32)> = Vec::new();
    let mut last: Option<usize> = None;
    // Midstate packing: the distinct first blocks of the header shares (a run's first block
    // once), and which one each header share's record takes.
    let mut firsts = Vec::new();
    let mut slots = Vec::new();
    let mut recent = RecentFirsts::new();
    if stride < HEADER_REC_WORDS && tasks.iter().any(HashTask::is_header) {
        slots.resize(tasks.len(), 0u32);
    }
    for (i, (t, r)) in tasks.iter().zip(dst.chunks_exact_mut(stride)).enumerate() {
        let tidx = match meta {
            None => 0,
            Some(m) => {
                let (s, n) = (m[i].share_target, m[i].network_target);
                let hit = last
                    .filter(|&k| seen[k].0 == s && seen[k].1 == n)
                    .or_else(|| seen.iter().position(|e| e.0 == s && e.1 == n));
                match hit {
                    Some(k) => {
                        last = Some(k);
                        seen[k].2
                    }
                    None => {
                        let idx = (table.len() / TARGET_WORDS) as u32;
                        push_target(&mut table, &s);
                        push_target(&mut table, &n);
                        if seen.len() < REMEMBER {
                            seen.push((s, n, idx));
                            last = Some(seen.len() - 1);
                        }
                        idx
                    }
                }
            }
        };
        r[0] = t.job;
        r[1] = tidx;
        if t.is_header() && stride < HEADER_REC_WORDS {
            // From a midstate: the state words come once the block's first blocks are hashed.
            r[0] = MID_JOB;
            le_words(&mut r[10..MID_REC_WORDS], &t.data[64..]);
            slots[i] = recent.find(tasks, t).unwrap_or_else(|| {
                let slot = firsts.len() as u32;
                firsts.push(crate::sha256::soft::block_from_bytes(&t.data[..64]));
                recent.insert(i, slot);
                slot
            });
        } else if t.is_header() {
            le_words(&mut r[2..HEADER_REC_WORDS], &t.data);
        } else {
            r[2] = t.version;
            r[3] = t.ntime;
            r[4] = t.nonce;
            r[5] = t.en_len;
            let en = (t.en_len as usize).min(MAX_EXTRANONCE);
            le_words(&mut r[REC_HEAD_WORDS..], &t.data[..en]);
        }
    }
    if !firsts.is_empty() {
        let mut mids = vec![crate::sha256::IV; firsts.len()];
        crate::sha256::best().compress(&mut mids, &firsts);
        for ((t, r), &slot) in tasks.iter().zip(dst.chunks_exact_mut(stride)).zip(&slots) {
            if t.is_header() {
                r[2..10].copy_from_slice(&mids[slot as usize]);
            }
        }
    }
    table
}

/// Packs the tasks as records of `stride` words (see [`record_stride`]) into `dst`, and, when
/// `meta` is given, the table of target pairs the records index into `targets` (cleared first;
/// one zero pair when there is none, since a zero-length binding is invalid). Blocks are packed
/// in parallel.
pub fn pack_records(
    tasks: &[HashTask],
    meta: Option<&[TaskMeta]>,
    stride: usize,
    dst: &mut [u32],
    targets: &mut Vec<u32>,
) {
    use rayon::prelude::*;
    let n = tasks.len();
    let dst = &mut dst[..n * stride];
    targets.clear();
    if n <= HOST_BLOCK {
        targets.extend(pack_block(tasks, meta, stride, dst));
    } else {
        let tables: Vec<Vec<u32>> = dst
            .par_chunks_mut(HOST_BLOCK * stride)
            .zip(tasks.par_chunks(HOST_BLOCK))
            .enumerate()
            .map(|(b, (d, t))| {
                let m = meta.map(|m| &m[b * HOST_BLOCK..b * HOST_BLOCK + t.len()]);
                pack_block(t, m, stride, d)
            })
            .collect();
        let mut bases = Vec::with_capacity(tables.len());
        for t in &tables {
            bases.push((targets.len() / TARGET_WORDS) as u32);
            targets.extend_from_slice(t);
        }
        // Each block indexed its own table from 0: move its indices to where it landed.
        dst.par_chunks_mut(HOST_BLOCK * stride)
            .zip(bases.par_iter())
            .filter(|(_, &base)| base != 0)
            .for_each(|(d, &base)| {
                for r in d.chunks_exact_mut(stride) {
                    r[1] += base;
                }
            });
    }
    if targets.is_empty() {
        targets.resize(TARGET_WORDS, 0);
    }
}

/// Refuses tasks a kernel must not see (a job index outside the table, an extranonce longer
/// than the kernels accept) and returns the batch's record stride ([`record_stride`]). Large
/// batches are checked in parallel: on a fast device this pass is part of every share's cost.
pub fn check_tasks(jobs: &[Arc<JobCtx>], tasks: &[HashTask]) -> anyhow::Result<usize> {
    use rayon::prelude::*;
    let block = |first: usize, ts: &[HashTask]| -> anyhow::Result<Shape> {
        for (i, t) in ts.iter().enumerate() {
            if !t.is_header() {
                anyhow::ensure!(
                    (t.job as usize) < jobs.len(),
                    "task {} refers to job {} of {}",
                    first + i,
                    t.job,
                    jobs.len()
                );
                anyhow::ensure!(
                    t.en_len as usize <= MAX_EXTRANONCE,
                    "task {} has {} extranonce bytes; at most {MAX_EXTRANONCE} are supported",
                    first + i,
                    t.en_len
                );
            }
        }
        Ok(ts
            .chunks(HOST_BLOCK)
            .map(Shape::of_block)
            .fold(Shape::default(), Shape::add))
    };
    if tasks.len() <= 2 * HOST_BLOCK {
        return Ok(block(0, tasks)?.stride());
    }
    let shape = tasks
        .par_chunks(HOST_BLOCK)
        .enumerate()
        .map(|(b, ts)| block(b * HOST_BLOCK, ts))
        .try_reduce(Shape::default, |a, b| Ok(a.add(b)))?;
    Ok(shape.stride())
}

/// Copies the hashes out of a kernel's output and checks it: every task must carry this
/// dispatch's tag (proof that its work item ran), and, when `meta` is given, the kernel's
/// target flags must agree with the host's own comparison of the returned hash. Any
/// disagreement is a backend error (the caller redoes the batch on the CPU). Blocks are checked
/// in parallel.
pub fn unpack(
    words: &[u32],
    tag: u32,
    meta: Option<&[TaskMeta]>,
    out: &mut [State],
) -> anyhow::Result<()> {
    use rayon::prelude::*;
    anyhow::ensure!(
        words.len() >= out.len() * OUT_WORDS,
        "device returned {} words for {} tasks",
        words.len(),
        out.len()
    );
    if out.len() <= HOST_BLOCK {
        return unpack_block(words, tag, meta, out, 0);
    }
    out.par_chunks_mut(HOST_BLOCK)
        .zip(words.par_chunks(HOST_BLOCK * OUT_WORDS))
        .enumerate()
        .try_for_each(|(b, (o, w))| {
            let first = b * HOST_BLOCK;
            let m = meta.map(|m| &m[first..first + o.len()]);
            unpack_block(w, tag, m, o, first)
        })
}

fn unpack_block(
    words: &[u32],
    tag: u32,
    meta: Option<&[TaskMeta]>,
    out: &mut [State],
    first: usize,
) -> anyhow::Result<()> {
    let tag = tag & 0x00ff_ffff;
    for (i, (o, w)) in out
        .iter_mut()
        .zip(words.chunks_exact(OUT_WORDS))
        .enumerate()
    {
        o.copy_from_slice(&w[..8]);
        let flags = w[8];
        anyhow::ensure!(
            flags >> 8 == tag,
            "task {} was not computed by the device (tag {:#x}, expected {tag:#x})",
            first + i,
            flags >> 8
        );
        if let Some(meta) = meta {
            let m = &meta[i];
            let v = U256::from_hash_state(o);
            let mut want = 0;
            if v <= m.share_target {
                want |= FLAG_SHARE;
            }
            if v <= m.network_target {
                want |= FLAG_NETWORK;
            }
            anyhow::ensure!(
                flags & 3 == want,
                "task {}: the device's target flags ({:#b}) disagree with the host's ({want:#b})",
                first + i,
                flags & 3
            );
        }
    }
    Ok(())
}

/// A fresh tag per dispatch, never 0 (a zeroed buffer must not pass for a computed one).
pub fn next_tag(tag: &mut u32) -> u32 {
    *tag = (*tag % 0x00ff_fffe) + 1;
    *tag
}

/// Buffer capacities (tasks, job-table words) for a batch, given the current ones: grown
/// geometrically so that a slowly rising batch size does not reallocate each time, tasks capped
/// at one dispatch (`chunk`) unless the batch itself needs more.
pub fn grown_capacity(
    tasks: usize,
    job_words: usize,
    old: Option<(usize, usize)>,
    chunk: usize,
) -> (usize, usize) {
    let (old_t, old_j) = old.unwrap_or((0, 0));
    let task_cap = tasks
        .max(old_t)
        .max(256)
        .next_power_of_two()
        .min(chunk)
        .max(tasks);
    let job_cap = job_words.max(old_j).max(1024).next_power_of_two();
    (task_cap, job_cap)
}

/// How a batch is laid out on a device: the job table's length, tasks per dispatch, and the
/// record stride.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub njobs: usize,
    pub sub: usize,
    pub stride: usize,
}

/// A batch is cut into dispatches of at least this many tasks so that it can be pipelined;
/// smaller batches go in one dispatch (launch overhead would eat the overlap).
pub const MIN_PIPELINED: usize = 16 * 1024;

/// Tasks per dispatch for a batch of `n` on a backend with `slots` dispatches in flight: the
/// whole batch when it is small, else about one piece per slot (at least [`MIN_PIPELINED`]
/// each, at most `chunk`).
pub fn dispatch_size(n: usize, chunk: usize, slots: usize) -> usize {
    let chunk = chunk.max(1);
    if n <= MIN_PIPELINED {
        return n.clamp(1, chunk);
    }
    n.div_ceil(slots.max(1))
        .max(MIN_PIPELINED)
        .min(chunk)
        .min(n)
}

/// The checks both GPU backends make before a batch: one output (and, when given, one target
/// pair) per task, and [`check_tasks`]; returns the batch's record stride.
pub fn check_batch(
    jobs: &[Arc<JobCtx>],
    tasks: &[HashTask],
    meta: Option<&[TaskMeta]>,
    out: &[State],
) -> anyhow::Result<usize> {
    anyhow::ensure!(out.len() == tasks.len(), "one output per task");
    if let Some(m) = meta {
        anyhow::ensure!(m.len() == tasks.len(), "one target pair per task");
    }
    check_tasks(jobs, tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stratum_task(job: u32, en: &[u8]) -> HashTask {
        let mut t = <HashTask as bytemuck::Zeroable>::zeroed();
        t.job = job;
        t.version = 0x2000_0000;
        t.ntime = 7;
        t.nonce = 9;
        t.en_len = en.len() as u32;
        t.data[..en.len()].copy_from_slice(en);
        t
    }

    fn meta_with(share: u64, network: u64) -> TaskMeta {
        TaskMeta {
            id: 0,
            share_target: U256([share, 0, 0, 0]),
            network_target: U256([network, 0, 0, 0]),
        }
    }

    #[test]
    fn records_match_the_kernel_layout() {
        let t = stratum_task(3, &[0xaa, 0xbb, 1, 2, 3]);
        assert_eq!(record_stride(std::slice::from_ref(&t)), REC_HEAD_WORDS + 2);
        let mut h = <HashTask as bytemuck::Zeroable>::zeroed();
        h.job = HashTask::HEADER;
        h.data[79] = 0x5a;
        let tasks = [t, h];
        let stride = record_stride(&tasks);
        assert_eq!(stride, HEADER_REC_WORDS);
        let mut d = vec![0u32; 2 * stride];
        let mut targets = Vec::new();
        pack_records(&tasks, None, stride, &mut d, &mut targets);
        assert_eq!(&d[..8], &[3, 0, 0x2000_0000, 7, 9, 5, 0x0201_bbaa, 3]);
        assert_eq!(d[stride], HashTask::HEADER);
        assert_eq!(d[stride + HEADER_REC_WORDS - 1], 0x5a00_0000);
        assert_eq!(
            targets,
            vec![0; TARGET_WORDS],
            "one zero pair keeps the binding valid"
        );
    }

    #[test]
    fn header_runs_are_packed_from_midstates() {
        // SV2 standard shares in runs of 64 sharing their first block, across packing blocks,
        // with a stratum share now and then (it breaks a run and widens nothing).
        let f = crate::bench::standard_fixture(2 * HOST_BLOCK + 100, 7);
        let mut tasks = f.tasks.clone();
        for i in (0..tasks.len()).step_by(301) {
            tasks[i] = stratum_task(0, &[7; 12]);
        }
        let stride = record_stride(&tasks);
        assert_eq!(stride, MID_REC_WORDS);
        let jobs = crate::bench::stratum_fixture(1, 1).jobs;
        assert_eq!(
            check_tasks(&jobs, &tasks).unwrap(),
            stride,
            "check_tasks agrees"
        );
        let mut d = vec![0u32; tasks.len() * stride];
        let mut targets = Vec::new();
        pack_records(&tasks, None, stride, &mut d, &mut targets);
        for (i, (t, r)) in tasks.iter().zip(d.chunks_exact(stride)).enumerate() {
            if !t.is_header() {
                assert_eq!(r[0], 0, "task {i}");
                continue;
            }
            assert_eq!(r[0], MID_JOB, "task {i}");
            let mut mid = crate::sha256::IV;
            crate::sha256::soft::compress(
                &mut mid,
                &crate::sha256::soft::block_from_bytes(&t.data[..64]),
            );
            assert_eq!(r[2..10], mid, "task {i}: its own first block's midstate");
            let mut tail = [0u32; 4];
            le_words(&mut tail, &t.data[64..]);
            assert_eq!(r[10..14], tail, "task {i}");
        }
        // Lone header shares (no two in a row share a first block) stay whole headers.
        let h = crate::bench::header_fixture(100, 3);
        assert_eq!(record_stride(&h.tasks), HEADER_REC_WORDS);
        assert_eq!(check_tasks(&[], &h.tasks).unwrap(), HEADER_REC_WORDS);
    }

    #[test]
    fn target_indices_point_at_each_task_s_own_pair() {
        // Several packing blocks, more distinct pairs than a block remembers, repeats.
        let n = 3 * HOST_BLOCK + 17;
        let tasks: Vec<HashTask> = (0..n)
            .map(|i| stratum_task(i as u32 % 5, &[1; 8]))
            .collect();
        let meta: Vec<TaskMeta> = (0..n)
            .map(|i| {
                // A few common pairs, and now and then a one-off (more than a block remembers).
                let share = if i % 997 == 0 { 1000 + i } else { i % 5 + 1 };
                meta_with(share as u64, (i / 4000) as u64 + 100)
            })
            .collect();
        let stride = record_stride(&tasks);
        assert_eq!(stride, REC_HEAD_WORDS + 2);
        let mut d = vec![0u32; n * stride];
        let mut targets = Vec::new();
        pack_records(&tasks, Some(&meta), stride, &mut d, &mut targets);
        assert!(targets.len() / TARGET_WORDS < n / 10, "pairs are shared");
        for (i, r) in d.chunks_exact(stride).enumerate() {
            let t = &targets[r[1] as usize * TARGET_WORDS..][..TARGET_WORDS];
            assert_eq!(t[0] as u64, meta[i].share_target.0[0], "task {i}");
            assert_eq!(t[8] as u64, meta[i].network_target.0[0], "task {i}");
            assert_eq!(r[0], i as u32 % 5);
        }
    }

    #[test]
    fn unpack_checks_tags_and_flags_in_every_block() {
        let n = 2 * HOST_BLOCK + 3;
        let meta = vec![meta_with(u64::MAX, 0); n];
        let mut words = vec![0u32; n * OUT_WORDS];
        for w in words.chunks_exact_mut(OUT_WORDS) {
            w[7] = 0xffff_ffff; // a hash far above both targets
            w[8] = 5 << 8;
        }
        let mut out = vec![[0u32; 8]; n];
        unpack(&words, 5, Some(&meta), &mut out).unwrap();
        assert_eq!(out[n - 1][7], 0xffff_ffff);
        words[(n - 1) * OUT_WORDS + 8] = 4 << 8;
        let e = unpack(&words, 5, Some(&meta), &mut out).unwrap_err();
        assert!(e.to_string().contains(&format!("task {}", n - 1)), "{e}");
        words[(n - 1) * OUT_WORDS + 8] = (5 << 8) | FLAG_SHARE;
        let e = unpack(&words, 5, Some(&meta), &mut out).unwrap_err();
        assert!(e.to_string().contains("disagree"), "{e}");
    }

    #[test]
    fn dispatch_sizes() {
        assert_eq!(dispatch_size(1, 1 << 18, 3), 1);
        assert_eq!(dispatch_size(1000, 256, 3), 256);
        assert_eq!(dispatch_size(100_000, 256, 3), 256);
        assert_eq!(dispatch_size(MIN_PIPELINED, 1 << 18, 3), MIN_PIPELINED);
        assert_eq!(dispatch_size(MIN_PIPELINED + 1, 1 << 18, 3), MIN_PIPELINED);
        assert_eq!(dispatch_size(300_000, 1 << 18, 3), 100_000);
        assert_eq!(dispatch_size(1 << 22, 1 << 18, 3), 1 << 18);
    }

    #[test]
    fn tags_are_never_zero() {
        let mut t = 0x00ff_fffd;
        for _ in 0..5 {
            assert_ne!(next_tag(&mut t), 0);
        }
    }
}
