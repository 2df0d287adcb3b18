//! sharecheck against SRI (the Stratum Reference Implementation) on Stratum V2 standard and
//! extended shares. SRI is the independent side: its server channels (`channels_sv2`) are fed
//! random templates and chain tips, its job factory builds the jobs, and every job, prev hash,
//! target and share travels as a `mining_sv2` message framed, encoded and decoded by SRI's
//! codec (`codec_sv2`, `binary_sv2`). The decoded messages are converted to sharecheck's JSON
//! Lines, and each share is judged twice: by the SRI channel's `validate_share` and by
//! `sharecheck::verify::run`. The two verdicts (accepted, block or the `SubmitShares.Error`
//! code) must agree, except where a difference is in the commented allow-list [`KNOWN`].

use binary_sv2::{Encodable, GetSize, Seq0255Owned, U256Owned};
use bitcoin::hashes::Hash as _;
use bitcoin::{Amount, CompactTarget, ScriptBuf, Target, TxOut};
use channels_sv2::extranonce_manager::ExtranonceAllocator;
use channels_sv2::server::extended::ExtendedChannel;
use channels_sv2::server::share_accounting::{ShareValidationError, ShareValidationResult};
use channels_sv2::server::standard::StandardChannel;
use codec_sv2::{Decoded, Decoder, Encoder, MessageFrame};
use mining_sv2::{
    NewExtendedMiningJob, NewExtendedMiningJobOwned, NewMiningJob, NewMiningJobOwned,
    SetNewPrevHash, SetNewPrevHashOwned, SetTarget, SetTargetOwned, SubmitSharesExtended,
    SubmitSharesExtendedOwned, SubmitSharesStandard,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use template_distribution_sv2::{NewTemplateOwned, SetNewPrevHashOwned as TdpSetNewPrevHash};

mod sri_support;
use sri_support::{add_extended_fields, hex, job_fields, stratum_prevhash, ROLLING_MASK};

/// Regtest's nbits: the network target is about 2^255, so about half of all hashes are blocks.
const NBITS: u32 = 0x207f_ffff;
/// sharecheck's default `max_ntime_future_s`: ntime at most this far past its clock.
const FUTURE_S: u32 = 7000;
/// The min_ntime of the first tip (2025-06-15).
const BASE_NTIME: u32 = 1_750_000_000;
const REWARD: u64 = 5_000_000_000;
const STANDARD_CHANNELS: u32 = 4;
const EXTENDED_CHANNELS: u32 = 6;
const STEPS: usize = 450;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    /// A share on the active job with the right fields and a random nonce.
    Random,
    NtimeMinMinus1,
    NtimeMin,
    NtimeMax,
    NtimeMaxPlus1,
    /// Version bits flipped inside 0x1fffffe0.
    VersionInMask,
    /// A version bit flipped outside 0x1fffffe0.
    VersionOutMask,
    /// Both a bad version and a bad ntime (shows which check comes first).
    VersionAndNtime,
    ExtranonceShort,
    ExtranonceLong,
    /// A share submitted again, exactly.
    Duplicate,
    /// A job replaced by a newer one under the same prev hash.
    PastJob,
    /// A job of the previous prev hash.
    StaleJob,
    /// A job of a prev hash two or more tips back.
    StaleOlderJob,
    /// A future job (NewMiningJob without min_ntime) not activated by a SetNewPrevHash.
    FutureJob,
    UnknownJob,
    /// A share on a job whose min_ntime is ahead of the clock, ntime up to min_ntime + 7200.
    FarFuture,
}

/// One share judged by both sides.
#[derive(Debug, Clone)]
struct Case {
    id: u64,
    channel: u32,
    extended: bool,
    rolling: bool,
    kind: Kind,
    /// For a duplicate, the kind of the share first sent with these fields.
    root: Kind,
    /// How many prev hashes back the share's job is (None: not an active job of any tip).
    job_age: Option<usize>,
    ntime: u32,
    sri: String,
    sri_hash: Option<String>,
    msg: String,
}

/// A known, explained difference between SRI's verdict and sharecheck's.
struct Known {
    name: &'static str,
    sri: &'static [&'static str],
    sharecheck: &'static str,
    applies: fn(&Case, u32) -> bool,
}

fn is(c: &Case, k: Kind) -> bool {
    c.kind == k || (c.kind == Kind::Duplicate && c.root == k)
}

