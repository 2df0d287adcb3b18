//! The FPGA backend: headers to the card, hashes back, through the two byte streams the Xilinx
//! XDMA driver exposes in streaming mode (a host-to-card and a card-to-host character device).
//!
//! The card does the header work (SHA-256d of 80 bytes and the target comparisons, see
//! hardware/README.md for the record layouts); for stratum shares the coinbase and merkle work
//! runs on the CPU first. The Verilator model in hardware/sim serves the same two streams as
//! named pipes, so this exact code is tested end to end without a card.
//!
//! A time-out, a closed stream or a result that does not match what was sent is an error
//! (the caller redoes the batch elsewhere); the connection is then dropped and reopened on the
//! next batch. The card's network-target flag is checked against the host's own comparison, so
//! a faulty comparator is caught instead of deciding a block.

use super::Backend;
use crate::model::target::{target_from_compact, U256};
use crate::model::validate::TaskMeta;
use crate::model::{HashTask, JobCtx};
use crate::sha256::{soft, Engine, State};
use anyhow::{bail, Context};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes of one work record (host → card).
pub const WORK_RECORD: usize = 128;
/// Bytes of one result record (card → host).
pub const RESULT_RECORD: usize = 64;

pub use crate::config::FpgaConfig;

struct Conn {
    h2c: File,
    c2h: File,
}

pub struct FpgaBackend {
    cfg: FpgaConfig,
    /// CPU engine for the stratum work before the header.
    engine: &'static dyn Engine,
    conn: Mutex<Option<Conn>>,
}

impl FpgaBackend {
    /// Opens the two streams (blocking until the card or the simulator is there, bounded by
    /// the time-out).
    pub fn new(cfg: FpgaConfig) -> anyhow::Result<FpgaBackend> {
        let b = FpgaBackend {
            cfg,
            engine: crate::sha256::best(),
            conn: Mutex::new(None),
        };
        let conn = b.connect()?;
        *b.conn.lock().expect("fresh mutex") = Some(conn);
        Ok(b)
    }

    fn connect(&self) -> anyhow::Result<Conn> {
        for p in [&self.cfg.h2c, &self.cfg.c2h] {
            if !p.exists() {
                bail!(
                    "FPGA stream {} does not exist: load the XDMA driver for the card, or start \
                     the simulator (hardware/sim/run.sh), or set backend.fpga.h2c / c2h",
                    p.display()
                );
            }
        }
        // Opening a named pipe blocks until the other side opens it: do it on a thread so that
        // a missing simulator is a time-out, not a hang.
        let (h2c, c2h) = (self.cfg.h2c.clone(), self.cfg.c2h.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let r = (|| -> std::io::Result<Conn> {
                let h2c = OpenOptions::new().write(true).open(&h2c)?;
                let c2h = OpenOptions::new().read(true).open(&c2h)?;
                Ok(Conn { h2c, c2h })
            })();
            let _ = tx.send(r);
        });
        match rx.recv_timeout(Duration::from_millis(self.cfg.timeout_ms)) {
            Ok(r) => r.with_context(|| {
                format!(
                    "cannot open FPGA streams {} / {}",
                    self.cfg.h2c.display(),
                    self.cfg.c2h.display()
                )
            }),
            Err(_) => bail!(
                "FPGA streams {} / {} did not open within {} ms (no card or simulator on the \
                 other side)",
                self.cfg.h2c.display(),
                self.cfg.c2h.display(),
                self.cfg.timeout_ms
            ),
        }
    }

    fn exchange(&self, conn: &mut Conn, work: &[u8], n: usize) -> anyhow::Result<Vec<u8>> {
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        let Conn { h2c, c2h } = conn;
        std::thread::scope(|s| {
            // Write on one thread while reading on this one: the card answers while it is
            // still being fed, and neither side's buffer may fill up and stall the other.
            let writer = s.spawn(move || -> std::io::Result<()> {
                h2c.write_all(work)?;
                h2c.flush()
            });
            let mut out = vec![0u8; n * RESULT_RECORD];
            let mut got = 0;
            let mut last = Instant::now();
            while got < out.len() {
                let mut pfd = libc::pollfd {
                    fd: c2h.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let left = timeout.saturating_sub(last.elapsed());
                if left.is_zero() {
                    bail!(
                        "FPGA time-out: {} of {n} results after {} ms without progress",
                        got / RESULT_RECORD,
                        self.cfg.timeout_ms
                    );
                }
                // SAFETY: one valid pollfd for the duration of the call.
                let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
                if r < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e).context("polling the FPGA result stream");
                }
                if r == 0 {
                    continue;
                }
                let k = c2h.read(&mut out[got..]).context("reading FPGA results")?;
                if k == 0 {
                    bail!(
                        "the FPGA result stream closed after {} results",
                        got / RESULT_RECORD
                    );
                }
                got += k;
                last = Instant::now();
            }
            match writer.join() {
                Ok(Ok(())) => Ok(out),
                Ok(Err(e)) => Err(e).context("writing FPGA work"),
                Err(_) => bail!("the FPGA writer thread panicked"),
            }
        })
    }
}

