//! The OpenCL backend: kernels/sha256d.cl on any OpenCL 1.2+ device (and, on machines without
//! a GPU, on PoCL, which compiles the same kernel for the CPU).
//!
//! The OpenCL library is loaded at run time (opencl3's `dynamic` feature), so the binary links
//! and runs where none is installed; opening the backend there is an error that says what to
//! install. Device buffers are allocated on first use, grown when a batch needs more, and
//! reused. A batch larger than the configured chunk is split into several dispatches.

use super::gpu::{self, GpuOptions, OUT_WORDS, TARGET_WORDS};
use super::Backend;
use crate::model::validate::TaskMeta;
use crate::model::{HashTask, JobCtx};
use crate::sha256::State;
use opencl3::command_queue::CommandQueue;
use opencl3::context::Context;
use opencl3::device::{Device, CL_DEVICE_TYPE_ALL};
use opencl3::kernel::Kernel;
use opencl3::memory::{Buffer, ClMem, CL_MEM_READ_ONLY, CL_MEM_WRITE_ONLY};
use opencl3::program::Program;
use opencl3::types::{cl_device_id, cl_uint, CL_BLOCKING, CL_NON_BLOCKING};
use std::ptr;
use std::sync::{Arc, Mutex};

/// The kernel source compiled into the binary.
pub const KERNEL: &str = include_str!("../../kernels/sha256d.cl");

/// What to tell a user whose machine has no OpenCL.
pub const INSTALL_HINT: &str = "install the GPU vendor's OpenCL driver and the ICD loader \
    (on a machine without a GPU: PoCL, Debian/Ubuntu packages pocl-opencl-icd and \
    ocl-icd-libopencl1) or choose another backend (backend.kind = \"cpu\")";

/// One OpenCL device as `sharecheck backends` lists it.
#[derive(Debug, Clone)]
pub struct DeviceDesc {
    pub index: usize,
    pub name: String,
    pub platform: String,
    pub version: String,
}

fn cl_err(what: &str, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("opencl: {what}: {e}")
}

/// Serialises OpenCL discovery and setup within the process: the ICD loader's first
/// clGetPlatformIDs is not thread-safe (two threads opening backends at once made one of them
/// see no platform, or crash), and program builds share the platform compiler.
static SETUP: Mutex<()> = Mutex::new(());

fn setup_lock() -> std::sync::MutexGuard<'static, ()> {
    // The guarded data is (): a panic while holding it leaves nothing inconsistent.
    SETUP.lock().unwrap_or_else(|p| p.into_inner())
}

/// All OpenCL devices of every platform, in the order `backend.device` indexes them; an error
/// that says what to install when there is no OpenCL library or platform.
pub fn device_ids() -> anyhow::Result<Vec<cl_device_id>> {
    let _g = setup_lock();
    device_ids_unlocked()
}

fn device_ids_unlocked() -> anyhow::Result<Vec<cl_device_id>> {
    let platforms = match opencl3::platform::get_platforms() {
        Ok(p) => p,
        Err(e) if e.0 == opencl3::error_codes::DLOPEN_RUNTIME_LOAD_FAILED => {
            anyhow::bail!("opencl: no OpenCL library (libOpenCL.so.1) found; {INSTALL_HINT}")
        }
        Err(e) => anyhow::bail!("opencl: no OpenCL platform ({e}); {INSTALL_HINT}"),
    };
    let mut ids = Vec::new();
    for p in platforms {
        // A platform without devices answers CL_DEVICE_NOT_FOUND: skip it.
        if let Ok(mut d) = p.get_devices(CL_DEVICE_TYPE_ALL) {
            ids.append(&mut d);
        }
    }
    anyhow::ensure!(
        !ids.is_empty(),
        "opencl: no OpenCL device found; {INSTALL_HINT}"
    );
    Ok(ids)
}

/// Every OpenCL device (with its platform), or why there are none.
pub fn devices() -> anyhow::Result<Vec<DeviceDesc>> {
    let _g = setup_lock();
    Ok(device_ids_unlocked()?
        .into_iter()
        .enumerate()
        .map(|(index, id)| {
            let d = Device::new(id);
            let platform = d
                .platform()
                .ok()
                .and_then(|p| opencl3::platform::Platform::new(p).name().ok())
                .unwrap_or_default();
            DeviceDesc {
                index,
                name: d.name().unwrap_or_else(|_| "?".into()).trim().to_string(),
                platform: platform.trim().to_string(),
                version: d.version().unwrap_or_default().trim().to_string(),
            }
        })
        .collect())
}

struct Buffers {
    jobs: Buffer<u32>,
    tasks: Buffer<u32>,
    targets: Buffer<u32>,
    out: Buffer<u32>,
    task_cap: usize,
    job_cap: usize,
}