/// Every difference the test tolerates; anything else fails it.
const KNOWN: &[Known] = &[
    // SRI remembers the hash of a share only when it meets the channel target (it is then
    // counted in share_accounting's seen_shares), so a repeated low-difficulty share is
    // judged again, as difficulty-too-low; sharecheck checks duplicates for every share
    // before hashing. Both reject it.
    Known {
        name: "low-difficulty duplicate",
        sri: &["difficulty-too-low"],
        sharecheck: "duplicate-share",
        applies: |c, _| c.kind == Kind::Duplicate,
    },
    // channels_sv2 has no clock (it is no_std-compatible): it bounds ntime by the job's
    // min_ntime + 7200 s alone (its MAX_FUTURE_BLOCK_TIME). sharecheck also refuses ntime
    // more than max_ntime_future_s (7000 s) past its own clock, as consensus refuses a block
    // more than 2 h past the node's clock. Only shares on a job whose min_ntime is ahead of
    // the clock reach it here.
    Known {
        name: "wall-clock ntime bound",
        sri: &["accepted", "block", "difficulty-too-low", "duplicate-share"],
        sharecheck: "invalid-share",
        applies: |c, t0| c.ntime > t0 + FUTURE_S,
    },
    // SRI keeps the jobs of the previous prev hash only as stale; at the next SetNewPrevHash
    // it forgets them, and their late shares are invalid-job-id. sharecheck remembers up to
    // max_stale_jobs (65536) stale job ids.
    Known {
        name: "stale job SRI forgot",
        sri: &["invalid-job-id"],
        sharecheck: "stale-share",
        applies: |c, _| c.job_age.is_some_and(|a| a >= 2),
    },
    // A share with both a bad version and a bad ntime: SRI checks ntime first
    // (invalid-share), sharecheck the version first. Both reject it; the protocol gives no
    // order.
    Known {
        name: "check order (ntime vs version)",
        sri: &["invalid-share"],
        sharecheck: "invalid-non-rollable-version-bit",
        applies: |c, _| is(c, Kind::VersionAndNtime),
    },
    // The same on an extended job that allows no version rolling at all.
    Known {
        name: "check order (ntime vs no rolling)",
        sri: &["invalid-share"],
        sharecheck: "version-rolling-not-allowed",
        applies: |c, _| is(c, Kind::VersionAndNtime) && c.extended && !c.rolling,
    },
];

/// SRI's codec: frames a message, encodes it, and decodes the bytes again; returns the
/// decoded frame's payload.
struct Wire {
    enc: Encoder,
    dec: Decoder,
    frames: usize,
    bytes: usize,
}

impl Wire {
    fn roundtrip<T: Encodable + GetSize>(&mut self, msg: T, msg_type: u8, chan: bool) -> Vec<u8> {
        let frame = MessageFrame::from_message(msg, msg_type, 0, chan).expect("frame");
        let bytes: Vec<u8> = self.enc.encode(frame).expect("encode");
        self.frames += 1;
        self.bytes += bytes.len();
        let mut at = 0;
        loop {
            let n = self.dec.writable_len();
            self.dec.writable().copy_from_slice(&bytes[at..at + n]);
            at += n;
            if let Decoded::Frame(mut f) = self.dec.next_frame().expect("decode") {
                assert_eq!(at, bytes.len());
                assert_eq!(f.header().msg_type(), msg_type);
                assert_eq!(f.header().channel_msg(), chan);
                return f.payload().to_vec();
            }
        }
    }
}

enum Sri {
    Standard(StandardChannel),
    Extended(ExtendedChannel),
}

/// A job as a miner has it: the decoded message.
#[derive(Clone)]
enum JobMsg {
    Standard(NewMiningJobOwned),
    Extended(NewExtendedMiningJobOwned),
}

impl JobMsg {
    fn job_id(&self) -> u32 {
        match self {
            JobMsg::Standard(j) => j.job_id,
            JobMsg::Extended(j) => j.job_id,
        }
    }
    fn version(&self) -> u32 {
        match self {
            JobMsg::Standard(j) => j.version,
            JobMsg::Extended(j) => j.version,
        }
    }
    fn min_ntime(&self) -> Option<u32> {
        match self {
            JobMsg::Standard(j) => j.min_ntime.clone().into_inner(),
            JobMsg::Extended(j) => j.min_ntime.clone().into_inner(),
        }
    }
}

/// A job sharecheck was given: its tip (index) and min_ntime.
#[derive(Clone, Copy)]
struct Live {
    tip: usize,
    min_ntime: u32,
    version: u32,
}

/// sharecheck's job line for a job message under the prev hash `tip`.
fn job_line(
    job: &JobMsg,
    tip: &SetNewPrevHashOwned,
    min_ntime: u32,
    clean: bool,
    en: usize,
) -> Value {
    let prev_hash = tip.prev_hash.to_array();
    let mut j = job_fields(
        job.job_id(),
        &prev_hash,
        job.version(),
        tip.nbits,
        min_ntime,
        clean,
    );
    match job {
        JobMsg::Standard(m) => {
            let o = j.as_object_mut().unwrap();
            o.insert("merkle_root".into(), hex(m.merkle_root.as_bytes()).into());
            o.insert("version_mask".into(), format!("{ROLLING_MASK:08x}").into());
        }
        JobMsg::Extended(m) => add_extended_fields(&mut j, m, en),
    }
    json!({ "job": j })
}

