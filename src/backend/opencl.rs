//! The OpenCL backend: kernels/sha256d.cl on any OpenCL 1.2+ device (and, on machines without
//! a GPU, on PoCL, which compiles the same kernel for the CPU).
//!
//! The OpenCL library is loaded at run time (opencl3's `dynamic` feature), so the binary links
//! and runs where none is installed; opening the backend there is an error that says what to
//! install. Device buffers and pinned host buffers are allocated on first use, grown when a
//! batch needs more, and reused. A large batch is cut into dispatches that are pipelined over
//! three command queues ([`gpu::ring`], shared with the wgpu backend): the upload of one
//! overlaps the computing of another and the read-back of a third, and the host packs and
//! checks records (in parallel) while the device works.

use super::gpu::ring::{self, Ring};
use super::gpu::{self, GpuOptions, OUT_WORDS};
use super::Backend;
use crate::model::validate::TaskMeta;
use crate::model::{HashTask, JobCtx};
use crate::sha256::State;
use opencl3::command_queue::CommandQueue;
use opencl3::context::Context;
use opencl3::device::{Device, CL_DEVICE_TYPE_ALL};
use opencl3::event::Event;
use opencl3::kernel::Kernel;
use opencl3::memory::{
    Buffer, ClMem, CL_MAP_READ, CL_MAP_WRITE, CL_MEM_ALLOC_HOST_PTR, CL_MEM_READ_ONLY,
    CL_MEM_READ_WRITE, CL_MEM_WRITE_ONLY,
};
use opencl3::program::Program;
use opencl3::types::{cl_device_id, cl_mem, cl_mem_flags, cl_uint, CL_BLOCKING, CL_NON_BLOCKING};
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

/// A buffer in host memory the device can reach directly (CL_MEM_ALLOC_HOST_PTR; pinned memory
/// on NVIDIA), mapped once for the host's use: transfers from and to it run at full bus speed
/// instead of through the driver's bounce buffer.
struct Pinned {
    buf: Buffer<u32>,
    ptr: *mut u32,
    len: usize,
}

// SAFETY: the mapping belongs to the buffer, which is only used under the backend's mutex.
unsafe impl Send for Pinned {}

impl Pinned {
    fn new(ctx: &Context, queue: &CommandQueue, len: usize) -> anyhow::Result<Pinned> {
        let len = len.max(1);
        // SAFETY: no host pointer is passed; the mapping is released in Drop via `unmap`.
        unsafe {
            let buf = Buffer::<u32>::create(
                ctx,
                CL_MEM_READ_WRITE | CL_MEM_ALLOC_HOST_PTR,
                len,
                ptr::null_mut(),
            )
            .map_err(|e| cl_err(&format!("allocate {} bytes of host memory", len * 4), e))?;
            let mut p: cl_mem = ptr::null_mut();
            queue
                .enqueue_map_buffer(
                    &buf,
                    CL_BLOCKING,
                    CL_MAP_READ | CL_MAP_WRITE,
                    0,
                    len * 4,
                    &mut p,
                    &[],
                )
                .map_err(|e| cl_err("map host memory", e))?;
            anyhow::ensure!(!p.is_null(), "opencl: mapping host memory gave no address");
            Ok(Pinned {
                buf,
                ptr: p.cast(),
                len,
            })
        }
    }

    fn slice(&self, n: usize) -> &[u32] {
        // SAFETY: the mapping is `len` words long and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, n.min(self.len)) }
    }

    fn slice_mut(&mut self, n: usize) -> &mut [u32] {
        // SAFETY: as above; `&mut self` makes the host's access exclusive, and the slot's
        // transfers from and to it have finished (the slot was waited for).
        unsafe { std::slice::from_raw_parts_mut(self.ptr, n.min(self.len)) }
    }

    fn unmap(&mut self, queue: &CommandQueue) {
        // SAFETY: the pointer came from mapping this buffer; afterwards it is not used.
        unsafe {
            let _ = queue.enqueue_unmap_mem_object(self.buf.get(), self.ptr.cast(), &[]);
        }
        let _ = queue.finish();
        self.len = 0;
    }
}

/// One dispatch's worth of buffers with its own queue.
struct Slot {
    queue: CommandQueue,
    jobs: Buffer<u32>,
    tasks: Buffer<u32>,
    targets: Buffer<u32>,
    out: Buffer<u32>,
    host_in: Pinned,
    host_out: Pinned,
    /// Target pairs of the current dispatch (host memory the upload reads from).
    target_words: Vec<u32>,
    /// Capacity in words of `targets`.
    target_cap: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = self.queue.finish();
        self.host_in.unmap(&self.queue);
        self.host_out.unmap(&self.queue);
    }
}

