//! A GPU backend with the CPU behind it: if the GPU backend errors (a device or driver error, a
//! read-back that does not check out, target flags that disagree with the host, a panic in the
//! driver bindings), the batch is redone on the CPU, the failure is logged and counted, and the
//! GPU backend is taken out of service: no share is lost or wrongly judged.

use super::Backend;
use crate::model::validate::TaskMeta;
use crate::model::{HashTask, JobCtx};
use crate::sha256::State;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Batches redone on the CPU since the process started, over every [`Fallback`] (for metrics).
pub static FALLBACK_BATCHES: AtomicU64 = AtomicU64::new(0);

pub struct Fallback {
    primary: Box<dyn Backend>,
    cpu: Box<dyn Backend>,
    failed: AtomicBool,
    failures: AtomicU64,
}

impl Fallback {
    pub fn new(primary: Box<dyn Backend>, cpu: Box<dyn Backend>) -> Fallback {
        Fallback {
            primary,
            cpu,
            failed: AtomicBool::new(false),
            failures: AtomicU64::new(0),
        }
    }

    /// Whether the primary backend has been taken out of service.
    pub fn primary_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    /// Batches this wrapper redid on the CPU.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Runs `f` on the primary backend unless it is out of service; on any failure, takes it
    /// out of service and runs `f` on the CPU backend instead.
    fn run(
        &self,
        tasks: usize,
        f: impl Fn(&dyn Backend) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        if !self.failed.load(Ordering::Relaxed) {
            let err = match catch_unwind(AssertUnwindSafe(|| f(self.primary.as_ref()))) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => format!("{e:#}"),
                Err(p) => {
                    let msg = p
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    format!("panicked: {msg}")
                }
            };
            self.failed.store(true, Ordering::Relaxed);
            self.failures.fetch_add(1, Ordering::Relaxed);
            FALLBACK_BATCHES.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                backend = %self.primary.name(),
                cpu = %self.cpu.name(),
                tasks,
                error = %err,
                "backend failed; batch redone on the CPU and the backend taken out of service"
            );
        } else {
            FALLBACK_BATCHES.fetch_add(1, Ordering::Relaxed);
        }
        f(self.cpu.as_ref())
    }
}

impl Backend for Fallback {
    fn name(&self) -> String {
        if self.primary_failed() {
            format!("{} (after {} failed)", self.cpu.name(), self.primary.name())
        } else {
            self.primary.name()
        }
    }

    fn hash(
        &self,
        jobs: &[Arc<JobCtx>],
        tasks: &[HashTask],
        out: &mut [State],
    ) -> anyhow::Result<()> {
        let out = std::cell::RefCell::new(out);
        self.run(tasks.len(), |b| {
            b.hash(jobs, tasks, &mut out.borrow_mut())?;
            spot_check(b, jobs, tasks, &out.borrow())
        })
    }

    fn hash_checked(
        &self,
        jobs: &[Arc<JobCtx>],
        tasks: &[HashTask],
        meta: &[TaskMeta],
        out: &mut [State],
    ) -> anyhow::Result<()> {
        let out = std::cell::RefCell::new(out);
        self.run(tasks.len(), |b| {
            b.hash_checked(jobs, tasks, meta, &mut out.borrow_mut())?;
            spot_check(b, jobs, tasks, &out.borrow())
        })
    }

    fn ceiling(&self) -> Option<anyhow::Result<f64>> {
        self.primary.ceiling()
    }
}

/// Recomputes a few of the batch's hashes with the scalar reference: a device that returns
/// well-formed but wrong hashes (a miscompiled kernel, a faulty card) is caught within a batch
/// or two instead of judging shares wrongly. Costs a few microseconds per batch.
fn spot_check(
    b: &dyn Backend,
    jobs: &[Arc<JobCtx>],
    tasks: &[HashTask],
    out: &[State],
) -> anyhow::Result<()> {
    if tasks.is_empty() {
        return Ok(());
    }
    let n = tasks.len();
    for i in [0, n / 2, n - 1, rand::random_range(0..n)] {
        let want = crate::model::validate::reference_hash(jobs, &tasks[i]);
        anyhow::ensure!(
            out[i] == want,
            "{} returned a wrong hash for task {i} of {n} (spot check against the reference)",
            b.name()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;

    /// A backend that fails in a chosen way, to exercise the fallback without a device.
    struct Broken(&'static str);

    impl Backend for Broken {
        fn name(&self) -> String {
            format!("broken:{}", self.0)
        }

        fn hash(
            &self,
            _jobs: &[Arc<JobCtx>],
            _tasks: &[HashTask],
            out: &mut [State],
        ) -> anyhow::Result<()> {
            match self.0 {
                "error" => anyhow::bail!("injected device error"),
                "panic" => panic!("injected panic"),
                _ => {
                    // Well-formed but wrong hashes: only the spot check can see them.
                    out.fill([7; 8]);
                    Ok(())
                }
            }
        }
    }

    #[test]
    fn every_failure_is_redone_on_the_cpu_and_takes_the_backend_out() {
        let f = crate::backend::fixture::stratum_fixture(100, 9);
        let want: Vec<State> = f
            .tasks
            .iter()
            .map(|t| crate::model::validate::reference_hash(&f.jobs, t))
            .collect();
        for how in ["error", "panic", "wrong"] {
            let fb = Fallback::new(
                Box::new(Broken(how)),
                Box::new(CpuBackend::new(Some("scalar"), 1).unwrap()),
            );
            for _ in 0..3 {
                let mut out = vec![[0; 8]; f.tasks.len()];
                fb.hash(&f.jobs, &f.tasks, &mut out).unwrap();
                assert_eq!(out, want, "{how}");
            }
            assert!(fb.primary_failed(), "{how}");
            assert_eq!(
                fb.failures(),
                1,
                "{how}: out of service after the first failure"
            );
            assert!(
                fb.name().starts_with("cpu:scalar (after broken:"),
                "{}",
                fb.name()
            );
        }
    }
}
