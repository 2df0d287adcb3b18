//! Choosing a backend at run time: by name, or `auto` (self-test every available backend on
//! known vectors, measure each at the configured batch size, take the fastest), and the probe
//! behind `sharecheck backends`.
//!
//! A GPU backend is always wrapped in a [`Fallback`] to the CPU: it must pass its self-test to
//! be used at all, and an error while running takes it out of service with its batch redone on
//! the CPU.

use super::cpu::CpuBackend;
use super::fallback::Fallback;
use super::fixture;
use super::gpu::GpuOptions;
#[cfg(feature = "gpu")]
use super::opencl::OpenClBackend;
#[cfg(feature = "gpu")]
use super::wgpu::WgpuBackend;
use super::{Backend, BackendKind};
use crate::model::validate::TaskMeta;
use crate::model::U256;
use std::time::Duration;

/// Everything that decides which backend runs and how (the `[backend]` config table).
#[derive(Debug, Clone)]
pub struct Options {
    /// `backend.kind`.
    pub kind: BackendKind,
    /// CPU worker threads; 0 = one per core.
    pub threads: usize,
    /// Device index for `wgpu` / `opencl`.
    pub device: usize,
    /// Work-group size for `wgpu` / `opencl`.
    pub work_group_size: u32,
    /// The batch size the service will use; `auto` measures at this size.
    pub batch: usize,
    /// How long `auto` measures each candidate.
    pub measure: Duration,
    /// The FPGA's streams (`fpga`).
    pub fpga: crate::config::FpgaConfig,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            kind: BackendKind::Cpu,
            threads: 0,
            device: 0,
            work_group_size: 64,
            batch: 8192,
            measure: Duration::from_millis(300),
            fpga: Default::default(),
        }
    }
}

impl Options {
    /// From the `[backend]` config table.
    pub fn from_config(c: &crate::config::BackendConfig) -> Options {
        Options {
            kind: c.kind,
            threads: c.threads,
            device: c.device,
            work_group_size: c.work_group_size,
            batch: c.batch.max_shares,
            fpga: c.fpga.clone(),
            ..Options::default()
        }
    }

    fn gpu(&self, device: usize) -> GpuOptions {
        GpuOptions {
            device,
            work_group_size: self.work_group_size,
            ..GpuOptions::default()
        }
    }
}

/// Opens the backend `opts.kind` names. An explicitly named GPU backend that cannot start or
/// fails its self-test is an error (the operator asked for it); `auto` skips it instead.
pub fn open_with(opts: &Options) -> anyhow::Result<Box<dyn Backend>> {
    match opts.kind {
        BackendKind::Cpu
        | BackendKind::CpuScalar
        | BackendKind::CpuShaNi
        | BackendKind::CpuAvx512
        | BackendKind::CpuAvx2 => Ok(Box::new(CpuBackend::new(
            opts.kind.cpu_path(),
            opts.threads,
        )?)),
        BackendKind::Wgpu | BackendKind::OpenCl => {
            let gpu = open_gpu(opts.kind.as_str(), &opts.gpu(opts.device))?;
            self_test(gpu.as_ref()).map_err(|e| {
                anyhow::anyhow!(
                    "{} failed its self-test, so it is not used: {e:#}; choose backend.kind = \"cpu\"",
                    gpu.name()
                )
            })?;
            Ok(Box::new(Fallback::new(
                gpu,
                Box::new(CpuBackend::new(None, opts.threads)?),
            )))
        }
        BackendKind::Auto => auto(opts),
        #[cfg(not(feature = "fpga"))]
        BackendKind::Fpga => {
            anyhow::bail!("fpga: this sharecheck was built without its fpga feature")
        }
        #[cfg(feature = "fpga")]
        BackendKind::Fpga => {
            let card: Box<dyn Backend> =
                Box::new(super::fpga::FpgaBackend::new(opts.fpga.clone())?);
            self_test(card.as_ref()).map_err(|e| {
                anyhow::anyhow!("the FPGA failed its self-test, so it is not used: {e:#}")
            })?;
            Ok(Box::new(Fallback::new(
                card,
                Box::new(CpuBackend::new(None, opts.threads)?),
            )))
        }
    }
}

/// Why a GPU backend cannot be had in a build without the `gpu` feature.
#[cfg(not(feature = "gpu"))]
const NO_GPU: &str = "this sharecheck was built without its gpu feature (no wgpu, no OpenCL)";

/// Opens a GPU backend of `api` (`wgpu` or `opencl`) without the self-test or the fallback.
#[cfg(not(feature = "gpu"))]
pub fn open_gpu(api: &str, _: &GpuOptions) -> anyhow::Result<Box<dyn Backend>> {
    anyhow::bail!("{api}: {NO_GPU}")
}