/// SRI's verdict as a class: accepted, block or the error code; with the hash in
/// block-explorer order for accepted and block.
fn sri_class(r: Result<ShareValidationResult, ShareValidationError>) -> (String, Option<String>) {
    let explorer = |h: bitcoin::hashes::sha256d::Hash| {
        let mut b = h.to_byte_array();
        b.reverse();
        hex(&b)
    };
    match r {
        Ok(ShareValidationResult::Valid(h)) => ("accepted".into(), Some(explorer(h))),
        Ok(ShareValidationResult::BlockFound(h, _, _)) => ("block".into(), Some(explorer(h))),
        Err(
            ShareValidationError::Invalid(c)
            | ShareValidationError::Stale(c)
            | ShareValidationError::InvalidJobId(c)
            | ShareValidationError::DoesNotMeetTarget(c)
            | ShareValidationError::VersionRollingNotAllowed(c)
            | ShareValidationError::DuplicateShare(c)
            | ShareValidationError::BadExtranonceSize(c),
        ) => (c.to_string(), None),
        Err(e) => panic!("SRI's channel failed ({e:?}): the test set it up wrong"),
    }
}

/// A share as sent: what a duplicate repeats.
#[derive(Clone)]
struct Sent {
    job_id: u32,
    ntime: u32,
    nonce: u32,
    version: u32,
    extranonce: Vec<u8>,
    root: Kind,
    /// The tip it was sent under.
    tip: usize,
}

/// One SRI channel, the sharecheck input it becomes, and the cases judged on it.
struct World {
    channel: u32,
    sri: Sri,
    rolling: bool,
    /// Extended: the channel's extranonce prefix and rollable extranonce size.
    prefix: Vec<u8>,
    rollable: usize,
    target: Target,
    template_id: u64,
    height: u32,
    /// The decoded SetNewPrevHash of each tip, in order.
    tips: Vec<SetNewPrevHashOwned>,
    ahead: Vec<bool>,
    /// Future jobs not activated yet (template id, decoded job), and those that never were.
    pending: Vec<(u64, JobMsg)>,
    dropped: Vec<u32>,
    /// Job ids in activation order; the last is the active job.
    jobs: Vec<u32>,
    live: HashMap<u32, Live>,
    sent: Vec<Sent>,
    sequence: u32,
    lines: Vec<String>,
    cases: Vec<Case>,
}

impl World {
    fn new(
        channel: u32,
        extended: bool,
        rolling: bool,
        rng: &mut ChaCha8Rng,
        wire: &mut Wire,
    ) -> World {
        let total: u8 = rng.random_range(6..=16);
        let local: Vec<u8> = (0..rng.random_range(0..=3)).map(|_| rng.random()).collect();
        let mut alloc = ExtranonceAllocator::new(local, total, 256).unwrap();
        let max_target = Target::from_le_bytes([0xff; 32]);
        let tag = format!("sharecheck-{channel}");
        let (sri, prefix, rollable) = if extended {
            let rollable = alloc.rollable_extranonce_size();
            let p = alloc.allocate_extended(rollable as usize).unwrap();
            let prefix = p.as_bytes().to_vec();
            let c = ExtendedChannel::new_for_pool(
                channel,
                "u".into(),
                p,
                max_target,
                1.0,
                rolling,
                rollable as u16,
                100,
                100.0,
                tag,
                None,
            )
            .unwrap();
            assert_eq!(c.get_full_extranonce_size(), total as usize);
            (Sri::Extended(c), prefix, rollable as usize)
        } else {
            let p = alloc.allocate_standard().unwrap();
            let prefix = p.as_bytes().to_vec();
            let c = StandardChannel::new_for_pool(
                channel,
                "u".into(),
                p,
                max_target,
                1.0,
                100,
                100.0,
                tag,
                None,
            )
            .unwrap();
            (Sri::Standard(c), prefix, 0)
        };
        // The share target: above the network target (about 2^255), so that accepted,
        // block and low-difficulty all occur. SetTarget carries it little-endian.
        let mut be = [0u8; 32];
        rng.fill(&mut be[..]);
        be[0] = rng.random_range(0xa0..0xe0);
        let target = Target::from_be_bytes(be);
        let set = SetTargetOwned {
            channel_id: channel,
            maximum_target: target.to_le_bytes().into(),
        };
        let mut p = wire.roundtrip(set, mining_sv2::MESSAGE_TYPE_SET_TARGET, true);
        let set = binary_sv2::from_bytes::<SetTarget>(&mut p)
            .unwrap()
            .into_owned();
        let target = Target::from_le_bytes(set.maximum_target.to_array());
        let mut sri = sri;
        match &mut sri {
            Sri::Standard(c) => c.set_target(target).unwrap(),
            Sri::Extended(c) => c.set_target(target).unwrap(),
        }
        World {
            channel,
            sri,
            rolling,
            prefix,
            rollable,
            target,
            template_id: 0,
            height: 100 + channel * 1000,
            tips: Vec::new(),
            ahead: Vec::new(),
            pending: Vec::new(),
            dropped: Vec::new(),
            jobs: Vec::new(),
            live: HashMap::new(),
            sent: Vec::new(),
            sequence: 0,
            lines: Vec::new(),
            cases: Vec::new(),
        }
    }

