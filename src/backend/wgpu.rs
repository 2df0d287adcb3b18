//! The wgpu backend: kernels/sha256d.wgsl on Vulkan, Metal or DX12 (and, on machines without a
//! GPU, on Mesa's lavapipe, which runs the same Vulkan code paths on the CPU).
//!
//! The adapter is found at run time; a machine without one gets an error that says what to
//! install, never a crash. Device buffers are allocated on first use and grown when a batch
//! needs more, then reused. A batch larger than the configured chunk is split into several
//! dispatches. wgpu reports device errors through a callback; they are collected and turned
//! into this batch's error (the caller redoes it on the CPU).

use super::gpu::{self, GpuOptions, OUT_WORDS, TARGET_WORDS};
use super::Backend;
use crate::model::validate::TaskMeta;
use crate::model::{HashTask, JobCtx};
use crate::sha256::State;
use std::sync::{Arc, Mutex};

/// The kernel source compiled into the binary.
pub const KERNEL: &str = include_str!("../../kernels/sha256d.wgsl");

/// One adapter as `sharecheck backends` lists it.
#[derive(Debug, Clone)]
pub struct AdapterDesc {
    pub index: usize,
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    // The native APIs only: the GL backend is not built, and a browser has no place here.
    desc.backends = wgpu::Backends::VULKAN | wgpu::Backends::METAL | wgpu::Backends::DX12;
    wgpu::Instance::new(desc)
}

fn describe(i: usize, a: &wgpu::Adapter) -> AdapterDesc {
    let info = a.get_info();
    AdapterDesc {
        index: i,
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
    }
}

/// Every adapter wgpu finds (in the order `backend.device` indexes them).
pub fn adapters() -> Vec<AdapterDesc> {
    let inst = instance();
    pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .enumerate()
        .map(|(i, a)| describe(i, a))
        .collect()
}

/// What to tell a user whose machine has no usable adapter.
pub const INSTALL_HINT: &str = "no Vulkan, Metal or DX12 adapter found; install the GPU's \
    Vulkan driver (on a machine without a GPU: Mesa's lavapipe, Debian/Ubuntu package \
    mesa-vulkan-drivers) or choose another backend (backend.kind = \"cpu\")";

struct Buffers {
    params: wgpu::Buffer,
    jobs: wgpu::Buffer,
    tasks: wgpu::Buffer,
    targets: wgpu::Buffer,
    out: wgpu::Buffer,
    staging: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    /// Capacity in tasks of tasks/targets/out/staging, and in words of jobs.
    task_cap: usize,
    job_cap: usize,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    bufs: Option<Buffers>,
    tag: u32,
    job_words: Vec<u32>,
    target_words: Vec<u32>,
    task_scratch: Vec<u32>,
}

pub struct WgpuBackend {
    inner: Mutex<Inner>,
    /// Device errors reported by wgpu's callback since the last check.
    errors: Arc<Mutex<Vec<String>>>,
    name: String,
    opts: GpuOptions,
    max_groups: u32,
    max_binding: u64,
}

impl WgpuBackend {
    /// Opens adapter `opts.device` with the shipped kernel.
    pub fn new(opts: GpuOptions) -> anyhow::Result<WgpuBackend> {
        Self::with_kernel(opts, KERNEL)
    }

