//! `sharecheck gen`: a deterministic workload of realistic jobs and really mined shares.
//!
//! Jobs look like a pool's: a coinbase of 100–300 bytes (BIP34 height, pool tag, one to three
//! outputs), merkle branches 10–13 deep, BIP310 version rolling, and a new block (clean_jobs)
//! every few jobs. Accepted, low-difficulty and block shares are mined for real against a share
//! difficulty of 2^-31 (about half of all hashes meet it), so a chosen fraction is accepted;
//! the rejects (duplicate, stale, unknown_job, bad_ntime, bad_version, malformed) come in a
//! chosen mix. Each share carries an `expect` field with the status it was made to get
//! (`verify` ignores unknown fields), which makes the output a test vector.
//!
//! Share kinds: stratum shares on the stratum jobs; SV2 extended shares on the same jobs
//! (the session's extranonce1 as the channel's extranonce prefix, the full version); and,
//! for header and SV2 standard shares, a standard job per session and job (the merkle root
//! of the session's coinbase, as an SV2 pool sends each standard channel its own
//! `NewMiningJob`), written before the first share on it.

use crate::model::job::{header_bytes, Job, JobCtx, DEFAULT_VERSION_MASK, SV2_VERSION_MASK};
use crate::model::target::{target_from_compact, target_from_difficulty, U256};
use crate::model::validate::reference_header_words;
use crate::model::{HashTask, Status};
use crate::sha256::Engine;
use crate::wire::{hex, jsonl};
use bytemuck::Zeroable;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::io::Write;

/// Share difficulty of generated shares: 2^-31, so about half of all hashes meet it.
pub const GEN_DIFFICULTY: f64 = 1.0 / 2147483648.0;
/// Mainnet-like nbits for ordinary jobs (no generated share comes near it by chance).
pub const HARD_NBITS: u32 = 0x1703_4219;
/// nbits of the job a block share is mined on (target ≈ 2^248: one hash in 256 is a block).
pub const EASY_NBITS: u32 = 0x2000_ffff;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    pub shares: u64,
    pub seed: u64,
    pub mode: GenMode,
    /// Fraction of shares made to be accepted.
    pub accepted: f64,
    /// Fraction made to be blocks.
    pub blocks: f64,
    /// Fraction rejected before hashing, split by `reject_mix`.
    pub rejects: f64,
    /// Relative weights of duplicate, stale, unknown_job, bad_ntime, bad_version, malformed.
    pub reject_mix: [f64; 6],
    /// Shares between new jobs.
    pub shares_per_job: u64,
    /// Jobs between new blocks (clean_jobs = true).
    pub jobs_per_block: u64,
    /// Miner sessions (each with its own extranonce1).
    pub sessions: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenMode {
    Stratum,
    Header,
    /// Stratum and header shares, alternating.
    Mixed,
    Sv2Standard,
    Sv2Extended,
    /// All four kinds in turn: stratum, header, SV2 standard, SV2 extended.
    All,
}

/// The kind of one generated share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stratum,
    Header,
    Standard,
    Extended,
}

impl Kind {
    /// Shares on a standard job (the header is the job's but for version, ntime, nonce).
    fn on_standard_job(self) -> bool {
        matches!(self, Kind::Header | Kind::Standard)
    }
}

impl GenMode {
    /// The kind of share number `id`.
    fn kind(self, id: u64) -> Kind {
        const ALL: [Kind; 4] = [Kind::Stratum, Kind::Header, Kind::Standard, Kind::Extended];
        match self {
            GenMode::Stratum => Kind::Stratum,
            GenMode::Header => Kind::Header,
            GenMode::Mixed => ALL[(id % 2) as usize],
            GenMode::Sv2Standard => Kind::Standard,
            GenMode::Sv2Extended => Kind::Extended,
            GenMode::All => ALL[(id % 4) as usize],
        }
    }