    fn extended(&self) -> bool {
        matches!(self.sri, Sri::Extended(_))
    }

    fn full_extranonce(&self) -> usize {
        self.prefix.len() + self.rollable
    }

    /// A random template, as a Template Provider sends it.
    fn template(&mut self, future: bool, rng: &mut ChaCha8Rng) -> (NewTemplateOwned, Vec<TxOut>) {
        self.template_id += 1;
        let h = self.height;
        let mut outputs = vec![0u8; 8];
        outputs.extend([38, 0x6a, 36, 0xaa, 0x21, 0xa9, 0xed]);
        outputs.extend((0..32).map(|_| rng.random::<u8>()));
        let path: Vec<U256Owned> = (0..rng.random_range(0..4))
            .map(|_| rng.random::<[u8; 32]>().into())
            .collect();
        let mut version = 0x2000_0000 | rng.random_range(0..32u32);
        if rng.random_bool(0.25) {
            version |= rng.random::<u32>() & ROLLING_MASK;
        }
        let template = NewTemplateOwned {
            template_id: self.template_id,
            future_template: future,
            version,
            coinbase_tx_version: 2,
            coinbase_prefix: vec![3, h as u8, (h >> 8) as u8, (h >> 16) as u8]
                .try_into()
                .unwrap(),
            coinbase_tx_input_sequence: 0xffff_fffe,
            coinbase_tx_value_remaining: REWARD,
            coinbase_tx_outputs_count: 1,
            coinbase_tx_outputs: outputs.try_into().unwrap(),
            coinbase_tx_locktime: h,
            merkle_path: Seq0255Owned::new(path).unwrap(),
        };
        let mut script = vec![0, 20];
        script.extend((0..20).map(|_| rng.random::<u8>()));
        let reward = vec![TxOut {
            value: Amount::from_sat(REWARD),
            script_pubkey: ScriptBuf::from(script),
        }];
        (template, reward)
    }

    /// A job message of SRI's channel, through the codec.
    fn send_job(&self, job: JobMsg, wire: &mut Wire) -> JobMsg {
        match job {
            JobMsg::Standard(m) => {
                let mut p = wire.roundtrip(m, mining_sv2::MESSAGE_TYPE_NEW_MINING_JOB, true);
                JobMsg::Standard(
                    binary_sv2::from_bytes::<NewMiningJob>(&mut p)
                        .unwrap()
                        .into_owned(),
                )
            }
            JobMsg::Extended(m) => {
                let t = mining_sv2::MESSAGE_TYPE_NEW_EXTENDED_MINING_JOB;
                let mut p = wire.roundtrip(m, t, true);
                let m = binary_sv2::from_bytes::<NewExtendedMiningJob>(&mut p).unwrap();
                JobMsg::Extended(m.into_owned())
            }
        }
    }

    fn sri_job(&self, job_id: u32, future: bool) -> JobMsg {
        match &self.sri {
            Sri::Standard(c) => {
                let j = if future {
                    c.get_future_job(job_id)
                } else {
                    c.get_active_job()
                };
                JobMsg::Standard(j.unwrap().get_job_message().clone())
            }
            Sri::Extended(c) => {
                let j = if future {
                    c.get_future_job(job_id)
                } else {
                    c.get_active_job()
                };
                JobMsg::Extended(j.unwrap().get_job_message().clone())
            }
        }
    }

    /// A job under the current prev hash (NewMiningJob with min_ntime): sharecheck gets it
    /// at once, not clean.
    fn new_job(&mut self, rng: &mut ChaCha8Rng, wire: &mut Wire) {
        let (t, reward) = self.template(false, rng);
        match &mut self.sri {
            Sri::Standard(c) => c.on_new_template(t, reward).unwrap(),
            Sri::Extended(c) => c.on_new_template(t, reward).unwrap(),
        }
        let id = match &self.sri {
            Sri::Standard(c) => c.get_active_job().unwrap().get_job_id(),
            Sri::Extended(c) => c.get_active_job().unwrap().get_job_id(),
        };
        let job = self.send_job(self.sri_job(id, false), wire);
        let min_ntime = job
            .min_ntime()
            .expect("a job under the tip has its min_ntime");
        let tip = self.tips.last().unwrap();
        assert_eq!(min_ntime, tip.min_ntime);
        let line = job_line(&job, tip, min_ntime, false, self.full_extranonce());
        self.lines.push(line.to_string());
        let live = Live {
            tip: self.tips.len() - 1,
            min_ntime,
            version: job.version(),
        };
        self.live.insert(id, live);
        self.jobs.push(id);
    }

