//! The CPU backend: a SHA-256 [`Engine`] (scalar, SHA-NI, AVX2 or AVX-512, chosen at run time)
//! driven over many shares at once and spread across cores with rayon.
//!
//! Work is cut into chunks of up to [`CHUNK`] tasks. Within a chunk, stratum shares are grouped
//! by shape (coinbase tail blocks, branch depth) so that every lane of an engine call does the
//! same sequence of compressions; lanes may belong to different jobs. A chunk of header tasks
//! whose headers share their first 64 bytes (the shares of one standard job and version, as
//! an SV2 channel sends them) hashes each distinct first block once and every share with two
//! compressions instead of three. All scratch space lives on the stack: no heap allocation
//! per share.

use super::Backend;
use crate::model::{HashTask, JobCtx};
use crate::sha256::{self, Block, Engine, State};
use std::sync::Arc;

/// Tasks per unit of parallel work (and per stack scratch area).
pub const CHUNK: usize = 256;

pub struct CpuBackend {
    engine: &'static dyn Engine,
    pool: rayon::ThreadPool,
}

impl CpuBackend {
    /// `engine`: `None` for the fastest this CPU supports, or `scalar`, `sha-ni`, `avx2`,
    /// `avx512`. `threads` = 0 means one per core.
    pub fn new(engine: Option<&str>, threads: usize) -> anyhow::Result<CpuBackend> {
        let engine = match engine {
            None => sha256::best(),
            Some(n) => sha256::engine(n).map_err(anyhow::Error::msg)?,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("sharecheck-cpu-{i}"))
            .build()?;
        Ok(CpuBackend { engine, pool })
    }

    pub fn engine(&self) -> &'static dyn Engine {
        self.engine
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        format!("cpu:{}", self.engine.name())
    }

    fn hash(
        &self,
        jobs: &[Arc<JobCtx>],
        tasks: &[HashTask],
        out: &mut [State],
    ) -> anyhow::Result<()> {
        anyhow::ensure!(out.len() == tasks.len(), "one output per task");
        if let Some(t) = tasks
            .iter()
            .find(|t| !t.is_header() && t.job as usize >= jobs.len())
        {
            anyhow::bail!("task refers to job {} of {}", t.job, jobs.len());
        }
        let engine = self.engine;
        // One chunk, or one thread: stay on the calling thread (a hand-off to the pool costs
        // more than a small batch takes to hash).
        if tasks.len() <= CHUNK || self.pool.current_num_threads() == 1 {
            for (t, o) in tasks.chunks(CHUNK).zip(out.chunks_mut(CHUNK)) {
                hash_chunk(engine, jobs, t, o);
            }
            return Ok(());
        }
        use rayon::prelude::*;
        self.pool.install(|| {
            tasks
                .par_chunks(CHUNK)
                .zip(out.par_chunks_mut(CHUNK))
                .for_each(|(t, o)| hash_chunk(engine, jobs, t, o));
        });
        Ok(())
    }
}

/// Per-thread scratch space for [`hash_chunk`], allocated once per thread and reused, so the
/// hot path neither allocates nor clears ~50 KiB per chunk.
struct Scratch {
    headers: [[u32; 20]; CHUNK],
    work: Work,
}

/// The part of [`Scratch`] that building headers needs besides the headers themselves.
struct Work {
    states: [State; CHUNK],
    blocks: [Block; CHUNK],
    right: [State; CHUNK],
    /// (tail blocks, branch depth, task index) of the stratum tasks, sorted to group shapes.
    order: [(u16, u16, u16); CHUNK],
    /// Header tasks with a shared first block: each one's midstate and last 16 bytes.
    mids: [State; CHUNK],
    tails: [[u32; 4]; CHUNK],
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Box<Scratch>> = std::cell::RefCell::new(Box::new(Scratch {
        headers: [[0; 20]; CHUNK],
        work: Work {
            states: [[0; 8]; CHUNK],
            blocks: [[0; 16]; CHUNK],
            right: [[0; 8]; CHUNK],
            order: [(0, 0, 0); CHUNK],
            mids: [[0; 8]; CHUNK],
            tails: [[0; 4]; CHUNK],
        },
    }));
}

/// Hashes up to CHUNK tasks with one engine, on the calling thread.
pub fn hash_chunk(
    engine: &dyn Engine,
    jobs: &[Arc<JobCtx>],
    tasks: &[HashTask],
    out: &mut [State],
) {
    assert!(tasks.len() <= CHUNK && out.len() == tasks.len());
    SCRATCH.with(|s| {
        let sc = &mut **s.borrow_mut();
        if hash_shared_prefixes(engine, tasks, out, &mut sc.work) {
            return;
        }
        let headers = &mut sc.headers[..tasks.len()];
        build_headers(&mut sc.work, engine, jobs, tasks, headers);
        engine.sha256d_80(headers, out);
    });
}

/// Recent distinct first blocks a chunk's header tasks are compared with.
pub(super) const PREFIX_WAYS: usize = 4;
/// Tasks looked at before giving up on a chunk whose first blocks rarely repeat.
const PREFIX_PROBE: usize = 32;

/// Whether two headers have the same first 64 bytes, compared as eight words (inlined; a
/// call to memcmp per task cost more than the compression it saves on SHA-NI).
#[inline]
pub(super) fn same_first_block(a: &[u8; 80], b: &[u8; 80]) -> bool {
    let word =
        |h: &[u8; 80], i: usize| u64::from_ne_bytes(h[8 * i..8 * i + 8].try_into().expect("8"));
    (0..8).fold(0u64, |acc, i| acc | (word(a, i) ^ word(b, i))) == 0
}

