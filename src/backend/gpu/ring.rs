//! The pipeline ring both GPU backends run a batch through: a few slots, each with its own
//! device buffers, used in turn, so that the host packs and submits dispatch k+1 while the
//! device computes dispatch k and the results of the one before are checked. What differs
//! between the APIs (buffers, uploads, launch, read-back) is behind [`Device`]; the ring owns
//! the order of dispatches, the tags, the packing and the checking, so both backends cut,
//! pipeline and check a batch the same way.

use super::{Layout, OUT_WORDS, TARGET_WORDS};
use crate::model::validate::TaskMeta;
use crate::model::{HashTask, JobCtx};
use crate::sha256::State;
use std::collections::VecDeque;
use std::sync::Arc;

/// Dispatches in flight at once: while the device computes one, the next one's records are
/// packed and travel up, and the one before's results travel down and are checked (on OpenCL
/// each slot has its own in-order queue, so the driver may overlap the transfers).
pub const SLOTS: usize = 3;

/// Words of target pairs a new slot's target table holds (64 pairs: a batch has a handful);
/// a device grows it, idle, when a dispatch brings more.
pub const INITIAL_TARGET_WORDS: usize = TARGET_WORDS * 64;

/// The kernel's scalar arguments for one dispatch, the same for both kernels.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Tasks in the dispatch.
    pub tasks: usize,
    /// The dispatch's tag, which every work item writes into its flags.
    pub tag: u32,
    /// Whether the kernel compares against the target table (`hash_checked`).
    pub checked: bool,
    /// Records of the job table.
    pub njobs: usize,
    /// u32 words per task record.
    pub stride: usize,
    /// Target pairs in the table.
    pub ntargets: usize,
}

impl Params {
    /// In the kernels' order: tasks, tag, checked, jobs, stride, target pairs.
    pub fn words(&self) -> [u32; 6] {
        [
            self.tasks as u32,
            self.tag,
            self.checked as u32,
            self.njobs as u32,
            self.stride as u32,
            self.ntargets as u32,
        ]
    }
}

/// What an API has to do for the ring: make a slot, say where to pack, dispatch, read back,
/// abandon. The ring hands a slot to [`Device::host_buffers`] and [`Device::dispatch`] only
/// when it is idle (its last dispatch read back or abandoned), and leaves the host memory a
/// dispatch reads or writes (the packed buffers, the job table, the results) untouched until
/// that dispatch is read back or abandoned, so an API may transfer from and to it
/// asynchronously.
pub trait Device {
    /// One dispatch's worth of device buffers (and, where the API has them, its queue and host
    /// memory).
    type Slot;
    /// What identifies a submitted dispatch until it is read back.
    type Ticket;

    /// A slot for dispatches of up to `task_cap` tasks and a job table of `job_cap` words.
    fn make_slot(&self, task_cap: usize, job_cap: usize) -> anyhow::Result<Self::Slot>;

