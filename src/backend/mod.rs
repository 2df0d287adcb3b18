//! Backends: where the hashing happens. Each backend lives in its own module behind the one
//! [`Backend`] trait; everything before and after the hash (checks 1–6 and 7 of the contract)
//! stays in [`crate::model::validate`], so every backend gives the same verdicts.

pub mod cpu;
pub mod fallback;
pub mod fixture;
#[cfg(feature = "fpga")]
pub mod fpga;
pub mod gpu;
#[cfg(feature = "gpu")]
pub mod opencl;
pub mod select;
#[cfg(feature = "gpu")]
pub mod wgpu;

use crate::model::validate::TaskMeta;
use crate::model::{HashTask, JobCtx};
use crate::sha256::State;
use std::sync::Arc;

pub use crate::config::BackendKind;
pub use select::{open_with, Options};

/// A hashing backend.
pub trait Backend: Send + Sync {
    /// The name it is selected by, e.g. `cpu:sha-ni`.
    fn name(&self) -> String;

    /// `out[i]` = SHA-256d state of the block header that `tasks[i]` makes with its job from
    /// `jobs` (header shares carry their header). `out.len() == tasks.len()`.
    fn hash(
        &self,
        jobs: &[Arc<JobCtx>],
        tasks: &[HashTask],
        out: &mut [State],
    ) -> anyhow::Result<()>;

    /// Like [`Backend::hash`], given each task's targets too (`meta[i]` for `tasks[i]`). A
    /// backend that compares against the targets on its device (the GPU backends) checks its
    /// comparisons against the host's own reading of the returned hashes and fails the batch
    /// on any disagreement; the others just hash.
    fn hash_checked(
        &self,
        jobs: &[Arc<JobCtx>],
        tasks: &[HashTask],
        meta: &[TaskMeta],
        out: &mut [State],
    ) -> anyhow::Result<()> {
        let _ = meta;
        self.hash(jobs, tasks, out)
    }

    /// The device's own SHA-256 ceiling in compressions per second (see
    /// [`gpu::ceiling`]), measured now (a fraction of a second); `None` for backends without
    /// one (the CPU's is `cargo run --release --example sha_speed`).
    fn ceiling(&self) -> Option<anyhow::Result<f64>> {
        None
    }
}

/// Backend names `open` understands: the words of `backend.kind`.
pub const NAMES: &[&str] = BackendKind::WORDS;

/// Opens a backend by name with default device settings. `threads` = 0 means one per core.
/// See [`open_with`] for the GPU settings.
pub fn open(name: &str, threads: usize) -> anyhow::Result<Box<dyn Backend>> {
    open_with(&Options {
        kind: name.parse()?,
        threads,
        ..Options::default()
    })
}
