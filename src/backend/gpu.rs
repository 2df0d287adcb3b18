//! The host side of the GPU kernels (kernels/sha256d.wgsl, kernels/sha256d.cl): the buffer
//! layouts both kernels read, packing a batch into them, and checking what comes back.
//!
//! Per-job work is done here once per batch and job (the midstate, byte offsets and the branch
//! as state words come from [`JobCtx`], which computed them once per job); a work item holds
//! only what varies per share. The layouts are documented word by word at the top of
//! kernels/sha256d.wgsl.

use crate::model::validate::TaskMeta;
use crate::model::{HashTask, JobCtx, U256};
use crate::sha256::State;
use std::sync::Arc;

/// u32 words of one job record in the job table (the variable-length data follows the records).
pub const JOB_WORDS: usize = 32;
/// u32 words of one task: a [`HashTask`] as is.
pub const TASK_WORDS: usize = std::mem::size_of::<HashTask>() / 4;
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

/// The tasks as the words a kernel reads. On a little-endian host this is the tasks' own
/// memory; a big-endian host converts the data bytes so that the kernels see the same words.
pub fn task_words<'a>(tasks: &'a [HashTask], scratch: &'a mut Vec<u32>) -> &'a [u32] {
    if cfg!(target_endian = "little") {
        return bytemuck::cast_slice(tasks);
    }
    scratch.clear();
    for t in tasks {
        scratch.extend_from_slice(&[t.job, t.version, t.ntime, t.nonce, t.en_len, t.reserved]);
        for c in t.data.chunks_exact(4) {
            scratch.push(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        }
    }
    scratch
}

fn push_target(out: &mut Vec<u32>, t: &U256) {
    for limb in t.0 {
        out.push(limb as u32);
        out.push((limb >> 32) as u32);
    }
}

/// Packs the per-task targets into `out` (cleared first).
pub fn pack_targets(meta: &[TaskMeta], out: &mut Vec<u32>) {
    out.clear();
    for m in meta {
        push_target(out, &m.share_target);
        push_target(out, &m.network_target);
    }
}

/// Refuses tasks a kernel must not see: a job index outside the table, an extranonce longer
/// than the kernels accept.
pub fn check_tasks(jobs: &[Arc<JobCtx>], tasks: &[HashTask]) -> anyhow::Result<()> {
    for (i, t) in tasks.iter().enumerate() {
        if t.is_header() {
            continue;
        }
        anyhow::ensure!(
            (t.job as usize) < jobs.len(),
            "task {i} refers to job {} of {}",
            t.job,
            jobs.len()
        );
        anyhow::ensure!(
            t.en_len as usize <= MAX_EXTRANONCE,
            "task {i} has {} extranonce bytes; at most {MAX_EXTRANONCE} are supported",
            t.en_len
        );
    }
    Ok(())
}

/// Copies the hashes out of a kernel's output and checks it: every task must carry this
/// dispatch's tag (proof that its work item ran), and, when `meta` is given, the kernel's
/// target flags must agree with the host's own comparison of the returned hash. Any
/// disagreement is a backend error (the caller redoes the batch on the CPU).
pub fn unpack(
    words: &[u32],
    tag: u32,
    meta: Option<&[TaskMeta]>,
    out: &mut [State],
) -> anyhow::Result<()> {
    anyhow::ensure!(
        words.len() >= out.len() * OUT_WORDS,
        "device returned {} words for {} tasks",
        words.len(),
        out.len()
    );
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
            "task {i} was not computed by the device (tag {:#x}, expected {tag:#x})",
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
                "task {i}: the device's target flags ({:#b}) disagree with the host's ({want:#b})",
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

/// The checks both GPU backends make before a batch: one output (and, when given, one target
/// pair) per task, and every task's job index inside the job table.
pub fn check_batch(
    jobs: &[Arc<JobCtx>],
    tasks: &[HashTask],
    meta: Option<&[TaskMeta]>,
    out: &[State],
) -> anyhow::Result<()> {
    anyhow::ensure!(out.len() == tasks.len(), "one output per task");
    if let Some(m) = meta {
        anyhow::ensure!(m.len() == tasks.len(), "one target pair per task");
    }
    check_tasks(jobs, tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_words_match_the_kernel_layout() {
        assert_eq!(TASK_WORDS, 26);
        let mut t = <HashTask as bytemuck::Zeroable>::zeroed();
        t.job = 3;
        t.en_len = 2;
        t.data[0] = 0xaa;
        t.data[1] = 0xbb;
        let mut s = Vec::new();
        let w = task_words(std::slice::from_ref(&t), &mut s);
        assert_eq!(w[0], 3);
        assert_eq!(w[4], 2);
        assert_eq!(w[6], 0xbbaa);
    }

    #[test]
    fn tags_are_never_zero() {
        let mut t = 0x00ff_fffd;
        for _ in 0..5 {
            assert_ne!(next_tag(&mut t), 0);
        }
    }
}
