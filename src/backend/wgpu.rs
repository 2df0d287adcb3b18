//! The wgpu backend: kernels/sha256d.wgsl on Vulkan, Metal or DX12 (and, on machines without a
//! GPU, on Mesa's lavapipe, which runs the same Vulkan code paths on the CPU).
//!
//! The adapter is found at run time; a machine without one gets an error that says what to
//! install, never a crash. Device buffers are allocated on first use and grown when a batch
//! needs more, then reused. A large batch is cut into dispatches pipelined over three sets of
//! buffers ([`gpu::ring`], shared with the OpenCL backend): one is written while another
//! computes and a third's results are checked. wgpu reports device errors through a callback;
//! they are collected and turned into this batch's error (the caller redoes it on the CPU).

use super::gpu::ring::{self, Ring};
use super::gpu::{self, GpuOptions, OUT_WORDS};
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

/// Words of the uniform parameter block (see `Params` in the kernel).
const PARAM_WORDS: usize = 8;

/// A submitted dispatch: its submission and the mapping of its results.
struct Ticket {
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
    /// Capacity in words of `targets`.
    target_cap: usize,
}

/// The adapter as the pipeline ring drives it.
struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    /// The ceiling kernel ([`gpu::ceiling`]), when the source has one.
    ceiling: Option<wgpu::ComputePipeline>,
    /// Device errors reported by wgpu's callback since the last check.
    errors: Arc<Mutex<Vec<String>>>,
    work_group_size: usize,
    max_groups: u32,
    max_binding: u64,
    /// The records and target table of the dispatch being written. `Queue::write_buffer`
    /// copies them before it returns, so one pair serves every slot.
    records: Vec<u32>,
    target_words: Vec<u32>,
}

pub struct WgpuBackend {
    ring: Mutex<Ring<Gpu>>,
    name: String,
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
        let ceiling = source
            .contains("fn ceiling(")
            .then(|| ceiling_pipeline(&device, &module, &constants));
        if let Some(e) = pollster::block_on(scope.pop()) {
            anyhow::bail!("wgpu: the kernel does not compile on {}: {e}", desc.name);
        }
        let layout = pipeline.get_bind_group_layout(0);
        let max_binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        // Tasks per dispatch: the configured chunk, bounded by what one binding may hold.
        let fit = (max_binding / (gpu::HEADER_REC_WORDS * 4) as u64).max(1) as usize;
        let gpu = Gpu {
            device,
            queue,
            pipeline,
            layout,
            ceiling,
            errors,
            work_group_size: opts.work_group_size as usize,
            max_groups: limits.max_compute_workgroups_per_dimension.max(1),
            max_binding,
            records: Vec::new(),
            target_words: Vec::new(),
        };
        Ok(WgpuBackend {
            ring: Mutex::new(Ring::new(gpu, opts.chunk.min(fit))),
            name: format!("wgpu:{} ({})", desc.name, desc.backend.to_lowercase()),
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
            .map_err(|_| anyhow::anyhow!("wgpu backend poisoned by an earlier panic"))?;
        let res = ring
            .run(jobs, tasks, meta, out, stride)
            .and_then(|()| ring.device().take_errors());
        if res.is_err() {
            // What the failed batch caused is reported; the next batch starts clean.
            let _ = ring.device().take_errors();
        }
        res
    }
}

/// The pipeline of the ceiling entry point (its own layout: params and the output only).
fn ceiling_pipeline(
    device: &wgpu::Device,
    module: &wgpu::ShaderModule,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("ceiling"),
        layout: None,
        module,
        entry_point: Some("ceiling"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            ..Default::default()
        },
        cache: None,
    })
}

impl Gpu {
    /// One dispatch of the ceiling kernel: `items` invocations of `rounds` rounds; their states.
    fn run_ceiling(&self, items: usize, rounds: u32) -> anyhow::Result<Vec<u32>> {
        use wgpu::BufferUsages as U;
        let pipeline = self
            .ceiling
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("wgpu: the kernel source has no ceiling entry"))?;
        let groups = items.div_ceil(self.work_group_size) as u32;
        let gx = groups.min(self.max_groups);
        let gy = groups.div_ceil(gx);
        let words = items * 8;
        let params = self.buffer("ceiling params", PARAM_WORDS, U::UNIFORM | U::COPY_DST);
        let out = self.buffer("ceiling out", words, U::STORAGE | U::COPY_SRC);
        let staging = self.buffer("ceiling staging", words, U::MAP_READ | U::COPY_DST);
        let mut p = [0u32; PARAM_WORDS];
        p[0] = items as u32;
        p[1] = rounds;
        self.queue
            .write_buffer(&params, 0, bytemuck::cast_slice(&p));
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("ceiling"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: params.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: out.as_entire_binding(),
                },
            ],
        });
        let mut enc = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("ceiling"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("ceiling"),
                timestamp_writes: None,
            });
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(gx, gy, 1);
        }
        enc.copy_buffer_to_buffer(&out, 0, &staging, 0, (words * 4) as u64);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| anyhow::anyhow!("wgpu: waiting for the device failed: {e}"))?;
        self.take_errors()?;
        rx.recv()
            .map_err(|_| anyhow::anyhow!("wgpu: the read-back never completed"))?
            .map_err(|e| anyhow::anyhow!("wgpu: cannot map the results: {e}"))?;
        let host = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| anyhow::anyhow!("wgpu: cannot read the results: {e}"))?;
            bytemuck::cast_slice(&view).to_vec()
        };
        staging.unmap();
        Ok(host)
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

    fn buffer(&self, label: &str, words: usize, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (words * 4) as u64,
            usage,
            mapped_at_creation: false,
        })
    }

    fn check_binding(&self, words: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            (words * 4) as u64 <= self.max_binding,
            "wgpu: the job or target table needs more than the adapter's binding limit of {} \
             bytes; use smaller batches",
            self.max_binding
        );
        Ok(())
    }

    /// Binds params, jobs, tasks, targets and out, in the kernel's binding order.
    fn bind_group(&self, buffers: [&wgpu::Buffer; 5]) -> wgpu::BindGroup {
        fn entry(binding: u32, b: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
            wgpu::BindGroupEntry {
                binding,
                resource: b.as_entire_binding(),
            }
        }
        let [params, jobs, tasks, targets, out] = buffers;
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("sha256d"),
            layout: &self.layout,
            entries: &[
                entry(0, params),
                entry(1, jobs),
                entry(2, tasks),
                entry(3, targets),
                entry(4, out),
            ],
        })
    }

    /// Replaces idle `slot`'s target table by one of at least `words` words. The other
    /// buffers, and the job table already in them, stay.
    fn grow_targets(&self, slot: &mut Slot, words: usize) -> anyhow::Result<()> {
        let cap = words.next_power_of_two();
        self.check_binding(cap)?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let targets = self.buffer(
            "targets",
            cap,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        );
        if let Some(e) = pollster::block_on(scope.pop()) {
            anyhow::bail!(
                "wgpu: cannot allocate a target table of {} bytes: {e}",
                cap * 4
            );
        }
        slot.bind_group =
            self.bind_group([&slot.params, &slot.jobs, &slot.tasks, &targets, &slot.out]);
        slot.targets = targets;
        slot.target_cap = cap;
        Ok(())
    }
}