/// Opens a GPU backend of `api` (`wgpu` or `opencl`) without the self-test or the fallback.
#[cfg(feature = "gpu")]
pub fn open_gpu(api: &str, g: &GpuOptions) -> anyhow::Result<Box<dyn Backend>> {
    Ok(match api {
        "wgpu" => Box::new(WgpuBackend::new(g.clone())?),
        "opencl" => Box::new(OpenClBackend::new(g.clone())?),
        _ => anyhow::bail!("{api:?} is not a GPU backend (wgpu, opencl)"),
    })
}

/// Known-answer test: stratum and header fixtures against the scalar reference, and the
/// device-side target comparisons on targets that every hash meets and that none meets.
pub fn self_test(b: &dyn Backend) -> anyhow::Result<()> {
    let s = fixture::stratum_fixture(300, 1);
    fixture::check_against_reference(b, &s)?;
    let h = fixture::header_fixture(301, 1);
    fixture::check_against_reference(b, &h)?;
    let meta: Vec<TaskMeta> = (0..s.tasks.len())
        .map(|i| TaskMeta {
            id: i as u64,
            share_target: if i % 2 == 0 { U256::MAX } else { U256::ZERO },
            network_target: if i % 3 == 0 { U256::MAX } else { U256::ZERO },
        })
        .collect();
    let mut out = vec![[0u32; 8]; s.tasks.len()];
    b.hash_checked(&s.jobs, &s.tasks, &meta, &mut out)?;
    Ok(())
}