    /// A future job (NewMiningJob without min_ntime): a standard channel's goes to sharecheck
    /// as it comes (`"future": true`), to be activated by its SetNewPrevHash; an extended
    /// channel's (a coinbase job, which has no future form in sharecheck) only once the
    /// SetNewPrevHash activates it.
    fn future_job(&mut self, rng: &mut ChaCha8Rng, wire: &mut Wire) {
        let (t, reward) = self.template(true, rng);
        let tid = t.template_id;
        let id = match &mut self.sri {
            Sri::Standard(c) => {
                c.on_new_template(t, reward).unwrap();
                c.get_future_job_id_from_template_id(tid)
            }
            Sri::Extended(c) => {
                c.on_new_template(t, reward).unwrap();
                c.get_future_job_id_from_template_id(tid)
            }
        }
        .unwrap();
        let job = self.send_job(self.sri_job(id, true), wire);
        assert_eq!(job.min_ntime(), None);
        if let JobMsg::Standard(m) = &job {
            let line = json!({"job": {
                "job_id": job.job_id().to_string(),
                "future": true,
                "merkle_root": hex(m.merkle_root.as_bytes()),
                "version": format!("{:08x}", job.version()),
                "version_mask": format!("{ROLLING_MASK:08x}"),
            }});
            self.lines.push(line.to_string());
        }
        self.pending.push((tid, job));
    }

    /// A new prev hash activating one of the future jobs: every earlier job is stale.
    fn new_tip(&mut self, t0: u32, rng: &mut ChaCha8Rng, wire: &mut Wire) {
        if self.pending.is_empty() {
            self.future_job(rng, wire);
        }
        let (tid, job) = self.pending.remove(rng.random_range(0..self.pending.len()));
        self.dropped
            .extend(self.pending.drain(..).map(|(_, j)| j.job_id()));
        self.height += 1;
        // min_ntime from a fixed time in the past, so the headers (and so every verdict) do
        // not depend on when the test runs, and min_ntime + 7201 is far inside sharecheck's
        // wall-clock bound; or, for one tip in eight, 10 to 20 minutes ahead of the clock (a
        // pool clock ahead: FarFuture cases).
        let ahead = !self.tips.is_empty() && rng.random_bool(0.125);
        let min_ntime = if ahead {
            t0 + rng.random_range(600..1200)
        } else {
            BASE_NTIME + 600 * self.tips.len() as u32 + rng.random_range(0..600)
        };
        let prev_hash: [u8; 32] = rng.random();
        let network = Target::from_compact(CompactTarget::from_consensus(NBITS));
        let tdp = TdpSetNewPrevHash {
            template_id: tid,
            prev_hash: prev_hash.into(),
            header_timestamp: min_ntime,
            n_bits: NBITS,
            target: network.to_le_bytes().into(),
        };
        match &mut self.sri {
            Sri::Standard(c) => c.on_set_new_prev_hash(tdp).unwrap(),
            Sri::Extended(c) => c.on_set_new_prev_hash(tdp).unwrap(),
        }
        // The pool's SetNewPrevHash for the channel (SRI's pool builds it from the template
        // provider's), through the codec.
        let snph = SetNewPrevHashOwned {
            channel_id: self.channel,
            job_id: job.job_id(),
            prev_hash: prev_hash.into(),
            min_ntime,
            nbits: NBITS,
        };
        let t = mining_sv2::MESSAGE_TYPE_MINING_SET_NEW_PREV_HASH;
        let mut p = wire.roundtrip(snph, t, true);
        let snph = binary_sv2::from_bytes::<SetNewPrevHash>(&mut p)
            .unwrap()
            .into_owned();
        let active = self.sri_job(job.job_id(), false);
        assert_eq!(active.job_id(), job.job_id());
        assert_eq!(active.min_ntime(), Some(min_ntime));
        let line = match &job {
            // The activation of the future job sharecheck holds.
            JobMsg::Standard(_) => json!({"job": {
                "job_id": job.job_id().to_string(),
                "activate": true,
                "prevhash": stratum_prevhash(&snph.prev_hash.to_array()),
                "nbits": format!("{:08x}", snph.nbits),
                "ntime": format!("{:08x}", snph.min_ntime),
            }}),
            JobMsg::Extended(_) => {
                job_line(&job, &snph, snph.min_ntime, true, self.full_extranonce())
            }
        };
        self.lines.push(line.to_string());
        self.tips.push(snph);
        self.ahead.push(ahead);
        let live = Live {
            tip: self.tips.len() - 1,
            min_ntime,
            version: job.version(),
        };
        self.live.insert(job.job_id(), live);
        self.jobs.push(job.job_id());
    }