    /// SV2 jobs let the BIP323 bits roll; stratum jobs BIP310's.
    fn version_mask(self) -> u32 {
        match self {
            GenMode::Stratum | GenMode::Header | GenMode::Mixed => DEFAULT_VERSION_MASK,
            _ => SV2_VERSION_MASK,
        }
    }

    pub fn from_name(name: &str) -> Option<GenMode> {
        Some(match name {
            "stratum" => GenMode::Stratum,
            "header" => GenMode::Header,
            "mixed" => GenMode::Mixed,
            "sv2-standard" => GenMode::Sv2Standard,
            "sv2-extended" => GenMode::Sv2Extended,
            "all" => GenMode::All,
            _ => return None,
        })
    }
}

/// The names `--mode` takes.
pub const MODE_NAMES: [&str; 6] = [
    "stratum",
    "header",
    "mixed",
    "sv2-standard",
    "sv2-extended",
    "all",
];

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            shares: 10_000,
            seed: 1,
            mode: GenMode::Stratum,
            accepted: 0.90,
            blocks: 0.0005,
            rejects: 0.06,
            reject_mix: [1.0; 6],
            shares_per_job: 500,
            jobs_per_block: 10,
            sessions: 64,
        }
    }
}

/// Reject kinds in `reject_mix` order.
pub const REJECT_KINDS: [Status; 6] = [
    Status::Duplicate,
    Status::Stale,
    Status::UnknownJob,
    Status::BadNtime,
    Status::BadVersion,
    Status::Malformed,
];

struct Session {
    en1: Vec<u8>,
    counter: u64,
}

struct State {
    rng: ChaCha8Rng,
    engine: &'static dyn Engine,
    height: u32,
    prevhash: [u8; 32],
    ntime: u32,
    job_seq: u64,
    current: Option<JobCtx>,
    /// The extranonce2 size of the current job: its coinbase reserves 4 bytes of
    /// extranonce1 and this many, so that every share's coinbase is a transaction.
    en2_len: usize,
    stale_ids: Vec<String>,
    /// Standard jobs of the current job, per session.
    standard_jobs: std::collections::HashMap<usize, String>,
    /// Mined shares on standard jobs of earlier blocks (stale now): job id and header.
    stale_standard: Vec<(String, [u8; 80])>,
    /// The last share mined on a standard job, kept as a stale one when a block comes.
    last_standard: Option<(String, [u8; 80])>,
    version_mask: u32,
    recent: Vec<Value>,
    sessions: Vec<Session>,
    share_target: U256,
    /// A block share was just written: the next job is a new block.
    clean_after: bool,
}