/// The device as the pipeline ring drives it.
struct Cl {
    // Field order matters: the kernel goes before the context it lives in (and the ring drops
    // its slots before this).
    kernel: Kernel,
    /// The ceiling kernel ([`gpu::ceiling`]), when the source has one.
    ceiling: Option<Kernel>,
    context: Context,
    work_group_size: usize,
    max_alloc: u64,
}

pub struct OpenClBackend {
    ring: Mutex<Ring<Cl>>,
    name: String,
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
        // Tasks per dispatch: the configured chunk, bounded by what one buffer may hold.
        let per_task = (gpu::HEADER_REC_WORDS.max(OUT_WORDS) * 4) as u64;
        let fit = (max_alloc / per_task).max(1) as usize;
        let ceiling = Kernel::create(&program, "ceiling").ok();
        let cl = Cl {
            kernel,
            ceiling,
            context,
            work_group_size: opts.work_group_size as usize,
            max_alloc,
        };
        Ok(OpenClBackend {
            ring: Mutex::new(Ring::new(cl, opts.chunk.min(fit))),
            name: format!("opencl:{dev_name}"),
        })
    }

    fn run(
        &self,
        jobs: &[Arc<JobCtx>],
        tasks: &[HashTask],
        meta: Option<&[TaskMeta]>,
        out: &mut [State],
    ) -> anyhow::Result<()> {
        let stride = gpu::check_batch(jobs, tasks, meta, out)?;
        if tasks.is_empty() {
            return Ok(());
        }
        let mut ring = self
            .ring
            .lock()
            .map_err(|_| anyhow::anyhow!("opencl backend poisoned by an earlier panic"))?;
        ring.run(jobs, tasks, meta, out, stride)
    }
}

impl Cl {
    /// One dispatch of the ceiling kernel: `items` work items of `rounds` rounds; their states.
    fn run_ceiling(&self, items: usize, rounds: u32) -> anyhow::Result<Vec<u32>> {
        let kernel = self
            .ceiling
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("opencl: the kernel source has no ceiling kernel"))?;
        let queue = CommandQueue::create_default(&self.context, 0)
            .map_err(|e| cl_err("create command queue", e))?;
        let wg = self.work_group_size;
        // Whole work groups (the kernel has no bound check): the extra items write beyond
        // `items` into room of their own.
        let global = items.div_ceil(wg) * wg;
        let out = self.buffer(CL_MEM_WRITE_ONLY, global * 8)?;
        let mut host = vec![0u32; global * 8];
        // SAFETY: the buffer and `host` outlive the blocking read that ends the queue's work.
        unsafe {
            kernel
                .set_arg(0, &out.get())
                .and_then(|_| kernel.set_arg(1, &(rounds as cl_uint)))
                .map_err(|e| cl_err("set kernel arguments", e))?;
            queue
                .enqueue_nd_range_kernel(kernel.get(), 1, ptr::null(), &global, &wg, &[])
                .map_err(|e| cl_err("launch the ceiling kernel", e))?;
            queue
                .enqueue_read_buffer(&out, CL_BLOCKING, 0, &mut host, &[])
                .map_err(|e| cl_err("read the ceiling results", e))?;
        }
        Ok(host)
    }

    fn buffer(&self, flags: cl_mem_flags, words: usize) -> anyhow::Result<Buffer<u32>> {
        // SAFETY: no host pointer is passed; the buffer is owned by the returned object.
        unsafe {
            Buffer::<u32>::create(&self.context, flags, words.max(1), ptr::null_mut())
                .map_err(|e| cl_err(&format!("allocate {} bytes", words * 4), e))
        }
    }
}

impl ring::Device for Cl {
    type Slot = Slot;
    /// The event of the dispatch's read-back.
    type Ticket = Event;

    fn make_slot(&self, task_cap: usize, job_cap: usize) -> anyhow::Result<Slot> {
        anyhow::ensure!(
            (job_cap * 4) as u64 <= self.max_alloc,
            "opencl: the job table needs {} bytes, more than the device allows in one buffer; \
             use smaller batches",
            job_cap * 4
        );
        let ctx = &self.context;
        // clCreateCommandQueue: the OpenCL 1.2 call, which every device has.
        let queue =
            CommandQueue::create_default(ctx, 0).map_err(|e| cl_err("create command queue", e))?;
        let rec_words = task_cap * gpu::HEADER_REC_WORDS;
        let host_in = Pinned::new(ctx, &queue, rec_words)?;
        let host_out = Pinned::new(ctx, &queue, task_cap * OUT_WORDS)?;
        Ok(Slot {
            jobs: self.buffer(CL_MEM_READ_ONLY, job_cap)?,
            tasks: self.buffer(CL_MEM_READ_ONLY, rec_words)?,
            targets: self.buffer(CL_MEM_READ_ONLY, ring::INITIAL_TARGET_WORDS)?,
            out: self.buffer(CL_MEM_WRITE_ONLY, task_cap * OUT_WORDS)?,
            queue,
            host_in,
            host_out,
            target_words: Vec::new(),
            target_cap: ring::INITIAL_TARGET_WORDS,
        })
    }