/// Hashes a chunk of header tasks with one compression of each distinct first 64 bytes
/// (found among the last [`PREFIX_WAYS`] distinct ones) and two per task: the second block
/// from that midstate, and the outer hash. Returns false, having written nothing, when the
/// chunk holds other tasks or its first blocks repeat too rarely to pay (then the caller
/// hashes it the ordinary way, three compressions per header).
fn hash_shared_prefixes(
    engine: &dyn Engine,
    tasks: &[HashTask],
    out: &mut [State],
    sc: &mut Work,
) -> bool {
    let n = tasks.len();
    if n < 2 || tasks.iter().any(|t| !t.is_header()) {
        return false;
    }
    // recent[k] = (index of the task whose first block is distinct block `slot`, slot).
    let mut recent = [(0usize, 0u16); PREFIX_WAYS];
    let (mut filled, mut victim, mut distinct) = (0, 0, 0usize);
    for (i, t) in tasks.iter().enumerate() {
        let prefix = &t.data[..64];
        let hit = recent[..filled]
            .iter()
            .find(|(rep, _)| same_first_block(&tasks[*rep].data, &t.data));
        let slot = match hit {
            Some(&(_, slot)) => slot,
            None => {
                let slot = distinct as u16;
                sc.blocks[distinct] = crate::sha256::soft::block_from_bytes(prefix);
                distinct += 1;
                if filled < PREFIX_WAYS {
                    filled += 1;
                }
                recent[victim] = (i, slot);
                victim = (victim + 1) % PREFIX_WAYS;
                slot
            }
        };
        sc.order[i].0 = slot;
        let probed = i + 1;
        if (probed == PREFIX_PROBE.min(n) || probed == n) && distinct * 2 > probed {
            return false;
        }
    }
    let mids = &mut sc.right[..distinct];
    mids.fill(sha256::IV);
    engine.compress(mids, &sc.blocks[..distinct]);
    for (i, t) in tasks.iter().enumerate() {
        sc.mids[i] = sc.right[sc.order[i].0 as usize];
        for (w, c) in sc.tails[i].iter_mut().zip(t.data[64..].chunks_exact(4)) {
            *w = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
    }
    engine.sha256d_80_mid(&sc.mids[..n], &sc.tails[..n], &mut out[..n]);
    true
}

/// The twenty header words of each of up to CHUNK tasks, in task order: header shares carry
/// theirs; for stratum shares the coinbase and merkle work runs on `engine`. Backends that
/// hash only headers (the FPGA) use this for the stratum work.
pub fn header_words(
    engine: &dyn Engine,
    jobs: &[Arc<JobCtx>],
    tasks: &[HashTask],
    out: &mut [[u32; 20]],
) {
    assert!(tasks.len() <= CHUNK && out.len() == tasks.len());
    SCRATCH.with(|s| build_headers(&mut s.borrow_mut().work, engine, jobs, tasks, out));
}

fn build_headers(
    sc: &mut Work,
    engine: &dyn Engine,
    jobs: &[Arc<JobCtx>],
    tasks: &[HashTask],
    out: &mut [[u32; 20]],
) {
    // Stratum shares are grouped by shape so that every lane does the same compressions.
    let mut m = 0;
    for (i, t) in tasks.iter().enumerate() {
        if t.is_header() {
            out[i] = crate::model::job::header_words_from_bytes(&t.data);
        } else {
            let ctx = &jobs[t.job as usize];
            sc.order[m] = (
                ctx.tail_blocks(t.en_len as usize) as u16,
                ctx.branch.len() as u16,
                i as u16,
            );
            m += 1;
        }
    }
    sc.order[..m].sort_unstable();
    let mut start = 0;
    while start < m {
        let (nb, depth, _) = sc.order[start];
        let mut end = start;
        while end < m && sc.order[end].0 == nb && sc.order[end].1 == depth {
            end += 1;
        }
        let g = end - start;
        let group = &sc.order[start..end];
        let st = &mut sc.states[..g];
        for (s, &(_, _, i)) in st.iter_mut().zip(group) {
            *s = jobs[tasks[i as usize].job as usize].coinb1_midstate;
        }
        // Coinbase tail blocks.
        for b in 0..nb as usize {
            let bl = &mut sc.blocks[..g];
            for (blk, &(_, _, i)) in bl.iter_mut().zip(group) {
                let t = &tasks[i as usize];
                *blk = jobs[t.job as usize].coinbase_block(t.extranonce(), b);
            }
            engine.compress(st, bl);
        }
        // txid = SHA-256 of the coinbase digest; then the merkle fold.
        engine.sha256_32(st);
        for level in 0..depth as usize {
            let r = &mut sc.right[..g];
            for (rr, &(_, _, i)) in r.iter_mut().zip(group) {
                *rr = jobs[tasks[i as usize].job as usize].branch[level];
            }
            engine.sha256d_64(st, r);
        }
        for (&(_, _, i), root) in group.iter().zip(st.iter()) {
            let t = &tasks[i as usize];
            out[i as usize] = jobs[t.job as usize].header_words(t.version, root, t.ntime, t.nonce);
        }
        start = end;
    }
}