/// Writes the workload as JSON Lines; returns the number of share lines written.
pub fn generate(cfg: &GenConfig, out: &mut dyn Write) -> anyhow::Result<u64> {
    anyhow::ensure!(
        cfg.accepted >= 0.0 && cfg.blocks >= 0.0 && cfg.rejects >= 0.0,
        "fractions must not be negative"
    );
    anyhow::ensure!(
        cfg.accepted + cfg.blocks + cfg.rejects <= 1.0 + 1e-9,
        "accepted + blocks + rejects must not exceed 1 (the rest is low_difficulty)"
    );
    anyhow::ensure!(cfg.sessions > 0, "at least one session");
    anyhow::ensure!(
        cfg.shares_per_job > 0 && cfg.jobs_per_block > 0,
        "job spacing must be > 0"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let sessions = (0..cfg.sessions)
        .map(|i| Session {
            en1: (i ^ rng.random::<u32>()).to_be_bytes().to_vec(),
            counter: 0,
        })
        .collect();
    let mut st = State {
        prevhash: random_prevhash(&mut rng),
        rng,
        engine: crate::sha256::best(),
        height: 900_000,
        ntime: 1_750_000_000,
        job_seq: 0,
        current: None,
        en2_len: 4,
        stale_ids: Vec::new(),
        standard_jobs: Default::default(),
        stale_standard: Vec::new(),
        last_standard: None,
        version_mask: cfg.mode.version_mask(),
        recent: Vec::new(),
        sessions,
        share_target: target_from_difficulty(GEN_DIFFICULTY).expect("valid difficulty"),
        clean_after: false,
    };
    let mix_total: f64 = cfg.reject_mix.iter().sum();
    let mut written = 0u64;
    for id in 0..cfg.shares {
        if id % cfg.shares_per_job == 0 {
            let clean = st.current.is_none() || st.job_seq.is_multiple_of(cfg.jobs_per_block);
            st.new_job(clean, HARD_NBITS, out)?;
        }
        let kind = cfg.mode.kind(id);
        let r: f64 = st.rng.random();
        let intent = if r < cfg.accepted {
            Status::Accepted
        } else if r < cfg.accepted + cfg.blocks {
            Status::Block
        } else if r < cfg.accepted + cfg.blocks + cfg.rejects && mix_total > 0.0 {
            let mut x = st.rng.random::<f64>() * mix_total;
            let mut kind = Status::Malformed;
            for (k, w) in REJECT_KINDS.iter().zip(cfg.reject_mix) {
                if x < w {
                    kind = *k;
                    break;
                }
                x -= w;
            }
            kind
        } else {
            Status::LowDifficulty
        };
        let line = st.share(id, intent, kind, out)?;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        written += 1;
        if std::mem::take(&mut st.clean_after) {
            st.new_job(true, HARD_NBITS, out)?;
        }
    }
    out.flush()?;
    Ok(written)
}

fn random_prevhash(rng: &mut impl Rng) -> [u8; 32] {
    // Header byte order: the hash's leading zeros are its last bytes.
    let mut p: [u8; 32] = rng.random();
    p[24..].fill(0);
    p
}

impl State {
    fn new_job(&mut self, clean: bool, nbits: u32, out: &mut dyn Write) -> anyhow::Result<()> {
        if clean {
            if let Some(c) = &self.current {
                self.height += 1;
                self.prevhash = random_prevhash(&mut self.rng);
                self.stale_ids.push(c.job.job_id.clone());
            }
            if let Some(last) = self.last_standard.take() {
                if self.stale_standard.len() < 64 {
                    self.stale_standard.push(last);
                }
            }
            self.recent.clear();
        }
        self.standard_jobs.clear();
        self.job_seq += 1;
        self.ntime += self.rng.random_range(1..60);
        let rng = &mut self.rng;
        // coinbase: version, 1 input, null prevout, scriptSig (BIP34 height, pool tag,
        // extranonce), sequence, 1–3 outputs, locktime: 100–300 bytes in all.
        let tag_len = rng.random_range(8..40);
        let outputs = rng.random_range(1..=3);
        // One job in four has an 8-byte extranonce2 (a longer coinbase, other block
        // boundaries); every share on a job fills exactly the job's slot.
        self.en2_len = if rng.random_range(0..4) == 3 { 8 } else { 4 };
        let mut coinb1 = Vec::new();
        coinb1.extend_from_slice(&1u32.to_le_bytes());
        coinb1.push(1);
        coinb1.extend_from_slice(&[0; 32]);
        coinb1.extend_from_slice(&[0xff; 4]);
        let script_len = 4 + tag_len + 4 + self.en2_len;
        coinb1.push(script_len as u8);
        coinb1.push(3);
        coinb1.extend_from_slice(&self.height.to_le_bytes()[..3]);
        let mut coinb2: Vec<u8> = (0..tag_len).map(|_| rng.random_range(0x20..0x7f)).collect();
        coinb2.extend_from_slice(&[0xff; 4]);
        coinb2.push(outputs);
        for _ in 0..outputs {
            coinb2.extend_from_slice(&rng.random_range(1u64..5_000_000_000).to_le_bytes());
            coinb2.push(25);
            coinb2.extend_from_slice(&[0x76, 0xa9, 0x14]);
            coinb2.extend((0..20).map(|_| rng.random::<u8>()));
            coinb2.extend_from_slice(&[0x88, 0xac]);
        }
        coinb2.extend_from_slice(&0u32.to_le_bytes());
        let depth = rng.random_range(10..=13);
        let job = Job {
            job_id: format!("{:x}", self.job_seq),
            prevhash: self.prevhash,
            coinb1,
            coinb2,
            merkle_branch: (0..depth).map(|_| rng.random()).collect(),
            version: 0x2000_0000,
            nbits,
            ntime: self.ntime,
            clean_jobs: clean,
            version_mask: self.version_mask,
            extranonce_size: Some(4 + self.en2_len as u8),
            merkle_root: None,
            step: Default::default(),
        };
        writeln!(out, "{}", jsonl::job_json(&job))?;
        self.current = Some(JobCtx::new(job).map_err(anyhow::Error::msg)?);
        Ok(())
    }

    fn share(
        &mut self,
        id: u64,
        intent: Status,
        kind: Kind,
        out: &mut dyn Write,
    ) -> anyhow::Result<String> {
        let mut v = match intent {
            Status::Duplicate if !self.recent.is_empty() => {
                let k = self.rng.random_range(0..self.recent.len());
                let mut v = self.recent[k].clone();
                // A duplicate in other hex case is still a duplicate.
                for field in ["extranonce2", "extranonce", "header"] {
                    if let Some(Value::String(s)) = v.get_mut(field) {
                        *s = s.to_uppercase();
                    }
                }
                v
            }
            Status::Duplicate | Status::Accepted | Status::LowDifficulty => {
                let intent = if intent == Status::Duplicate {
                    Status::Accepted
                } else {
                    intent
                };
                let v = self.mined(intent, kind, out)?;
                self.remember(&v);
                return Ok(finish(v, id, intent));
            }
            Status::Block => {
                // A block is mined on a job with an easy network target; as at a real pool,
                // a new block (clean job) follows.
                self.new_job(false, EASY_NBITS, out)?;
                let v = self.mined(Status::Block, kind, out)?;
                self.clean_after = true;
                return Ok(finish(v, id, Status::Block));
            }
            Status::Stale if kind.on_standard_job() && !self.stale_standard.is_empty() => {
                let k = self.rng.random_range(0..self.stale_standard.len());
                let (job_id, header) = self.stale_standard[k].clone();
                standard_value(kind, &job_id, &header)
            }
            Status::Stale if !kind.on_standard_job() && !self.stale_ids.is_empty() => {
                let mut v = self.mined(Status::Accepted, kind, out)?;
                let k = self.rng.random_range(0..self.stale_ids.len());
                v["job_id"] = self.stale_ids[k].clone().into();
                v
            }
            Status::Stale | Status::UnknownJob => {
                let mut v = self.mined(Status::Accepted, kind, out)?;
                if kind == Kind::Header {
                    // The work of no job: another merkle root.
                    let mut h = header_of(&v);
                    self.rng.fill(&mut h[36..68]);
                    v["header"] = hex::encode(&h).into();
                } else {
                    v["job_id"] = format!("nojob{:x}", self.rng.random::<u32>()).into();
                }
                return Ok(finish(v, id, Status::UnknownJob));
            }
            Status::BadNtime => {
                let mut v = self.mined(Status::Accepted, kind, out)?;
                let job_ntime = self.current.as_ref().expect("job").job.ntime;
                let t = if self.rng.random_bool(0.5) {
                    job_ntime - 1 - self.rng.random_range(0..1000)
                } else {
                    job_ntime + 7201 + self.rng.random_range(0..1000)
                };
                set_field(&mut v, kind, "ntime", t);
                v
            }
            Status::BadVersion => {
                let mut v = self.mined(Status::Accepted, kind, out)?;
                // A bit the job does not let roll.
                let bit = if self.version_mask == DEFAULT_VERSION_MASK {
                    1 << self.rng.random_range(0..13)
                } else {
                    1 << self.rng.random_range(0..5)
                };
                if kind == Kind::Stratum {
                    v["version_bits"] = format!("{:08x}", 0x0000_2000u32 | bit).into();
                } else {
                    let full = match kind {
                        Kind::Header => u32::from_le_bytes(header_of(&v)[..4].try_into()?),
                        _ => v["version"].as_u64().unwrap_or(0) as u32,
                    };
                    set_field(&mut v, kind, "version", full ^ bit);
                }
                v
            }
            _ => self.malformed(kind, out)?,
        };
        v["expect"] = intent.as_str().into();
        Ok(finish(v, id, intent))
    }

    fn remember(&mut self, v: &Value) {
        if self.recent.len() < 64 {
            self.recent.push(v.clone());
        } else {
            let k = self.rng.random_range(0..64);
            self.recent[k] = v.clone();
        }
    }

    /// A share mined so that its hash gets `intent` (accepted, low_difficulty or block).
    fn mined(&mut self, intent: Status, kind: Kind, out: &mut dyn Write) -> anyhow::Result<Value> {
        let ctx = self.current.as_ref().expect("a job").clone();
        let s = self.rng.random_range(0..self.sessions.len());
        let sess = &mut self.sessions[s];
        sess.counter += 1;
        // On a standard job the coinbase is the session's, fixed: its extranonce2 is zero.
        let en2 = if kind.on_standard_job() {
            vec![0; self.en2_len]
        } else {
            sess.counter.to_be_bytes()[8 - self.en2_len..].to_vec()
        };
        let en1 = sess.en1.clone();
        let mut task = HashTask::zeroed();
        task.en_len = (en1.len() + en2.len()) as u32;
        task.data[..en1.len()].copy_from_slice(&en1);
        task.data[en1.len()..task.en_len as usize].copy_from_slice(&en2);
        let version_bits = self
            .rng
            .random_bool(0.5)
            .then(|| self.rng.random::<u32>() & DEFAULT_VERSION_MASK);
        task.version = ctx.rolled_version(version_bits);
        task.ntime = ctx.job.ntime + self.rng.random_range(0..120);
        let mut words = reference_header_words(&ctx, &task);
        let network = target_from_compact(ctx.job.nbits).expect("valid nbits");
        let want = |h: &U256| match intent {
            Status::Block => *h <= network,
            Status::Accepted => *h > network && *h <= self.share_target,
            _ => *h > self.share_target,
        };
        // Try eight nonces per engine call; keep the first that gives the wanted status.
        let mut nonce: u32 = self.rng.random();
        let found = 'search: loop {
            let mut cand = [words; 8];
            for (k, c) in cand.iter_mut().enumerate() {
                c[19] = nonce.wrapping_add(k as u32).swap_bytes();
            }
            let mut hs = [[0u32; 8]; 8];
            self.engine.sha256d_80(&cand, &mut hs);
            for (k, h) in hs.iter().enumerate() {
                if want(&U256::from_hash_state(h)) {
                    break 'search nonce.wrapping_add(k as u32);
                }
            }
            nonce = nonce.wrapping_add(8);
        };
        words[19] = found.swap_bytes();
        let v = match kind {
            Kind::Header | Kind::Standard => {
                let header = header_bytes(&words);
                let job_id = self.standard_job(s, &ctx, &header, out)?;
                self.last_standard = Some((job_id.clone(), header));
                standard_value(kind, &job_id, &header)
            }
            Kind::Extended => json!({
                "kind": "sv2_extended",
                "job_id": ctx.job.job_id,
                "extranonce_prefix": hex::encode(&en1),
                "extranonce": hex::encode(&en2),
                "ntime": task.ntime,
                "nonce": found,
                "version": task.version,
                "difficulty": GEN_DIFFICULTY,
            }),
            Kind::Stratum => {
                let mut v = json!({
                    "job_id": ctx.job.job_id,
                    "extranonce1": hex::encode(&en1),
                    "extranonce2": hex::encode(&en2),
                    "ntime": format!("{:08x}", task.ntime),
                    "nonce": format!("{found:08x}"),
                    "difficulty": GEN_DIFFICULTY,
                });
                if let Some(b) = version_bits {
                    v["version_bits"] = format!("{b:08x}").into();
                }
                v
            }
        };
        Ok(v)
    }

    /// The standard job of session `s` on the current job (written when first needed): the
    /// merkle root of the session's coinbase, which `header` carries.
    fn standard_job(
        &mut self,
        s: usize,
        ctx: &JobCtx,
        header: &[u8; 80],
        out: &mut dyn Write,
    ) -> anyhow::Result<String> {
        if let Some(id) = self.standard_jobs.get(&s) {
            return Ok(id.clone());
        }
        let job = Job {
            job_id: format!("{}s{s}", ctx.job.job_id),
            prevhash: ctx.job.prevhash,
            coinb1: Vec::new(),
            coinb2: Vec::new(),
            merkle_branch: Vec::new(),
            version: ctx.job.version,
            nbits: ctx.job.nbits,
            ntime: ctx.job.ntime,
            // The stratum job it comes from made the earlier ones stale already.
            clean_jobs: false,
            version_mask: self.version_mask,
            extranonce_size: None,
            merkle_root: Some(header[36..68].try_into()?),
            step: Default::default(),
        };
        JobCtx::new(job.clone()).map_err(anyhow::Error::msg)?;
        writeln!(out, "{}", jsonl::job_json(&job))?;
        self.standard_jobs.insert(s, job.job_id.clone());
        Ok(job.job_id)
    }

    /// A malformed share, one of several kinds.
    fn malformed(&mut self, kind: Kind, out: &mut dyn Write) -> anyhow::Result<Value> {
        let mut v = self.mined(Status::Accepted, kind, out)?;
        let k = self.rng.random_range(0..7);
        let set = |v: &mut Value, f: &str, x: Value| {
            v[f] = x;
        };
        let remove = |v: &mut Value, f: &str| {
            v.as_object_mut().expect("object").remove(f);
        };
        match (kind, k) {
            (Kind::Header, 0) => set(&mut v, "header", "00".repeat(79).into()),
            (Kind::Header, 1) => set(&mut v, "header", "zz".repeat(80).into()),
            (Kind::Header, 5) => {
                remove(&mut v, "difficulty");
                set(&mut v, "target", "00".repeat(32).into())
            }
            (Kind::Stratum, 0) => set(&mut v, "extranonce2", "zz".repeat(4).into()),
            (Kind::Stratum, 4) => set(&mut v, "extranonce2", "00".repeat(17).into()),
            (Kind::Stratum, 5) => set(&mut v, "version_bits", "xyz".into()),
            (Kind::Stratum, 6) => set(&mut v, "extranonce1", "abc".into()),
            (Kind::Standard, 0) => set(&mut v, "extranonce", "00".into()),
            (Kind::Standard, 5) => set(&mut v, "kind", "sv2_bogus".into()),
            (Kind::Standard, 6) => set(&mut v, "job_id", "".into()),
            (Kind::Extended, 0) => set(&mut v, "extranonce", "zz".repeat(4).into()),
            (Kind::Extended, 4) => {
                // One byte more than the job's slot: bad-extranonce-size.
                let en = format!("{}00", v["extranonce"].as_str().unwrap_or(""));
                set(&mut v, "extranonce", en.into())
            }
            (Kind::Extended, 5) => set(&mut v, "extranonce", "00".repeat(33).into()),
            (Kind::Extended, 6) => set(&mut v, "extranonce_prefix", "abc".into()),
            (Kind::Header, 2) => set(&mut v, "difficulty", 0.into()),
            (Kind::Header, 3) => set(&mut v, "difficulty", (-1).into()),
            (Kind::Header, 4) => set(&mut v, "difficulty", "1".into()),
            (Kind::Header, _) => remove(&mut v, "difficulty"),
            (_, 3) => set(&mut v, "difficulty", 0.into()),
            (_, 1) => set(&mut v, "nonce", "123".into()),
            (_, 2) => remove(&mut v, "ntime"),
            (_, _) => set(&mut v, "version", "xyz".into()),
        }
        Ok(v)
    }
}