/// One work record: id, the 80 header bytes, the share target (big-endian), zero padding.
pub fn work_record(id: u64, header: &[u8; 80], share_target: &U256) -> [u8; WORK_RECORD] {
    let mut r = [0u8; WORK_RECORD];
    r[..8].copy_from_slice(&id.to_le_bytes());
    r[8..88].copy_from_slice(header);
    r[88..120].copy_from_slice(&share_target.to_be_bytes());
    r
}

impl Backend for FpgaBackend {
    fn name(&self) -> String {
        "fpga".into()
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
        anyhow::ensure!(meta.len() == tasks.len(), "one target set per task");
        self.run(jobs, tasks, Some(meta), out)
    }
}

impl FpgaBackend {
    /// Hashes on the card. With `meta`, the card also compares against each share target and
    /// both of its flags are checked; without, only the network flag is.
    fn run(
        &self,
        jobs: &[Arc<JobCtx>],
        tasks: &[HashTask],
        meta: Option<&[TaskMeta]>,
        out: &mut [State],
    ) -> anyhow::Result<()> {
        anyhow::ensure!(out.len() == tasks.len(), "one output per task");
        if tasks.is_empty() {
            return Ok(());
        }
        // Headers (the CPU does the stratum work), then one record per task.
        let mut headers = vec![[0u32; 20]; tasks.len()];
        for (t, h) in tasks
            .chunks(super::cpu::CHUNK)
            .zip(headers.chunks_mut(super::cpu::CHUNK))
        {
            super::cpu::header_words(self.engine, jobs, t, h);
        }
        let mut work = Vec::with_capacity(tasks.len() * WORK_RECORD);
        let mut net_targets = Vec::with_capacity(tasks.len());
        for (i, h) in headers.iter().enumerate() {
            let bytes = crate::model::job::header_bytes(h);
            let share_target = meta.map_or(U256::ZERO, |m| m[i].share_target);
            work.extend_from_slice(&work_record(i as u64, &bytes, &share_target));
            // Valid by construction: the validator rejected shares with bad nbits.
            net_targets.push(target_from_compact(h[18].swap_bytes()).unwrap_or(U256::ZERO));
        }
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(self.connect()?);
        }
        let result = self.exchange(guard.as_mut().expect("connected"), &work, tasks.len());
        let results = match result {
            Ok(r) => r,
            Err(e) => {
                // The stream state is unknown now: start afresh next time.
                *guard = None;
                return Err(e);
            }
        };
        for (i, rec) in results.chunks_exact(RESULT_RECORD).enumerate() {
            let id = u64::from_le_bytes(rec[..8].try_into().expect("8"));
            if id != i as u64 {
                *guard = None;
                bail!("FPGA result {i} carries id {id}: the card lost or reordered work");
            }
            let digest: [u8; 32] = rec[16..48].try_into().expect("32");
            let state = soft::state_from_bytes(&digest);
            let value = U256::from_hash_state(&state);
            let meets_network = rec[8] & 2 != 0;
            let meets_share = rec[8] & 1 != 0;
            if meets_network != (value <= net_targets[i])
                || meta.is_some_and(|m| meets_share != (value <= m[i].share_target))
            {
                *guard = None;
                bail!("FPGA target flags of result {i} disagree with its hash");
            }
            out[i] = state;
        }
        Ok(())
    }
}
