//! The CPU backend: a SHA-256 [`Engine`] (scalar, SHA-NI, AVX2 or AVX-512, chosen at run time)
//! driven over many shares at once and spread across cores with rayon.
//!
//! Work is cut into chunks of up to [`CHUNK`] tasks. Within a chunk, stratum shares are grouped
//! by shape (coinbase tail blocks, branch depth) so that every lane of an engine call does the
//! same sequence of compressions; lanes may belong to different jobs. All scratch space lives on
//! the stack: no heap allocation per share.

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
        if tasks.len() <= CHUNK {
            hash_chunk(engine, jobs, tasks, out);
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

/// Hashes up to CHUNK tasks with one engine, on the calling thread.
pub fn hash_chunk(
    engine: &dyn Engine,
    jobs: &[Arc<JobCtx>],
    tasks: &[HashTask],
    out: &mut [State],
) {
    debug_assert!(tasks.len() <= CHUNK && out.len() == tasks.len());
    let mut headers = [[0u32; 20]; CHUNK];
    let mut hashes = [[0u32; 8]; CHUNK];
    // Header shares first: they need nothing but their 80 bytes.
    let mut idx = [0u16; CHUNK];
    let mut n = 0;
    for (i, t) in tasks.iter().enumerate() {
        if t.is_header() {
            headers[n] = crate::model::job::header_words_from_bytes(&t.data);
            idx[n] = i as u16;
            n += 1;
        }
    }
    if n > 0 {
        engine.sha256d_80(&headers[..n], &mut hashes[..n]);
        for k in 0..n {
            out[idx[k] as usize] = hashes[k];
        }
    }
    // Stratum shares, grouped by shape: (tail blocks, branch depth, original index).
    let mut order = [(0u16, 0u16, 0u16); CHUNK];
    let mut m = 0;
    for (i, t) in tasks.iter().enumerate() {
        if !t.is_header() {
            let ctx = &jobs[t.job as usize];
            order[m] = (
                ctx.tail_blocks(t.en_len as usize) as u16,
                ctx.branch.len() as u16,
                i as u16,
            );
            m += 1;
        }
    }
    let order = &mut order[..m];
    order.sort_unstable();
    let mut states = [[0u32; 8]; CHUNK];
    let mut blocks = [[0u32; 16]; CHUNK];
    let mut right = [[0u32; 8]; CHUNK];
    let mut start = 0;
    while start < m {
        let (nb, depth, _) = order[start];
        let mut end = start;
        while end < m && order[end].0 == nb && order[end].1 == depth {
            end += 1;
        }
        let group = &order[start..end];
        let g = group.len();
        let st = &mut states[..g];
        for (s, &(_, _, i)) in st.iter_mut().zip(group) {
            *s = jobs[tasks[i as usize].job as usize].coinb1_midstate;
        }
        // Coinbase tail blocks.
        for b in 0..nb as usize {
            let bl: &mut [Block] = &mut blocks[..g];
            for (blk, &(_, _, i)) in bl.iter_mut().zip(group) {
                let t = &tasks[i as usize];
                *blk = jobs[t.job as usize].tail_block(t.extranonce(), b);
            }
            engine.compress(st, bl);
        }
        // txid = SHA-256 of the coinbase digest; then the merkle fold.
        engine.sha256_32(st);
        for level in 0..depth as usize {
            let r = &mut right[..g];
            for (rr, &(_, _, i)) in r.iter_mut().zip(group) {
                *rr = jobs[tasks[i as usize].job as usize].branch[level];
            }
            engine.sha256d_64(st, r);
        }
        // The header.
        let hw = &mut headers[..g];
        for ((h, &(_, _, i)), root) in hw.iter_mut().zip(group).zip(st.iter()) {
            let t = &tasks[i as usize];
            *h = jobs[t.job as usize].header_words(t.version, root, t.ntime, t.nonce);
        }
        let hs = &mut hashes[..g];
        engine.sha256d_80(hw, hs);
        for (h, &(_, _, i)) in hs.iter().zip(group) {
            out[i as usize] = *h;
        }
        start = end;
    }
}