/// A share on a standard job, as a header share or an SV2 standard share.
fn standard_value(kind: Kind, job_id: &str, header: &[u8; 80]) -> Value {
    if kind == Kind::Header {
        return json!({
            "header": hex::encode(header),
            "difficulty": GEN_DIFFICULTY,
        });
    }
    let u = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4"));
    json!({
        "kind": "sv2_standard",
        "job_id": job_id,
        "ntime": u(68),
        "nonce": u(76),
        "version": u(0),
        "difficulty": GEN_DIFFICULTY,
    })
}

/// The header of a generated header share.
fn header_of(v: &Value) -> [u8; 80] {
    let mut h = [0u8; 80];
    let _ = hex::decode_into(v["header"].as_str().unwrap_or(""), &mut h);
    h
}

/// Sets a u32 field of a generated share: stratum's hex text, SV2's integer, or the bytes of
/// a header share's header.
fn set_field(v: &mut Value, kind: Kind, field: &str, x: u32) {
    match kind {
        Kind::Stratum => v[field] = format!("{x:08x}").into(),
        Kind::Header => {
            let mut h = header_of(v);
            let at = if field == "ntime" { 68 } else { 0 };
            h[at..at + 4].copy_from_slice(&x.to_le_bytes());
            v["header"] = hex::encode(&h).into();
        }
        Kind::Standard | Kind::Extended => v[field] = x.into(),
    }
}