/// Shares/s of `b` on stratum shares at `batch` shares per call.
pub fn measure(b: &dyn Backend, batch: usize, time: Duration) -> anyhow::Result<f64> {
    let f = fixture::stratum_fixture(batch.max(1), 7);
    let mut out = vec![[0u32; 8]; f.tasks.len()];
    let mut err = None;
    let rate = fixture::measure(time, f.tasks.len(), || {
        if err.is_none() {
            if let Err(e) = b.hash(&f.jobs, &f.tasks, &mut out) {
                err = Some(e);
            }
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(rate),
    }
}

/// One backend or device as `sharecheck backends` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Probe {
    /// The `backend.kind` that selects it.
    pub kind: String,
    /// The `backend.device` index (GPU backends).
    pub device: Option<usize>,
    /// What it runs on.
    pub name: String,
    pub available: bool,
    /// Why it is not available, or why its self-test failed.
    pub reason: Option<String>,
    /// `Some(true)` passed, `Some(false)` failed, `None` not run.
    pub self_test: Option<bool>,
    pub shares_per_sec: Option<f64>,
    /// GPU backends: the device's ceiling in SHA-256 compressions/s ([`super::gpu::ceiling`])
    /// and the fraction of it `shares_per_sec` reaches (stratum shares: 44 compressions each).
    pub ceiling_compressions_per_sec: Option<f64>,
    pub fraction_of_ceiling: Option<f64>,
}

fn probe_one(
    kind: &str,
    device: Option<usize>,
    name: String,
    b: anyhow::Result<Box<dyn Backend>>,
    opts: &Options,
    ceiling: bool,
) -> Probe {
    let mut p = Probe {
        kind: kind.to_string(),
        device,
        name,
        available: false,
        reason: None,
        self_test: None,
        shares_per_sec: None,
        ceiling_compressions_per_sec: None,
        fraction_of_ceiling: None,
    };
    let b = match b {
        Ok(b) => b,
        Err(e) => {
            p.reason = Some(format!("{e:#}"));
            return p;
        }
    };
    p.available = true;
    p.name = b.name();
    match self_test(b.as_ref()) {
        Ok(()) => p.self_test = Some(true),
        Err(e) => {
            p.self_test = Some(false);
            p.reason = Some(format!("self-test failed: {e:#}"));
            return p;
        }
    }
    match measure(b.as_ref(), opts.batch, opts.measure) {
        Ok(r) => p.shares_per_sec = Some(r),
        Err(e) => p.reason = Some(format!("measurement failed: {e:#}")),
    }
    match b.ceiling().filter(|_| ceiling) {
        Some(Ok(c)) => {
            p.ceiling_compressions_per_sec = Some(c);
            p.fraction_of_ceiling = p
                .shares_per_sec
                .map(|r| r * super::gpu::ceiling::device_compressions("stratum") / c);
        }
        Some(Err(e)) => p.reason = Some(format!("ceiling not measured: {e:#}")),
        None => {}
    }
    p
}

/// Every backend and device this build knows, available or not (and why), with its self-test
/// result and measured shares/s at `opts.batch`. `full` (what `sharecheck backends` shows)
/// adds every CPU path and each GPU's ceiling; `auto` needs neither.
pub fn probe_all(opts: &Options, full: bool) -> Vec<Probe> {
    let mut out = Vec::new();
    let paths: Vec<&str> = if full {
        vec!["scalar", "sha-ni", "avx2", "avx512"]
    } else {
        vec![]
    };
    let best = CpuBackend::new(None, opts.threads);
    out.push(probe_one(
        "cpu",
        None,
        "cpu".into(),
        best.map(|b| Box::new(b) as Box<dyn Backend>),
        opts,
        false,
    ));
    for p in paths {
        let kind = format!("cpu:{p}");
        let b = CpuBackend::new(Some(p), opts.threads).map(|b| Box::new(b) as Box<dyn Backend>);
        out.push(probe_one(&kind, None, kind.clone(), b, opts, false));
    }
    probe_gpus(opts, full, &mut out);
    out
}

/// Without the `gpu` feature: one line per GPU API saying so.
#[cfg(not(feature = "gpu"))]
fn probe_gpus(_: &Options, _: bool, out: &mut Vec<Probe>) {
    for kind in ["wgpu", "opencl"] {
        out.push(Probe {
            kind: kind.into(),
            device: None,
            name: "-".into(),
            available: false,
            reason: Some(NO_GPU.into()),
            self_test: None,
            shares_per_sec: None,
            ceiling_compressions_per_sec: None,
            fraction_of_ceiling: None,
        });
    }
}

/// Every wgpu adapter and OpenCL device, or one line per API saying why there is none.
#[cfg(feature = "gpu")]
fn probe_gpus(opts: &Options, ceiling: bool, out: &mut Vec<Probe>) {
    let adapters = super::wgpu::adapters();
    if adapters.is_empty() {
        out.push(Probe {
            kind: "wgpu".into(),
            device: None,
            name: "-".into(),
            available: false,
            reason: Some(super::wgpu::INSTALL_HINT.into()),
            self_test: None,
            shares_per_sec: None,
            ceiling_compressions_per_sec: None,
            fraction_of_ceiling: None,
        });
    }
    for a in adapters {
        let b = open_gpu("wgpu", &opts.gpu(a.index));
        let name = format!("{} ({}, {})", a.name, a.backend, a.device_type);
        out.push(probe_one("wgpu", Some(a.index), name, b, opts, ceiling));
    }
    match super::opencl::devices() {
        Err(e) => out.push(Probe {
            kind: "opencl".into(),
            device: None,
            name: "-".into(),
            available: false,
            reason: Some(format!("{e:#}")),
            self_test: None,
            shares_per_sec: None,
            ceiling_compressions_per_sec: None,
            fraction_of_ceiling: None,
        }),
        Ok(devs) => {
            for d in devs {
                let b = open_gpu("opencl", &opts.gpu(d.index));
                let name = format!("{} ({}, {})", d.name, d.platform, d.version);
                out.push(probe_one("opencl", Some(d.index), name, b, opts, ceiling));
            }
        }
    }
}

/// `auto`: the fastest backend that passes its self-test, measured at the configured batch
/// size. The CPU is always a candidate, so `auto` always finds one.
fn auto(opts: &Options) -> anyhow::Result<Box<dyn Backend>> {
    let probes = probe_all(opts, false);
    for p in &probes {
        tracing::info!(
            kind = %p.kind,
            device = ?p.device,
            name = %p.name,
            available = p.available,
            self_test = ?p.self_test,
            shares_per_sec = ?p.shares_per_sec.map(|r| r.round()),
            reason = p.reason.as_deref().unwrap_or(""),
            "auto: candidate"
        );
    }
    let best = probes
        .iter()
        .filter(|p| p.self_test == Some(true))
        .filter_map(|p| p.shares_per_sec.map(|r| (r, p)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, p)| p.clone());
    let chosen = match best {
        Some(p) if p.kind != "cpu" => {
            let gpu = open_gpu(&p.kind, &opts.gpu(p.device.unwrap_or(0)))?;
            Box::new(Fallback::new(
                gpu,
                Box::new(CpuBackend::new(None, opts.threads)?),
            )) as Box<dyn Backend>
        }
        _ => Box::new(CpuBackend::new(None, opts.threads)?) as Box<dyn Backend>,
    };
    tracing::info!(backend = %chosen.name(), batch = opts.batch, "auto: chose the fastest backend");
    Ok(chosen)
}