impl ring::Device for Gpu {
    type Slot = Slot;
    type Ticket = Ticket;

    fn make_slot(&self, task_cap: usize, job_cap: usize) -> anyhow::Result<Slot> {
        let target_cap = ring::INITIAL_TARGET_WORDS;
        self.check_binding(job_cap.max(target_cap))?;
        use wgpu::BufferUsages as U;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let params = self.buffer("params", PARAM_WORDS, U::UNIFORM | U::COPY_DST);
        let jobs = self.buffer("jobs", job_cap, U::STORAGE | U::COPY_DST);
        let tasks = self.buffer(
            "tasks",
            task_cap * gpu::HEADER_REC_WORDS,
            U::STORAGE | U::COPY_DST,
        );
        let targets = self.buffer("targets", target_cap, U::STORAGE | U::COPY_DST);
        let out = self.buffer("out", task_cap * OUT_WORDS, U::STORAGE | U::COPY_SRC);
        let staging = self.buffer("staging", task_cap * OUT_WORDS, U::MAP_READ | U::COPY_DST);
        if let Some(e) = pollster::block_on(scope.pop()) {
            anyhow::bail!("wgpu: cannot allocate buffers for {task_cap} tasks: {e}");
        }
        let bind_group = self.bind_group([&params, &jobs, &tasks, &targets, &out]);
        Ok(Slot {
            params,
            jobs,
            tasks,
            targets,
            out,
            staging,
            bind_group,
            target_cap,
        })
    }

    fn host_buffers<'a>(
        &'a mut self,
        _slot: &'a mut Slot,
        words: usize,
    ) -> (&'a mut [u32], &'a mut Vec<u32>) {
        self.records.resize(words, 0);
        (&mut self.records, &mut self.target_words)
    }

    fn dispatch(
        &mut self,
        slot: &mut Slot,
        jobs: Option<&[u32]>,
        p: &ring::Params,
    ) -> anyhow::Result<Ticket> {
        if self.target_words.len() > slot.target_cap {
            self.grow_targets(slot, self.target_words.len())?;
        }
        let (device, queue) = (&self.device, &self.queue);
        if let Some(jobs) = jobs {
            queue.write_buffer(&slot.jobs, 0, bytemuck::cast_slice(jobs));
        }
        queue.write_buffer(&slot.tasks, 0, bytemuck::cast_slice(&self.records));
        if p.checked {
            queue.write_buffer(&slot.targets, 0, bytemuck::cast_slice(&self.target_words));
        }
        let mut params = [0u32; PARAM_WORDS];
        params[..6].copy_from_slice(&p.words());
        queue.write_buffer(&slot.params, 0, bytemuck::cast_slice(&params));

        let n = p.tasks;
        let groups = n.div_ceil(self.work_group_size) as u32;
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
            pass.set_pipeline(&self.pipeline);
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
        Ok(Ticket { index, mapped: rx })
    }

    fn read(
        &mut self,
        slot: &mut Slot,
        t: Ticket,
        words: usize,
        check: impl FnOnce(&[u32]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let waited = self
            .device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(t.index),
                timeout: None,
            })
            .map_err(|e| anyhow::anyhow!("wgpu: waiting for the device failed: {e}"));
        let mapped = waited.and_then(|_| {
            self.take_errors()?;
            t.mapped
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
                .slice(..(words * 4) as u64)
                .get_mapped_range()
                .map_err(|e| anyhow::anyhow!("wgpu: cannot read the results: {e}"))?;
            check(bytemuck::cast_slice(&view))
        };
        slot.staging.unmap();
        res
    }

    fn abandon(&mut self, slot: &mut Slot, in_flight: Option<Ticket>) {
        let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        if in_flight.is_some() {
            slot.staging.unmap();
        }
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

    fn ceiling(&self) -> Option<anyhow::Result<f64>> {
        let mut ring = match self.ring.lock() {
            Ok(r) => r,
            Err(_) => return Some(Err(anyhow::anyhow!("wgpu backend poisoned"))),
        };
        let dev = ring.device();
        dev.ceiling.as_ref()?;
        Some(gpu::ceiling::measure(|items, rounds| {
            dev.run_ceiling(items, rounds)
        }))
    }
}