fn finish(mut v: Value, id: u64, intent: Status) -> String {
    v["id"] = id.into();
    v["expect"] = intent.as_str().into();
    json!({ "share": v }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every share made to be hashed fills exactly its job's extranonce slot: its coinbase
    /// is a whole transaction (the coinbase script's declared length holds).
    #[test]
    fn every_mined_shares_coinbase_is_a_transaction() {
        let cfg = GenConfig {
            shares: 3000,
            shares_per_job: 50,
            ..GenConfig::default()
        };
        let mut out = Vec::new();
        generate(&cfg, &mut out).unwrap();
        let mut jobs = std::collections::HashMap::new();
        let (mut checked, mut en2_sizes) = (0, [0usize; 9]);
        for line in String::from_utf8(out).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if let Some(j) = v.get("job") {
                let parts =
                    ["coinb1", "coinb2"].map(|k| hex::decode(j[k].as_str().unwrap()).unwrap());
                jobs.insert(j["job_id"].as_str().unwrap().to_string(), parts);
                continue;
            }
            let s = &v["share"];
            let hashed = ["accepted", "low_difficulty", "block"]
                .contains(&s["expect"].as_str().unwrap_or(""));
            let Some(job) = s["job_id"].as_str().and_then(|id| jobs.get(id)) else {
                continue;
            };
            if !hashed {
                continue;
            }
            let en1 = hex::decode(s["extranonce1"].as_str().unwrap()).unwrap();
            let en2 = hex::decode(s["extranonce2"].as_str().unwrap()).unwrap();
            en2_sizes[en2.len()] += 1;
            let coinbase = [&job[0][..], &en1, &en2, &job[1]].concat();
            let tx: Result<bitcoin::Transaction, _> = bitcoin::consensus::deserialize(&coinbase);
            assert!(tx.is_ok(), "{line}: {:?}", tx.err());
            checked += 1;
        }
        assert!(checked > 2000, "{checked}");
        assert!(en2_sizes[4] > 0 && en2_sizes[8] > 0, "{en2_sizes:?}");
    }
}