    /// Where the ring packs a dispatch: `words` words of task records and the target table
    /// (which the packing clears and fills). The memory the upload reads from, so that a record
    /// is written once on the host: OpenCL hands out the slot's pinned memory, wgpu the buffer
    /// `Queue::write_buffer` copies from.
    fn host_buffers<'a>(
        &'a mut self,
        slot: &'a mut Self::Slot,
        words: usize,
    ) -> (&'a mut [u32], &'a mut Vec<u32>);

    /// Uploads what [`Device::host_buffers`] holds (the job table too when `jobs` is given: once
    /// per slot and batch), launches the kernel and starts the read-back, without waiting.
    fn dispatch(
        &mut self,
        slot: &mut Self::Slot,
        jobs: Option<&[u32]>,
        params: &Params,
    ) -> anyhow::Result<Self::Ticket>;

    /// Waits for the dispatch and lends its `words` result words to `check`. A closure rather
    /// than a returned slice because wgpu's results are readable only through a mapped view
    /// that must be gone before the buffer is unmapped for its next use.
    fn read(
        &mut self,
        slot: &mut Self::Slot,
        ticket: Self::Ticket,
        words: usize,
        check: impl FnOnce(&[u32]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()>;

    /// After a failed batch, for every slot with what it had in flight (if anything): leaves
    /// nothing running into buffers that the next batch reuses.
    fn abandon(&mut self, slot: &mut Self::Slot, in_flight: Option<Self::Ticket>);
}

/// What is in flight on a slot: tasks `start..end` with this tag.
struct Pending<T> {
    start: usize,
    end: usize,
    tag: u32,
    ticket: T,
}

struct Entry<D: Device> {
    slot: D::Slot,
    pending: Option<Pending<D::Ticket>>,
}

/// The slots of one device and the host buffers a batch reuses.
pub struct Ring<D: Device> {
    // Field order matters: the slots go before the device they were made on.
    slots: Vec<Entry<D>>,
    dev: D,
    /// Most tasks per dispatch on this device.
    chunk: usize,
    /// Capacity of every slot: tasks, job-table words.
    caps: (usize, usize),
    tag: u32,
    job_words: Vec<u32>,
}

impl<D: Device> Ring<D> {
    /// A ring over `dev`, whose dispatches hold at most `chunk` tasks; slots are made on first
    /// use.
    pub fn new(dev: D, chunk: usize) -> Ring<D> {
        Ring {
            slots: Vec::new(),
            dev,
            chunk: chunk.max(1),
            caps: (0, 0),
            tag: 0,
            job_words: Vec::new(),
        }
    }

    /// The device, for what a backend does around a batch (wgpu collects device errors).
    pub fn device(&mut self) -> &mut D {
        &mut self.dev
    }

    /// Hashes a batch whose arguments [`super::check_batch`] accepted (and returned `stride`
    /// for) into `out`, checking every result. On an error nothing is left in flight.
    pub fn run(
        &mut self,
        jobs: &[Arc<JobCtx>],
        tasks: &[HashTask],
        meta: Option<&[TaskMeta]>,
        out: &mut [State],
        stride: usize,
    ) -> anyhow::Result<()> {
        if tasks.is_empty() {
            return Ok(());
        }
        super::pack_jobs(jobs, &mut self.job_words);
        let sub = super::dispatch_size(tasks.len(), self.chunk, SLOTS);
        let res = self.ensure_slots(sub, self.job_words.len()).and_then(|()| {
            let layout = Layout {
                njobs: jobs.len(),
                sub,
                stride,
            };
            self.pipeline(tasks, meta, out, layout)
        });
        if res.is_err() {
            for e in &mut self.slots {
                let t = e.pending.take().map(|p| p.ticket);
                self.dev.abandon(&mut e.slot, t);
            }
        }
        res
    }

    /// Makes the slots hold dispatches of `tasks` tasks and a job table of `job_words` words,
    /// reallocating (grown, see [`super::grown_capacity`]) only when they do not.
    fn ensure_slots(&mut self, tasks: usize, job_words: usize) -> anyhow::Result<()> {
        let (task_cap, job_cap) = self.caps;
        if self.slots.len() == SLOTS && task_cap >= tasks && job_cap >= job_words {
            return Ok(());
        }
        let old = (!self.slots.is_empty()).then_some(self.caps);
        self.caps = super::grown_capacity(tasks, job_words, old, self.chunk);
        self.slots.clear(); // release the old ones before allocating
        for _ in 0..SLOTS {
            let slot = self.dev.make_slot(self.caps.0, self.caps.1)?;
            self.slots.push(Entry {
                slot,
                pending: None,
            });
        }
        Ok(())
    }

    /// Runs the batch as dispatches of `sub` tasks over the slots in turn: dispatch k+1 is
    /// packed and submitted while dispatch k computes, and dispatch k−2's results are checked
    /// meanwhile.
    fn pipeline(
        &mut self,
        tasks: &[HashTask],
        meta: Option<&[TaskMeta]>,
        out: &mut [State],
        layout: Layout,
    ) -> anyhow::Result<()> {
        let Layout { njobs, sub, stride } = layout;
        let mut jobs_sent = [false; SLOTS];
        let mut order = VecDeque::with_capacity(SLOTS);
        for (k, start) in (0..tasks.len()).step_by(sub).enumerate() {
            let end = (start + sub).min(tasks.len());
            let si = k % SLOTS;
            if self.slots[si].pending.is_some() {
                let first = order.pop_front().expect("a pending slot is in the queue");
                debug_assert_eq!(first, si);
                self.finish(si, meta, out)?;
            }
            let n = end - start;
            let m = meta.map(|m| &m[start..end]);
            let tag = super::next_tag(&mut self.tag);
            let e = &mut self.slots[si];
            let (records, targets) = self.dev.host_buffers(&mut e.slot, n * stride);
            super::pack_records(&tasks[start..end], m, stride, records, targets);
            let params = Params {
                tasks: n,
                tag,
                checked: m.is_some(),
                njobs,
                stride,
                ntargets: targets.len() / TARGET_WORDS,
            };
            let jobs = (!jobs_sent[si]).then_some(&self.job_words[..]);
            let ticket = self.dev.dispatch(&mut e.slot, jobs, &params)?;
            jobs_sent[si] = true;
            e.pending = Some(Pending {
                start,
                end,
                tag,
                ticket,
            });
            order.push_back(si);
        }
        while let Some(si) = order.pop_front() {
            self.finish(si, meta, out)?;
        }
        Ok(())
    }

    /// Waits for slot `si`'s dispatch and checks its results into `out`.
    fn finish(
        &mut self,
        si: usize,
        meta: Option<&[TaskMeta]>,
        out: &mut [State],
    ) -> anyhow::Result<()> {
        let e = &mut self.slots[si];
        let Some(p) = e.pending.take() else {
            return Ok(());
        };
        let (start, end, tag) = (p.start, p.end, p.tag);
        let words = (end - start) * OUT_WORDS;
        self.dev.read(&mut e.slot, p.ticket, words, |w| {
            super::unpack(w, tag, meta.map(|m| &m[start..end]), &mut out[start..end])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::gpu::{HEADER_REC_WORDS, MIN_PIPELINED};
    use std::cell::Cell;

    /// A device that "hashes" a header record into a state whose first word is the record's
    /// first header word, and counts what the ring asks of it.
    #[derive(Default)]
    struct Mock {
        made: Cell<usize>,
        dispatches: usize,
        job_uploads: usize,
        abandoned: usize,
        fail_at: Option<usize>,
    }

    #[derive(Default)]
    struct MockSlot {
        records: Vec<u32>,
        targets: Vec<u32>,
        out: Vec<u32>,
    }

    impl Device for Mock {
        type Slot = MockSlot;
        type Ticket = u32;

        fn make_slot(&self, _: usize, _: usize) -> anyhow::Result<MockSlot> {
            self.made.set(self.made.get() + 1);
            Ok(MockSlot::default())
        }

        fn host_buffers<'a>(
            &'a mut self,
            slot: &'a mut MockSlot,
            words: usize,
        ) -> (&'a mut [u32], &'a mut Vec<u32>) {
            slot.records.resize(words, 0);
            (&mut slot.records, &mut slot.targets)
        }

        fn dispatch(
            &mut self,
            slot: &mut MockSlot,
            jobs: Option<&[u32]>,
            p: &Params,
        ) -> anyhow::Result<u32> {
            self.dispatches += 1;
            anyhow::ensure!(Some(self.dispatches) != self.fail_at, "injected failure");
            self.job_uploads += jobs.is_some() as usize;
            slot.out.clear();
            for r in slot.records.chunks_exact(p.stride).take(p.tasks) {
                slot.out
                    .extend_from_slice(&[r[2], 0, 0, 0, 0, 0, 0, 0, p.tag << 8]);
            }
            Ok(p.tag)
        }

        fn read(
            &mut self,
            slot: &mut MockSlot,
            _: u32,
            words: usize,
            check: impl FnOnce(&[u32]) -> anyhow::Result<()>,
        ) -> anyhow::Result<()> {
            check(&slot.out[..words])
        }

        fn abandon(&mut self, _: &mut MockSlot, _: Option<u32>) {
            self.abandoned += 1;
        }
    }

    fn header_tasks(n: usize) -> Vec<HashTask> {
        (0..n)
            .map(|i| {
                let mut t = <HashTask as bytemuck::Zeroable>::zeroed();
                t.job = HashTask::HEADER;
                t.data[..4].copy_from_slice(&(i as u32).to_le_bytes());
                t
            })
            .collect()
    }

    #[test]
    fn every_dispatch_lands_in_its_own_range() {
        let n = 5 * MIN_PIPELINED + 3; // six dispatches over the three slots
        let tasks = header_tasks(n);
        let mut ring = Ring::new(Mock::default(), MIN_PIPELINED);
        for batch in 1..=2 {
            let mut out = vec![[0u32; 8]; n];
            ring.run(&[], &tasks, None, &mut out, HEADER_REC_WORDS)
                .unwrap();
            assert!(out.iter().enumerate().all(|(i, o)| o[0] == i as u32));
            let d = ring.device();
            assert_eq!(d.dispatches, 6 * batch);
            assert_eq!(
                d.job_uploads,
                SLOTS * batch,
                "the job table once per slot and batch"
            );
            assert_eq!(d.made.get(), SLOTS, "slots are reused");
        }
    }

    #[test]
    fn a_failed_dispatch_abandons_every_slot_and_the_next_batch_runs() {
        let n = 4 * MIN_PIPELINED;
        let tasks = header_tasks(n);
        let mock = Mock {
            fail_at: Some(4),
            ..Mock::default()
        };
        let mut ring = Ring::new(mock, MIN_PIPELINED);
        let mut out = vec![[0u32; 8]; n];
        let e = ring
            .run(&[], &tasks, None, &mut out, HEADER_REC_WORDS)
            .unwrap_err();
        assert!(e.to_string().contains("injected"), "{e}");
        assert_eq!(ring.device().abandoned, SLOTS);
        ring.run(&[], &tasks, None, &mut out, HEADER_REC_WORDS)
            .unwrap();
        assert!(out.iter().enumerate().all(|(i, o)| o[0] == i as u32));
    }
}