    /// A random share of kind `kind` (or of a simpler kind where this one has no job to use).
    fn share(&mut self, mut kind: Kind, id: u64, rng: &mut ChaCha8Rng, wire: &mut Wire) -> Case {
        let tip = self.tips.len() - 1;
        let active = *self.jobs.last().unwrap();
        if self.ahead[tip]
            && !matches!(kind, Kind::Duplicate | Kind::StaleJob | Kind::StaleOlderJob)
        {
            kind = Kind::FarFuture;
        }
        let by_age = |w: &World, pick: &dyn Fn(usize) -> bool| -> Vec<u32> {
            w.jobs
                .iter()
                .copied()
                .filter(|j| *j != active && pick(tip - w.live[j].tip))
                .collect()
        };
        let pool = match kind {
            Kind::PastJob => by_age(self, &|a| a == 0),
            Kind::StaleJob => by_age(self, &|a| a == 1),
            Kind::StaleOlderJob => by_age(self, &|a| a >= 2),
            Kind::FutureJob => self
                .pending
                .iter()
                .map(|(_, j)| j.job_id())
                .chain(self.dropped.iter().copied())
                .collect(),
            // Any share sent before will do (chosen below).
            Kind::Duplicate if self.sent.is_empty() => Vec::new(),
            _ => vec![active],
        };
        if pool.is_empty() {
            kind = if self.ahead[tip] {
                Kind::FarFuture
            } else {
                Kind::Random
            };
        }
        let (job_id, mut sent) = if kind == Kind::Duplicate {
            // One of the last 40 shares, mostly one sent under the current tip.
            let recent = &self.sent[self.sent.len().saturating_sub(40)..];
            let this_tip: Vec<&Sent> = recent.iter().filter(|s| s.tip == tip).collect();
            let s = if !this_tip.is_empty() && rng.random_bool(0.8) {
                this_tip[rng.random_range(0..this_tip.len())].clone()
            } else {
                recent[rng.random_range(0..recent.len())].clone()
            };
            (s.job_id, Some(s))
        } else if kind == Kind::UnknownJob {
            (1_000_000 + rng.random_range(0..1000), None)
        } else if matches!(kind, Kind::Random | Kind::FarFuture) || pool.is_empty() {
            (active, None)
        } else {
            (pool[rng.random_range(0..pool.len())], None)
        };
        // Future and unknown jobs have no min_ntime: use the active job's.
        let live = self
            .live
            .get(&job_id)
            .copied()
            .unwrap_or(self.live[&active]);
        let m = live.min_ntime;
        let extended = self.extended();
        let roll = |rng: &mut ChaCha8Rng| {
            if extended && !self.rolling {
                0
            } else {
                rng.random::<u32>() & ROLLING_MASK
            }
        };
        let s = match sent.take() {
            Some(s) => s,
            None => {
                let mut s = Sent {
                    job_id,
                    ntime: m + rng.random_range(0..=7200),
                    nonce: rng.random(),
                    version: live.version ^ roll(rng),
                    extranonce: (0..self.rollable).map(|_| rng.random()).collect(),
                    root: kind,
                    tip,
                };
                match kind {
                    Kind::NtimeMinMinus1 => s.ntime = m - 1,
                    Kind::NtimeMin => s.ntime = m,
                    Kind::NtimeMax => s.ntime = m + 7200,
                    Kind::NtimeMaxPlus1 => s.ntime = m + 7201,
                    Kind::FarFuture => s.ntime = m + rng.random_range(5000..=7200),
                    Kind::VersionInMask => {
                        s.version = live.version ^ (rng.random_range(1..=ROLLING_MASK >> 5) << 5)
                    }
                    Kind::VersionOutMask | Kind::VersionAndNtime => {
                        let bit = [0, 1, 2, 3, 4, 29, 30, 31][rng.random_range(0..8)];
                        s.version ^= 1 << bit;
                        if kind == Kind::VersionAndNtime {
                            s.ntime = if rng.random_bool(0.5) {
                                m - 1
                            } else {
                                m + 7201
                            };
                        }
                    }
                    Kind::ExtranonceShort => {
                        s.extranonce.pop();
                    }
                    Kind::ExtranonceLong => s.extranonce.push(rng.random()),
                    _ => {}
                }
                s
            }
        };
        self.sent.push(s.clone());
        self.sequence += 1;
        let job_age = self.live.get(&s.job_id).map(|l| tip - l.tip);
        // SRI's side: the SubmitShares message through the codec, then validate_share.
        let target = hex(&self.target.to_be_bytes());
        let (sri, line) = match &mut self.sri {
            Sri::Standard(c) => {
                let m = SubmitSharesStandard {
                    channel_id: self.channel,
                    sequence_number: self.sequence,
                    job_id: s.job_id,
                    nonce: s.nonce,
                    ntime: s.ntime,
                    version: s.version,
                };
                let t = mining_sv2::MESSAGE_TYPE_SUBMIT_SHARES_STANDARD;
                let mut p = wire.roundtrip(m, t, true);
                let m: SubmitSharesStandard = binary_sv2::from_bytes(&mut p).unwrap();
                let line = json!({"share": {
                    "id": id, "kind": "sv2_standard", "channel_id": m.channel_id,
                    "sequence_number": m.sequence_number, "job_id": m.job_id,
                    "ntime": m.ntime, "nonce": m.nonce, "version": m.version, "target": target,
                }});
                (sri_class(c.validate_share(m)), line)
            }
            Sri::Extended(c) => {
                let m = SubmitSharesExtendedOwned {
                    channel_id: self.channel,
                    sequence_number: self.sequence,
                    job_id: s.job_id,
                    nonce: s.nonce,
                    ntime: s.ntime,
                    version: s.version,
                    extranonce: s.extranonce.clone().try_into().unwrap(),
                };
                let t = mining_sv2::MESSAGE_TYPE_SUBMIT_SHARES_EXTENDED;
                let mut p = wire.roundtrip(m, t, true);
                let m = binary_sv2::from_bytes::<SubmitSharesExtended>(&mut p)
                    .unwrap()
                    .into_owned();
                let line = json!({"share": {
                    "id": id, "kind": "sv2_extended", "channel_id": m.channel_id,
                    "sequence_number": m.sequence_number, "job_id": m.job_id,
                    "extranonce_prefix": hex(&self.prefix),
                    "extranonce": hex(m.extranonce.as_bytes()),
                    "ntime": m.ntime, "nonce": m.nonce, "version": m.version, "target": target,
                }});
                (sri_class(c.validate_share(m)), line)
            }
        };
        self.lines.push(line.to_string());
        Case {
            id,
            channel: self.channel,
            extended,
            rolling: self.rolling,
            kind,
            root: s.root,
            job_age,
            ntime: s.ntime,
            sri: sri.0,
            sri_hash: sri.1,
            msg: line.to_string(),
        }
    }
}