    fn host_buffers<'a>(
        &'a mut self,
        slot: &'a mut Slot,
        words: usize,
    ) -> (&'a mut [u32], &'a mut Vec<u32>) {
        (slot.host_in.slice_mut(words), &mut slot.target_words)
    }

    fn dispatch(
        &mut self,
        slot: &mut Slot,
        jobs: Option<&[u32]>,
        p: &ring::Params,
    ) -> anyhow::Result<Event> {
        if slot.target_words.len() > slot.target_cap {
            let cap = slot.target_words.len().next_power_of_two();
            slot.targets = self.buffer(CL_MEM_READ_ONLY, cap)?;
            slot.target_cap = cap;
        }
        let (n, kernel, wg) = (p.tasks, &self.kernel, self.work_group_size);
        // SAFETY (all enqueue calls below): the host memory they read or write (the job
        // words, the slot's pinned buffers and target words) stays untouched until the
        // slot's read-back event has completed (the ring reads it back, or abandons it after
        // finish()).
        unsafe {
            let q = &slot.queue;
            if let Some(jobs) = jobs {
                q.enqueue_write_buffer(&mut slot.jobs, CL_NON_BLOCKING, 0, jobs, &[])
                    .map_err(|e| cl_err("upload the job table", e))?;
            }
            q.enqueue_write_buffer(
                &mut slot.tasks,
                CL_NON_BLOCKING,
                0,
                slot.host_in.slice(n * p.stride),
                &[],
            )
            .map_err(|e| cl_err("upload tasks", e))?;
            if p.checked {
                q.enqueue_write_buffer(
                    &mut slot.targets,
                    CL_NON_BLOCKING,
                    0,
                    &slot.target_words,
                    &[],
                )
                .map_err(|e| cl_err("upload targets", e))?;
            }
            let args: [cl_uint; 6] = p.words();
            kernel
                .set_arg(0, &slot.jobs.get())
                .and_then(|_| kernel.set_arg(1, &slot.tasks.get()))
                .and_then(|_| kernel.set_arg(2, &slot.targets.get()))
                .and_then(|_| kernel.set_arg(3, &slot.out.get()))
                .and_then(|_| {
                    args.iter()
                        .enumerate()
                        .try_for_each(|(i, a)| kernel.set_arg(4 + i as u32, a))
                })
                .map_err(|e| cl_err("set kernel arguments", e))?;
            let global = n.div_ceil(wg) * wg;
            q.enqueue_nd_range_kernel(kernel.get(), 1, ptr::null(), &global, &wg, &[])
                .map_err(|e| cl_err("launch the kernel", e))?;
            let ev = q
                .enqueue_read_buffer(
                    &slot.out,
                    CL_NON_BLOCKING,
                    0,
                    slot.host_out.slice_mut(n * OUT_WORDS),
                    &[],
                )
                .map_err(|e| cl_err("read the results", e))?;
            q.flush().map_err(|e| cl_err("submit", e))?;
            Ok(ev)
        }
    }

    fn read(
        &mut self,
        slot: &mut Slot,
        done: Event,
        words: usize,
        check: impl FnOnce(&[u32]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        done.wait().map_err(|e| cl_err("wait for the device", e))?;
        check(slot.host_out.slice(words))
    }

    fn abandon(&mut self, slot: &mut Slot, _in_flight: Option<Event>) {
        // Waits for the transfers too, also those of a dispatch that failed half-enqueued.
        let _ = slot.queue.finish();
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

    fn ceiling(&self) -> Option<anyhow::Result<f64>> {
        let mut ring = match self.ring.lock() {
            Ok(r) => r,
            Err(_) => return Some(Err(anyhow::anyhow!("opencl backend poisoned"))),
        };
        let cl = ring.device();
        cl.ceiling.as_ref()?;
        Some(gpu::ceiling::measure(|items, rounds| {
            cl.run_ceiling(items, rounds)
        }))
    }
}