    /// Opens adapter `opts.device` with the given WGSL source (tests use this to check that a
    /// broken kernel is caught).
    pub fn with_kernel(opts: GpuOptions, source: &str) -> anyhow::Result<WgpuBackend> {
        anyhow::ensure!(
            opts.work_group_size > 0,
            "backend.work_group_size must be at least 1"
        );
        anyhow::ensure!(opts.chunk > 0, "the dispatch size must be at least 1 task");
        let inst = instance();
        let list = pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
        anyhow::ensure!(!list.is_empty(), "wgpu: {INSTALL_HINT}");
        let Some(adapter) = list.get(opts.device) else {
            anyhow::bail!(
                "wgpu: backend.device = {} but only {} adapter(s) exist ({}); see `sharecheck backends`",
                opts.device,
                list.len(),
                list.iter()
                    .map(|a| a.get_info().name)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        let desc = describe(opts.device, adapter);
        let limits = adapter.limits();
        anyhow::ensure!(
            opts.work_group_size <= limits.max_compute_invocations_per_workgroup
                && opts.work_group_size <= limits.max_compute_workgroup_size_x,
            "wgpu: backend.work_group_size = {} exceeds this adapter's limit of {}",
            opts.work_group_size,
            limits
                .max_compute_invocations_per_workgroup
                .min(limits.max_compute_workgroup_size_x)
        );
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("sharecheck"),
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| anyhow::anyhow!("wgpu: cannot open {}: {e}", desc.name))?;

        let errors = Arc::new(Mutex::new(Vec::new()));
        {
            let errors = errors.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                if let Ok(mut v) = errors.lock() {
                    v.push(e.to_string());
                }
            }));
        }
        {
            let errors = errors.clone();
            device.set_device_lost_callback(move |reason, msg| {
                if let Ok(mut v) = errors.lock() {
                    v.push(format!("device lost ({reason:?}): {msg}"));
                }
            });
        }

        // Compile the kernel inside an error scope so that a bad kernel is this call's error.
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("sha256d.wgsl"),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let constants = [("WG", f64::from(opts.work_group_size))];
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("sha256d"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                ..Default::default()
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            anyhow::bail!("wgpu: the kernel does not compile on {}: {e}", desc.name);
        }
        let layout = pipeline.get_bind_group_layout(0);
        let name = format!("wgpu:{} ({})", desc.name, desc.backend.to_lowercase());
        Ok(WgpuBackend {
            inner: Mutex::new(Inner {
                device,
                queue,
                pipeline,
                layout,
                bufs: None,
                tag: 0,
                job_words: Vec::new(),
                target_words: Vec::new(),
                task_scratch: Vec::new(),
            }),
            errors,
            name,
            max_groups: limits.max_compute_workgroups_per_dimension.max(1),
            max_binding: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
            opts,
        })
    }

    /// Tasks per dispatch: the configured chunk, bounded by what one binding may hold.
    fn chunk(&self) -> usize {
        let per_task = (gpu::TASK_WORDS * 4) as u64;
        let fit = (self.max_binding / per_task).max(1) as usize;
        self.opts.chunk.min(fit)
    }

    fn take_errors(&self) -> anyhow::Result<()> {
        let mut v = self
            .errors
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        if v.is_empty() {
            return Ok(());
        }
        let msg = v.join("; ");
        v.clear();
        anyhow::bail!("wgpu device error: {msg}")
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
            .map_err(|_| anyhow::anyhow!("wgpu backend poisoned by an earlier panic"))?;
        let inner = &mut *guard;
        gpu::pack_jobs(jobs, &mut inner.job_words);
        let chunk = self.chunk();
        self.ensure_buffers(inner, tasks.len().min(chunk), inner.job_words.len())?;
        let bufs = inner.bufs.as_ref().expect("buffers were just made");
        inner
            .queue
            .write_buffer(&bufs.jobs, 0, bytemuck::cast_slice(&inner.job_words));
        let mut start = 0;
        while start < tasks.len() {
            let end = (start + chunk).min(tasks.len());
            let (t, o) = (&tasks[start..end], &mut out[start..end]);
            let m = meta.map(|m| &m[start..end]);
            let n = t.len();
            let tag = gpu::next_tag(&mut inner.tag);
            let words = gpu::task_words(t, &mut inner.task_scratch);
            inner
                .queue
                .write_buffer(&bufs.tasks, 0, bytemuck::cast_slice(words));
            if let Some(m) = m {
                gpu::pack_targets(m, &mut inner.target_words);
                inner.queue.write_buffer(
                    &bufs.targets,
                    0,
                    bytemuck::cast_slice(&inner.target_words),
                );
            }
            let params = [n as u32, tag, m.is_some() as u32, jobs.len() as u32];
            inner
                .queue
                .write_buffer(&bufs.params, 0, bytemuck::cast_slice(&params));

            let groups = n.div_ceil(self.opts.work_group_size as usize) as u32;
            let gx = groups.min(self.max_groups);
            let gy = groups.div_ceil(gx);
            anyhow::ensure!(
                gy <= self.max_groups,
                "a dispatch of {n} tasks needs {gy} rows of work groups; lower the chunk size"
            );
            let mut enc = inner
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("sha256d"),
                });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("sha256d"),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&inner.pipeline);
                pass.set_bind_group(0, &bufs.bind_group, &[]);
                pass.dispatch_workgroups(gx, gy, 1);
            }
            let bytes = (n * OUT_WORDS * 4) as u64;
            enc.copy_buffer_to_buffer(&bufs.out, 0, &bufs.staging, 0, bytes);
            inner.queue.submit([enc.finish()]);

            let slice = bufs.staging.slice(..bytes);
            let (tx, rx) = std::sync::mpsc::channel();
            slice.map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
            inner
                .device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| anyhow::anyhow!("wgpu: waiting for the device failed: {e}"))?;
            self.take_errors()?;
            rx.recv()
                .map_err(|_| anyhow::anyhow!("wgpu: the read-back never completed"))?
                .map_err(|e| anyhow::anyhow!("wgpu: cannot map the results: {e}"))?;
            let res = {
                let view = slice
                    .get_mapped_range()
                    .map_err(|e| anyhow::anyhow!("wgpu: cannot read the results: {e}"))?;
                gpu::unpack(bytemuck::cast_slice(&view), tag, m, o)
            };
            bufs.staging.unmap();
            res?;
            start = end;
        }
        self.take_errors()
    }

    /// Makes sure the buffers hold `tasks` tasks and `job_words` job-table words, growing
    /// (reallocating) only when they do not.
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
        let job_bytes = (job_cap * 4) as u64;
        anyhow::ensure!(
            job_bytes <= self.max_binding,
            "wgpu: the job table needs {job_bytes} bytes, more than the adapter's binding limit \
             of {}; use smaller batches",
            self.max_binding
        );
        let d = &inner.device;
        let mk = |label: &str, size: u64, usage: wgpu::BufferUsages| {
            d.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        use wgpu::BufferUsages as U;
        let scope = d.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let params = mk("params", 16, U::UNIFORM | U::COPY_DST);
        let jobs = mk("jobs", job_bytes, U::STORAGE | U::COPY_DST);
        let tasks_b = mk(
            "tasks",
            (task_cap * gpu::TASK_WORDS * 4) as u64,
            U::STORAGE | U::COPY_DST,
        );
        let targets = mk(
            "targets",
            (task_cap * TARGET_WORDS * 4) as u64,
            U::STORAGE | U::COPY_DST,
        );
        let out_bytes = (task_cap * OUT_WORDS * 4) as u64;
        let out = mk("out", out_bytes, U::STORAGE | U::COPY_SRC);
        let staging = mk("staging", out_bytes, U::MAP_READ | U::COPY_DST);
        if let Some(e) = pollster::block_on(scope.pop()) {
            anyhow::bail!("wgpu: cannot allocate buffers for {task_cap} tasks: {e}");
        }
        fn entry(binding: u32, b: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
            wgpu::BindGroupEntry {
                binding,
                resource: b.as_entire_binding(),
            }
        }
        let bind_group = d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("sha256d"),
            layout: &inner.layout,
            entries: &[
                entry(0, &params),
                entry(1, &jobs),
                entry(2, &tasks_b),
                entry(3, &targets),
                entry(4, &out),
            ],
        });
        inner.bufs = Some(Buffers {
            params,
            jobs,
            tasks: tasks_b,
            targets,
            out,
            staging,
            bind_group,
            task_cap,
            job_cap,
        });
        Ok(())
    }
}

impl Backend for WgpuBackend {
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