/// A random case kind; the extranonce kinds only on extended channels.
fn pick_kind(extended: bool, rng: &mut ChaCha8Rng) -> Kind {
    use Kind::*;
    let kinds: &[(Kind, u32)] = &[
        (Random, 30),
        (NtimeMinMinus1, 5),
        (NtimeMin, 5),
        (NtimeMax, 5),
        (NtimeMaxPlus1, 5),
        (VersionInMask, 6),
        (VersionOutMask, 6),
        (VersionAndNtime, 3),
        (ExtranonceShort, 5),
        (ExtranonceLong, 5),
        (Duplicate, 10),
        (PastJob, 6),
        (StaleJob, 5),
        (StaleOlderJob, 3),
        (FutureJob, 4),
        (UnknownJob, 3),
    ];
    let kinds: Vec<(Kind, u32)> = kinds
        .iter()
        .copied()
        .filter(|(k, _)| extended || !matches!(k, ExtranonceShort | ExtranonceLong))
        .collect();
    let total: u32 = kinds.iter().map(|k| k.1).sum();
    let mut r = rng.random_range(0..total);
    for (k, w) in kinds {
        if r < w {
            return k;
        }
        r -= w;
    }
    unreachable!()
}

#[derive(Default)]
struct Row {
    cases: usize,
    agree: usize,
    known: BTreeMap<&'static str, usize>,
    unexplained: usize,
}