struct Inner {
    queue: CommandQueue,
    kernel: Kernel,
    bufs: Option<Buffers>,
    tag: u32,
    job_words: Vec<u32>,
    target_words: Vec<u32>,
    task_scratch: Vec<u32>,
    out_words: Vec<u32>,
}

pub struct OpenClBackend {
    // Field order matters: the queue, kernel and buffers go before the context they live in.
    inner: Mutex<Inner>,
    context: Context,
    name: String,
    opts: GpuOptions,
    max_alloc: u64,
}

impl OpenClBackend {
    /// Opens OpenCL device `opts.device` with the shipped kernel.
    pub fn new(opts: GpuOptions) -> anyhow::Result<OpenClBackend> {
        Self::with_kernel(opts, KERNEL)
    }

    /// Opens OpenCL device `opts.device` with the given kernel source (tests use this to check
    /// that a broken kernel is caught).
    pub fn with_kernel(opts: GpuOptions, source: &str) -> anyhow::Result<OpenClBackend> {
        anyhow::ensure!(
            opts.work_group_size > 0,
            "backend.work_group_size must be at least 1"
        );
        anyhow::ensure!(opts.chunk > 0, "the dispatch size must be at least 1 task");
        let _g = setup_lock();
        let ids = device_ids_unlocked()?;
        let Some(&id) = ids.get(opts.device) else {
            anyhow::bail!(
                "opencl: backend.device = {} but only {} device(s) exist; see `sharecheck backends`",
                opts.device,
                ids.len()
            );
        };
        let device = Device::new(id);
        let dev_name = device
            .name()
            .map_err(|e| cl_err("device name", e))?
            .trim()
            .to_string();
        let max_wg = device
            .max_work_group_size()
            .map_err(|e| cl_err("device limits", e))?;
        anyhow::ensure!(
            opts.work_group_size as usize <= max_wg,
            "opencl: backend.work_group_size = {} exceeds {dev_name}'s limit of {max_wg}",
            opts.work_group_size
        );
        let max_alloc = device
            .max_mem_alloc_size()
            .map_err(|e| cl_err("device limits", e))?;
        let context = Context::from_device(&device).map_err(|e| cl_err("create context", e))?;
        // clCreateCommandQueue: the OpenCL 1.2 call, which every device has.
        let queue = CommandQueue::create_default(&context, 0)
            .map_err(|e| cl_err("create command queue", e))?;
        let program =
            Program::create_and_build_from_source(&context, source, "").map_err(|log| {
                anyhow::anyhow!("opencl: the kernel does not build on {dev_name}: {log}")
            })?;
        let kernel = Kernel::create(&program, "sha256d").map_err(|e| cl_err("create kernel", e))?;
        let kwg = kernel
            .get_work_group_size(id)
            .map_err(|e| cl_err("kernel limits", e))?;
        anyhow::ensure!(
            opts.work_group_size as usize <= kwg,
            "opencl: backend.work_group_size = {} exceeds the kernel's limit of {kwg} on {dev_name}",
            opts.work_group_size
        );
        Ok(OpenClBackend {
            inner: Mutex::new(Inner {
                queue,
                kernel,
                bufs: None,
                tag: 0,
                job_words: Vec::new(),
                target_words: Vec::new(),
                task_scratch: Vec::new(),
                out_words: Vec::new(),
            }),
            context,
            name: format!("opencl:{dev_name}"),
            opts,
            max_alloc,
        })
    }

    fn chunk(&self) -> usize {
        let fit = (self.max_alloc / (gpu::TASK_WORDS as u64 * 4)).max(1) as usize;
        self.opts.chunk.min(fit)
    }

    fn ensure_buffers(
        &self,
        inner: &mut Inner,
        tasks: usize,
        job_words: usize,
    ) -> anyhow::Result<()> {
        if let Some(b) = &inner.bufs {
            if b.task_cap >= tasks && b.job_cap >= job_words {
                return Ok(());
            }
        }
        let old = inner.bufs.as_ref().map(|b| (b.task_cap, b.job_cap));
        let (task_cap, job_cap) = gpu::grown_capacity(tasks, job_words, old, self.chunk());
        anyhow::ensure!(
            (job_cap * 4) as u64 <= self.max_alloc,
            "opencl: the job table needs {} bytes, more than the device allows in one buffer; \
             use smaller batches",
            job_cap * 4
        );
        inner.bufs = None; // release the old ones first
        let ctx = &self.context;
        // SAFETY: no host pointer is passed; the buffers are owned by the returned objects.
        let mk = |flags, n: usize| unsafe {
            Buffer::<u32>::create(ctx, flags, n, ptr::null_mut())
                .map_err(|e| cl_err(&format!("allocate {} bytes", n * 4), e))
        };
        inner.bufs = Some(Buffers {
            jobs: mk(CL_MEM_READ_ONLY, job_cap)?,
            tasks: mk(CL_MEM_READ_ONLY, task_cap * gpu::TASK_WORDS)?,
            targets: mk(CL_MEM_READ_ONLY, task_cap * TARGET_WORDS)?,
            out: mk(CL_MEM_WRITE_ONLY, task_cap * OUT_WORDS)?,
            task_cap,
            job_cap,
        });
        Ok(())
    }

