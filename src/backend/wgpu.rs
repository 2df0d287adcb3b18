//! The wgpu backend: kernels/sha256d.wgsl on Vulkan, Metal or DX12 (and, on machines without a
//! GPU, on Mesa's lavapipe, which runs the same Vulkan code paths on the CPU).
//!
//! The adapter is found at run time; a machine without one gets an error that says what to
//! install, never a crash. Device buffers are allocated on first use and grown when a batch
//! needs more, then reused. A large batch is cut into dispatches pipelined over three sets of
//! buffers: one is written while another computes and a third's results are checked. wgpu
//! reports device errors through a callback; they are collected and turned into this batch's
//! error (the caller redoes it on the CPU).

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

/// Dispatches in flight at once: the next one's records are written while the device computes
/// one, and the one before's results are mapped and checked meanwhile.
const SLOTS: usize = 3;

/// Words of the uniform parameter block (see `Params` in the kernel).
const PARAM_WORDS: usize = 8;

/// What is in flight on a slot: tasks `start..end`, its tag, its submission and the mapping of
/// its results.
struct Pending {
    start: usize,
    end: usize,
    tag: u32,
    bytes: u64,
    index: wgpu::SubmissionIndex,
    mapped: std::sync::mpsc::Receiver<Result<(), wgpu::BufferAsyncError>>,
}

/// One dispatch's worth of buffers.
struct Slot {
    params: wgpu::Buffer,
    jobs: wgpu::Buffer,
    tasks: wgpu::Buffer,
    targets: wgpu::Buffer,
    out: wgpu::Buffer,
    staging: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    /// Capacity in tasks of tasks/out/staging, in words of jobs and targets.
    task_cap: usize,
    job_cap: usize,
    target_cap: usize,
    pending: Option<Pending>,
}

struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    slots: Vec<Slot>,
    tag: u32,
    job_words: Vec<u32>,
    target_words: Vec<u32>,
    records: Vec<u32>,
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
                slots: Vec::new(),
                tag: 0,
                job_words: Vec::new(),
                target_words: Vec::new(),
                records: Vec::new(),
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
        let per_task = (gpu::HEADER_REC_WORDS * 4) as u64;
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
        let stride = gpu::check_batch(jobs, tasks, meta, out)?;
        if tasks.is_empty() {
            return Ok(());
        }
        let mut guard = self
            .inner
            .lock()
            .map_err(|_| anyhow::anyhow!("wgpu backend poisoned by an earlier panic"))?;
        let inner = &mut *guard;
        gpu::pack_jobs(jobs, &mut inner.job_words);
        let sub = gpu::dispatch_size(tasks.len(), self.chunk(), SLOTS);
        let res = self
            .ensure_slots(inner, sub, inner.job_words.len(), 0)
            .and_then(|_| {
                self.pipeline(
                    inner,
                    tasks,
                    meta,
                    out,
                    gpu::Layout {
                        njobs: jobs.len(),
                        sub,
                        stride,
                    },
                )
            });
        if res.is_err() {
            // Leave nothing in flight into buffers the next batch reuses.
            let _ = inner.device.poll(wgpu::PollType::wait_indefinitely());
            for s in &mut inner.slots {
                if s.pending.take().is_some() {
                    s.staging.unmap();
                }
            }
            let _ = self.take_errors();
        }
        res
    }

    /// Runs the batch as dispatches of `sub` tasks over the slots in turn: dispatch k+1 is
    /// packed and submitted while dispatch k computes, and dispatch k−2's results are checked
    /// meanwhile.
    fn pipeline(
        &self,
        inner: &mut Inner,
        tasks: &[HashTask],
        meta: Option<&[TaskMeta]>,
        out: &mut [State],
        layout: gpu::Layout,
    ) -> anyhow::Result<()> {
        let gpu::Layout { njobs, sub, stride } = layout;
        let mut job_sent = [false; SLOTS];
        let mut order = std::collections::VecDeque::with_capacity(SLOTS);
        for (k, start) in (0..tasks.len()).step_by(sub).enumerate() {
            let end = (start + sub).min(tasks.len());
            let si = k % SLOTS;
            if inner.slots[si].pending.is_some() {
                let first = order.pop_front().expect("a pending slot is in the queue");
                debug_assert_eq!(first, si);
                self.finish_slot(inner, si, meta, out)?;
            }
            let n = end - start;
            let m = meta.map(|m| &m[start..end]);
            let tag = gpu::next_tag(&mut inner.tag);
            inner.records.resize(n * stride, 0);
            gpu::pack_records(
                &tasks[start..end],
                m,
                stride,
                &mut inner.records,
                &mut inner.target_words,
            );
            if inner.target_words.len() > inner.slots[si].target_cap {
                // Rebuilt idle (it was waited for above); the job table goes up again.
                let need = inner.target_words.len();
                self.rebuild_slot(inner, si, need)?;
                job_sent[si] = false;
            }
            let Inner {
                device,
                queue,
                pipeline,
                slots,
                job_words,
                target_words,
                records,
                ..
            } = &mut *inner;
            let slot = &mut slots[si];
            if !job_sent[si] {
                queue.write_buffer(&slot.jobs, 0, bytemuck::cast_slice(job_words));
                job_sent[si] = true;
            }
            queue.write_buffer(&slot.tasks, 0, bytemuck::cast_slice(records));
            if m.is_some() {
                queue.write_buffer(&slot.targets, 0, bytemuck::cast_slice(target_words));
            }
            let params: [u32; PARAM_WORDS] = [
                n as u32,
                tag,
                m.is_some() as u32,
                njobs as u32,
                stride as u32,
                (target_words.len() / TARGET_WORDS) as u32,
                0,
                0,
            ];
            queue.write_buffer(&slot.params, 0, bytemuck::cast_slice(&params));

            let groups = n.div_ceil(self.opts.work_group_size as usize) as u32;
            let gx = groups.min(self.max_groups);
            let gy = groups.div_ceil(gx);
            anyhow::ensure!(
                gy <= self.max_groups,
                "a dispatch of {n} tasks needs {gy} rows of work groups; lower the chunk size"
            );
            let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("sha256d"),
            });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("sha256d"),
                    timestamp_writes: None,
                });
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, &slot.bind_group, &[]);
                pass.dispatch_workgroups(gx, gy, 1);
            }
            let bytes = (n * OUT_WORDS * 4) as u64;
            enc.copy_buffer_to_buffer(&slot.out, 0, &slot.staging, 0, bytes);
            let index = queue.submit([enc.finish()]);
            let (tx, rx) = std::sync::mpsc::channel();
            slot.staging
                .slice(..bytes)
                .map_async(wgpu::MapMode::Read, move |r| {
                    let _ = tx.send(r);
                });
            // Start the work without waiting for it.
            let _ = device.poll(wgpu::PollType::Poll);
            slot.pending = Some(Pending {
                start,
                end,
                tag,
                bytes,
                index,
                mapped: rx,
            });
            order.push_back(si);
        }
        while let Some(si) = order.pop_front() {
            self.finish_slot(inner, si, meta, out)?;
        }
        self.take_errors()
    }

    /// Waits for slot `si`'s dispatch and checks its results into `out`.
    fn finish_slot(
        &self,
        inner: &mut Inner,
        si: usize,
        meta: Option<&[TaskMeta]>,
        out: &mut [State],
    ) -> anyhow::Result<()> {
        let slot = &mut inner.slots[si];
        let Some(p) = slot.pending.take() else {
            return Ok(());
        };
        let waited = inner
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(p.index),
                timeout: None,
            })
            .map_err(|e| anyhow::anyhow!("wgpu: waiting for the device failed: {e}"));
        let mapped = waited.and_then(|_| {
            self.take_errors()?;
            p.mapped
                .recv()
                .map_err(|_| anyhow::anyhow!("wgpu: the read-back never completed"))?
                .map_err(|e| anyhow::anyhow!("wgpu: cannot map the results: {e}"))
        });
        if let Err(e) = mapped {
            // Unmapping a buffer whose mapping is still pending cancels it.
            slot.staging.unmap();
            return Err(e);
        }
        let res = {
            let view = slot
                .staging
                .slice(..p.bytes)
                .get_mapped_range()
                .map_err(|e| anyhow::anyhow!("wgpu: cannot read the results: {e}"))?;
            gpu::unpack(
                bytemuck::cast_slice(&view),
                p.tag,
                meta.map(|m| &m[p.start..p.end]),
                &mut out[p.start..p.end],
            )
        };
        slot.staging.unmap();
        res
    }

    /// Makes the slots hold dispatches of `tasks` tasks and `job_words` job-table words,
    /// (re)allocating only when they do not; `targets` = target-table words at least.
    fn ensure_slots(
        &self,
        inner: &mut Inner,
        tasks: usize,
        job_words: usize,
        targets: usize,
    ) -> anyhow::Result<()> {
        if inner.slots.len() == SLOTS
            && inner
                .slots
                .iter()
                .all(|s| s.task_cap >= tasks && s.job_cap >= job_words && s.target_cap >= targets)
        {
            return Ok(());
        }
        let old = inner.slots.first().map(|b| (b.task_cap, b.job_cap));
        let (task_cap, job_cap) = gpu::grown_capacity(tasks, job_words, old, self.chunk());
        let target_cap = targets.max(TARGET_WORDS * 64).next_power_of_two();
        inner.slots.clear();
        for _ in 0..SLOTS {
            let slot = self.make_slot(inner, task_cap, job_cap, target_cap)?;
            inner.slots.push(slot);
        }
        Ok(())
    }

    /// Replaces idle slot `si` by one whose target table holds `targets` words.
    fn rebuild_slot(&self, inner: &mut Inner, si: usize, targets: usize) -> anyhow::Result<()> {
        let (task_cap, job_cap) = (inner.slots[si].task_cap, inner.slots[si].job_cap);
        let slot = self.make_slot(inner, task_cap, job_cap, targets.next_power_of_two())?;
        inner.slots[si] = slot;
        Ok(())
    }

    fn make_slot(
        &self,
        inner: &Inner,
        task_cap: usize,
        job_cap: usize,
        target_cap: usize,
    ) -> anyhow::Result<Slot> {
        let job_bytes = (job_cap * 4) as u64;
        anyhow::ensure!(
            job_bytes <= self.max_binding && (target_cap * 4) as u64 <= self.max_binding,
            "wgpu: the job or target table needs more than the adapter's binding limit of {} \
             bytes; use smaller batches",
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
        let params = mk("params", (PARAM_WORDS * 4) as u64, U::UNIFORM | U::COPY_DST);
        let jobs = mk("jobs", job_bytes, U::STORAGE | U::COPY_DST);
        let tasks_b = mk(
            "tasks",
            (task_cap * gpu::HEADER_REC_WORDS * 4) as u64,
            U::STORAGE | U::COPY_DST,
        );
        let targets = mk("targets", (target_cap * 4) as u64, U::STORAGE | U::COPY_DST);
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
        Ok(Slot {
            params,
            jobs,
            tasks: tasks_b,
            targets,
            out,
            staging,
            bind_group,
            task_cap,
            job_cap,
            target_cap,
            pending: None,
        })
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