#[test]
fn sharecheck_agrees_with_sri_channels() {
    let started = std::time::Instant::now();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    assert_eq!(ROLLING_MASK, channels_sv2::VERSION_ROLLING_MASK);
    let mut rng = ChaCha8Rng::seed_from_u64(0x5332_5352_4932);
    let mut wire = Wire {
        enc: Encoder::new(),
        dec: Decoder::new(),
        frames: 0,
        bytes: 0,
    };
    let mut worlds = Vec::new();
    let mut id = 0u64;
    for n in 0..STANDARD_CHANNELS + EXTENDED_CHANNELS {
        let extended = n >= STANDARD_CHANNELS;
        let rolling = !extended || n % 2 == 0;
        let mut w = World::new(n + 1, extended, rolling, &mut rng, &mut wire);
        w.future_job(&mut rng, &mut wire);
        w.new_tip(t0, &mut rng, &mut wire);
        let mut jobs_in_tip = 1;
        for _ in 0..STEPS {
            let r = rng.random_range(0..100);
            // A job ahead of the clock does not last long (FarFuture cases stay a few).
            let ahead = *w.ahead.last().unwrap();
            if ahead && r < 25 {
                w.new_tip(t0, &mut rng, &mut wire);
                jobs_in_tip = 1;
            } else if r < 4 && jobs_in_tip < 8 {
                w.new_job(&mut rng, &mut wire);
                jobs_in_tip += 1;
            } else if r < 7 {
                w.future_job(&mut rng, &mut wire);
            } else if r < 11 {
                w.new_tip(t0, &mut rng, &mut wire);
                jobs_in_tip = 1;
            } else {
                let kind = pick_kind(extended, &mut rng);
                id += 1;
                let c = w.share(kind, id, &mut rng, &mut wire);
                w.cases.push(c);
            }
        }
        worlds.push(w);
    }

    // sharecheck's side: each channel's lines through `verify`, as one input.
    let backend = sharecheck::backend::open("cpu:scalar", 1).unwrap();
    let mut rows: BTreeMap<Kind, Row> = BTreeMap::new();
    let mut classes: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for w in &worlds {
        let input = w.lines.join("\n");
        let mut out = Vec::new();
        let mut bad_jobs = Vec::new();
        sharecheck::verify::run(
            input.as_bytes(),
            &mut out,
            backend.as_ref(),
            sharecheck::model::ValidationConfig::default(),
            64,
            |line, e| bad_jobs.push(format!("line {line}: {e}")),
        )
        .expect("verify runs");
        assert!(bad_jobs.is_empty(), "sharecheck refused jobs: {bad_jobs:?}");
        let verdicts: HashMap<u64, Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                (v["id"].as_u64().unwrap(), v)
            })
            .collect();
        assert_eq!(verdicts.len(), w.cases.len());
        for c in &w.cases {
            let v = &verdicts[&c.id];
            let status = v["status"].as_str().unwrap();
            let sc = match status {
                "accepted" | "block" => status.to_string(),
                _ => v["sv2_error"]
                    .as_str()
                    .expect("a rejection has its sv2_error")
                    .into(),
            };
            *classes.entry((c.sri.clone(), sc.clone())).or_default() += 1;
            let row = rows.entry(c.kind).or_default();
            row.cases += 1;
            if sc == c.sri {
                let hash = v["hash"].as_str().map(str::to_string);
                if c.sri_hash.is_some() && hash != c.sri_hash {
                    row.unexplained += 1;
                    failures.push(format!(
                        "{:?} on channel {}: both {sc}, but SRI's hash {:?} is not sharecheck's {hash:?}\n  share {}",
                        c.kind, c.channel, c.sri_hash, c.msg
                    ));
                } else {
                    row.agree += 1;
                }
                continue;
            }
            let known = KNOWN.iter().find(|k| {
                k.sri.contains(&c.sri.as_str()) && k.sharecheck == sc && (k.applies)(c, t0)
            });
            match known {
                Some(k) => *row.known.entry(k.name).or_default() += 1,
                None => {
                    row.unexplained += 1;
                    failures.push(format!(
                        "{:?} (first sent as {:?}) on channel {} ({}{}), job {:?} tips back: SRI {}, sharecheck {sc} ({v})\n  share {}",
                        c.kind,
                        c.root,
                        c.channel,
                        if c.extended { "extended" } else { "standard" },
                        if c.rolling { "" } else { ", no version rolling" },
                        c.job_age,
                        c.sri,
                        c.msg
                    ));
                }
            }
        }
    }

    eprintln!(
        "{:<16} {:>6} {:>6} {:>6} {:>6}  known differences",
        "case", "cases", "agree", "known", "other"
    );
    let mut total = Row::default();
    for (kind, r) in &rows {
        let known: usize = r.known.values().sum();
        let names: Vec<String> = r.known.iter().map(|(n, c)| format!("{n}: {c}")).collect();
        eprintln!(
            "{:<16} {:>6} {:>6} {:>6} {:>6}  {}",
            format!("{kind:?}"),
            r.cases,
            r.agree,
            known,
            r.unexplained,
            names.join(", ")
        );
        total.cases += r.cases;
        total.agree += r.agree;
        total.unexplained += r.unexplained;
        for (n, c) in &r.known {
            *total.known.entry(n).or_default() += c;
        }
    }
    let known: usize = total.known.values().sum();
    eprintln!(
        "{:<16} {:>6} {:>6} {:>6} {:>6}",
        "all", total.cases, total.agree, known, total.unexplained
    );
    eprintln!("verdicts (SRI -> sharecheck: count):");
    for ((s, c), n) in &classes {
        eprintln!("  {s} -> {c}: {n}");
    }
    eprintln!(
        "{} SV2 frames ({} bytes) through SRI's codec; {:.1} s",
        wire.frames,
        wire.bytes,
        started.elapsed().as_secs_f64()
    );
    for f in failures.iter().take(20) {
        eprintln!("{f}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from SRI beyond the known differences (first ones above)",
        failures.len(),
        total.cases
    );
    // Every outcome the comparison is about occurred.
    for class in [
        "accepted",
        "block",
        "difficulty-too-low",
        "duplicate-share",
        "stale-share",
    ] {
        assert!(
            classes.keys().any(|(s, c)| s == class && c == class),
            "no case where both said {class}"
        );
    }
}
