//! Backends: where the hashing happens. Each backend lives in its own module behind the one
//! [`Backend`] trait; everything before and after the hash (checks 1–6 and 7 of the contract)
//! stays in [`crate::model::validate`], so every backend gives the same verdicts.

pub mod cpu;
pub mod fpga;

use crate::model::{HashTask, JobCtx};
use crate::sha256::State;
use std::sync::Arc;

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
}

/// Backend names `open` understands.
pub const NAMES: &[&str] = &["cpu", "cpu:scalar", "cpu:sha-ni", "cpu:avx512", "cpu:avx2"];

/// Opens a backend by name. `threads` = 0 means one per core.
pub fn open(name: &str, threads: usize) -> anyhow::Result<Box<dyn Backend>> {
    match name {
        "cpu" => Ok(Box::new(cpu::CpuBackend::new(None, threads)?)),
        n if n.starts_with("cpu:") => Ok(Box::new(cpu::CpuBackend::new(Some(&n[4..]), threads)?)),
        "wgpu" | "opencl" | "fpga" => anyhow::bail!(
            "backend {name:?} is not built yet; available now: {}",
            NAMES.join(", ")
        ),
        _ => anyhow::bail!(
            "unknown backend {name:?}; choose one of: {}",
            NAMES.join(", ")
        ),
    }
}