    fn run(
        &self,
        jobs: &[Arc<JobCtx>],
        tasks: &[HashTask],
        meta: Option<&[TaskMeta]>,
        out: &mut [State],
    ) -> anyhow::Result<()> {
        gpu::check_batch(jobs, tasks, meta, out)?;
        if tasks.is_empty() {
            return Ok(());
        }
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| anyhow::anyhow!("opencl backend poisoned by an earlier panic"))?;
        let inner = &mut *guard;
        gpu::pack_jobs(jobs, &mut inner.job_words);
        let chunk = self.chunk();
        self.ensure_buffers(inner, tasks.len().min(chunk), inner.job_words.len())?;
        let Inner {
            queue,
            kernel,
            bufs,
            tag,
            job_words,
            target_words,
            task_scratch,
            out_words,
        } = inner;
        let bufs = bufs.as_mut().expect("buffers were just made");
        // SAFETY (all enqueue calls below): every host slice outlives its transfer, because
        // each batch ends with a blocking read after which the queue is idle.
        unsafe {
            queue
                .enqueue_write_buffer(&mut bufs.jobs, CL_NON_BLOCKING, 0, job_words, &[])
                .map_err(|e| cl_err("upload the job table", e))?;
        }
        let wg = self.opts.work_group_size as usize;
        let mut start = 0;
        while start < tasks.len() {
            let end = (start + chunk).min(tasks.len());
            let (t, o) = (&tasks[start..end], &mut out[start..end]);
            let m = meta.map(|m| &m[start..end]);
            let n = t.len();
            let tg = gpu::next_tag(tag);
            let words = gpu::task_words(t, task_scratch);
            unsafe {
                queue
                    .enqueue_write_buffer(&mut bufs.tasks, CL_BLOCKING, 0, words, &[])
                    .map_err(|e| cl_err("upload tasks", e))?;
                if let Some(m) = m {
                    gpu::pack_targets(m, target_words);
                    queue
                        .enqueue_write_buffer(&mut bufs.targets, CL_BLOCKING, 0, target_words, &[])
                        .map_err(|e| cl_err("upload targets", e))?;
                }
                let args: [cl_uint; 4] = [n as u32, tg, m.is_some() as u32, jobs.len() as u32];
                kernel
                    .set_arg(0, &bufs.jobs.get())
                    .and_then(|_| kernel.set_arg(1, &bufs.tasks.get()))
                    .and_then(|_| kernel.set_arg(2, &bufs.targets.get()))
                    .and_then(|_| kernel.set_arg(3, &bufs.out.get()))
                    .and_then(|_| kernel.set_arg(4, &args[0]))
                    .and_then(|_| kernel.set_arg(5, &args[1]))
                    .and_then(|_| kernel.set_arg(6, &args[2]))
                    .and_then(|_| kernel.set_arg(7, &args[3]))
                    .map_err(|e| cl_err("set kernel arguments", e))?;
                let global = n.div_ceil(wg) * wg;
                queue
                    .enqueue_nd_range_kernel(kernel.get(), 1, ptr::null(), &global, &wg, &[])
                    .map_err(|e| cl_err("launch the kernel", e))?;
                out_words.resize(n * OUT_WORDS, 0);
                queue
                    .enqueue_read_buffer(&bufs.out, CL_BLOCKING, 0, out_words, &[])
                    .map_err(|e| cl_err("read the results", e))?;
            }
            gpu::unpack(out_words, tg, m, o)?;
            start = end;
        }
        Ok(())
    }
}

impl Backend for OpenClBackend {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn hash(
        &self,
        jobs: &[Arc<JobCtx>],
        tasks: &[HashTask],
        out: &mut [State],
    ) -> anyhow::Result<()> {
        self.run(jobs, tasks, None, out)
    }

    fn hash_checked(
        &self,
        jobs: &[Arc<JobCtx>],
        tasks: &[HashTask],
        meta: &[TaskMeta],
        out: &mut [State],
    ) -> anyhow::Result<()> {
        self.run(jobs, tasks, Some(meta), out)
    }
}
