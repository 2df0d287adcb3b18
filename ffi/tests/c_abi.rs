//! The C ABI used from C: ffi/tests/c/abi_test.c, compiled against include/sharecheck.h and
//! linked with the shared library cargo built for this test, makes shares, jobs and decodes
//! verdicts; what it writes is compared with sharecheck's own encoders, decoders and
//! `sharecheck verify`.
//!
//! The program links the cdylib rather than the staticlib: the shared library needs nothing
//! but libc, while the static one needs the native libraries of every dependency of
//! sharecheck (librdkafka's among them), a list that changes with them.

use sharecheck::model::{Batch, RecordError, Status, ValidationConfig, Validator, Verdict};
use sharecheck::wire::binary::{self, ShareRecord};
use sharecheck::wire::hex;
use sharecheck::wire::jsonl::{parse_line, verdict_json, Line};
use sharecheck_ffi as ffi;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The shared library built with this test. The test binary lives in target/<profile>/deps,
/// and so does the library; the copy cargo also puts one level up is refreshed only by
/// `cargo build`, not by `cargo test`, so it may be stale.
fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let name = format!(
        "{}sharecheck_ffi{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let lib = exe.parent().expect("deps dir").join(&name);
    assert!(lib.is_file(), "{} not found", lib.display());
    lib
}

/// Links `cmd`'s program with the library by its path (recorded as the path itself, there
/// being no soname) and an rpath, so that it runs without any search path set.
fn link_library(cmd: &mut Command) -> &mut Command {
    let lib = library();
    let dir = lib.parent().unwrap().display().to_string();
    cmd.arg(&lib).arg(format!("-Wl,-rpath,{dir}"))
}

/// Runs a program linked by [`link_library`]. Cargo's LD_LIBRARY_PATH, which the loader
/// searches before an rpath, names the stale copy's directory before deps/, so the library's
/// own directory goes first.
fn run_linked(program: &Path) -> Command {
    let dir = library().parent().unwrap().to_path_buf();
    let mut paths = vec![dir];
    if let Some(p) = std::env::var_os("LD_LIBRARY_PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    let mut cmd = Command::new(program);
    cmd.env("LD_LIBRARY_PATH", std::env::join_paths(paths).unwrap());
    cmd
}

fn compiler(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("c_abi")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compiles abi_test.c once for all tests, as strictly as C99 allows.
fn program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let out = scratch("build").join("abi_test");
        let cc = compiler("CC", "cc");
        let mut cmd = Command::new(&cc);
        cmd.args([
            "-std=c99",
            "-pedantic",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-O1",
        ])
        .arg(format!("-I{ROOT}/include"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/c/abi_test.c"))
        .arg("-o")
        .arg(&out);
        let status = link_library(&mut cmd)
            .arg("-lm")
            .status()
            .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?}: {e}"));
        assert!(status.success(), "abi_test.c did not compile");
        out
    })
}

/// Runs the C program; its stdout, after checking that it succeeded.
fn run_c(args: &[&str]) -> String {
    let out = run_linked(program()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "abi_test {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn assert_lines(got: &str, want: &[String]) {
    let got: Vec<&str> = got.lines().collect();
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "line {}", i + 1);
    }
    assert_eq!(got.len(), want.len(), "line count");
}

/// The input of abi_test.c's `encode`, as JSON Lines for `sharecheck verify`: the genesis job
/// and shares of docs/wire-format.md's worked example, then a clean job and shares on both.
fn input_jsonl() -> String {
    let (genesis_job, genesis_share) = sharecheck::wire::example::genesis_lines();
    let share = |id: u64, job: &str, ntime: &str, nonce: &str, vb: Option<&str>, d: &str| {
        let vb = vb.map_or(String::new(), |v| format!(r#", "version_bits": "{v}""#));
        format!(
            r#"{{"share": {{"id": {id}, "job_id": "{job}", "extranonce1": "45546865", "extranonce2": "2054696d", "ntime": "{ntime}", "nonce": "{nonce}"{vb}, "difficulty": {d}}}}}"#
        )
    };
    let header = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
    let target = format!("00000000ffff{}", "0".repeat(52));
    let prevhash: Vec<u8> = (0..32).collect();
    let coinb1: Vec<u8> = (0..60u32).map(|i| (i * 7) as u8).collect();
    let coinb2: Vec<u8> = (0..70u32).map(|i| (i * 13 + 5) as u8).collect();
    let branch2: Vec<u8> = (0..32).collect();
    let job_6b = format!(
        r#"{{"job": {{"job_id": "6b", "prevhash": "{}", "coinb1": "{}", "coinb2": "{}", "merkle_branch": ["{}", "{}"], "version": "20000000", "nbits": "1d00ffff", "ntime": "66a0e2b1", "clean_jobs": true, "version_mask": "00ffe000"}}}}"#,
        hex::encode(&prevhash),
        hex::encode(&coinb1),
        hex::encode(&coinb2),
        "11".repeat(32),
        hex::encode(&branch2),
    );
    let share_6b = |id: u64, nonce: &str, d: &str| {
        format!(
            r#"{{"share": {{"id": {id}, "job_id": "6b", "extranonce1": "08000002", "extranonce2": "0000000a", "ntime": "66a0e2b1", "nonce": "{nonce}", "version_bits": "00a0e000", "difficulty": {d}}}}}"#
        )
    };
    let mut lines = vec![
        genesis_job,
        genesis_share,
        share(2, "6a", "495fab29", "7c2bac1d", None, "1"),
        share(3, "zz", "495fab29", "7c2bac1d", None, "1"),
        share(4, "6a", "495fab29", "7c2bac1d", Some("00002000"), "1"),
        share(5, "6a", "495fab29", "7c2bac1d", Some("e0000000"), "1"),
        share(6, "6a", "495fab28", "7c2bac1d", None, "1"),
        share(7, "6a", "495fab29", "00000000", None, "1e-12"),
        format!(r#"{{"share": {{"id": 8, "header": "{header}", "target": "{target}"}}}}"#),
        r#"{"share": {"id": 9, "job_id": "6a", "extranonce1": "", "extranonce2": "455468652054696d", "ntime": "495fab29", "nonce": "7c2bac1d", "difficulty": 1}}"#.to_string(),
        job_6b,
        share(10, "6a", "495fab29", "7c2bac1d", None, "1"),
        share_6b(11, "1c2d3e4f", "1e-12"),
        share_6b(12, "1c2d3e50", "65536"),
    ];
    lines.extend(sv2_lines(&coinb1, &coinb2, &branch2));
    lines.join("\n") + "\n"
}

/// abi_test.c's SV2 part as JSON Lines: standard job 17 with SV2 standard shares and header
/// shares of its work, then extended job 18 (job 6b's coinbase and path) with SV2 extended
/// shares.
fn sv2_lines(coinb1: &[u8], coinb2: &[u8], branch2: &[u8]) -> Vec<String> {
    let prevhash: Vec<u8> = (0x20..0x40).collect();
    // JSON jobs carry the prevhash as mining.notify does, each 4-byte word swapped.
    let notify_prevhash = sharecheck::model::job::swap_words(&prevhash.clone().try_into().unwrap());
    let root: Vec<u8> = (0..32u8).map(|i| 0x5a ^ i).collect();
    let standard = |id: u64, job: &str, version: u32, nonce: u32, d: &str| {
        format!(
            r#"{{"share": {{"id": {id}, "kind": "sv2_standard", "job_id": "{job}", "ntime": 1721819825, "nonce": {nonce}, "version": {version}, "difficulty": {d}}}}}"#
        )
    };
    let header = |id: u64, nonce: u32| {
        let mut h = Vec::new();
        h.extend(0x2000_0000u32.to_le_bytes());
        h.extend(&prevhash);
        h.extend(&root);
        h.extend(0x66a0_e2b1u32.to_le_bytes());
        h.extend(0x1d00_ffffu32.to_le_bytes());
        h.extend(nonce.to_le_bytes());
        format!(
            r#"{{"share": {{"id": {id}, "header": "{}", "difficulty": 1e-12}}}}"#,
            hex::encode(&h)
        )
    };
    let extended = |id: u64, extranonce: &str| {
        format!(
            r#"{{"share": {{"id": {id}, "kind": "sv2_extended", "job_id": "18", "extranonce_prefix": "0102030405060708", "extranonce": "{extranonce}", "ntime": 1721819825, "nonce": 5, "version": 536870912, "difficulty": 1e-12}}}}"#
        )
    };
    vec![
        format!(
            r#"{{"job": {{"job_id": "17", "prevhash": "{}", "merkle_root": "{}", "version": "20000000", "nbits": "1d00ffff", "ntime": "66a0e2b1", "clean_jobs": true, "version_mask": "1fffe000"}}}}"#,
            hex::encode(&notify_prevhash),
            hex::encode(&root)
        ),
        standard(13, "17", 0x2000_0000, 1, "1e-12"),
        standard(14, "17", 0x2000_0000, 1, "1e-12"),
        standard(15, "99", 0x2000_0000, 1, "1e-12"),
        standard(16, "17", 0xe000_0000, 1, "1e-12"),
        standard(17, "17", 0x2000_0000, 2, "65536"),
        header(18, 1),
        header(19, 3),
        format!(
            r#"{{"job": {{"job_id": "18", "prevhash": "{}", "coinb1": "{}", "coinb2": "{}", "merkle_branch": ["{}", "{}"], "version": "20000000", "nbits": "1d00ffff", "ntime": "66a0e2b1", "clean_jobs": false, "version_mask": "1fffffe0", "extranonce_size": 16}}}}"#,
            hex::encode(&notify_prevhash),
            hex::encode(coinb1),
            hex::encode(coinb2),
            "11".repeat(32),
            hex::encode(branch2),
        ),
        extended(20, "0909090909090909"),
        extended(21, "09090909090909"),
        extended(22, "0909090909090909"),
        standard(23, "17", 0x2000_2000, 9, "1e-12"),
        // Job 19: a future job, a share before its activation, the activation on a new prev
        // hash, a share on it and one on job 17 of the old prev hash.
        format!(
            r#"{{"job": {{"job_id": "19", "future": true, "merkle_root": "{}", "version": "20000000", "clean_jobs": false, "version_mask": "1fffe000"}}}}"#,
            hex::encode(&root)
        ),
        format!(
            r#"{{"share": {{"id": 24, "kind": "sv2_standard", "job_id": "19", "ntime": 1721819826, "nonce": 1, "version": 536870912, "difficulty": 1e-12}}}}"#
        ),
        format!(
            r#"{{"job": {{"job_id": "19", "activate": true, "prevhash": "{}", "nbits": "1d00ffff", "ntime": "66a0e2b2"}}}}"#,
            hex::encode(&sharecheck::model::job::swap_words(&std::array::from_fn(
                |i| 0x40 + i as u8
            )))
        ),
        format!(
            r#"{{"share": {{"id": 25, "kind": "sv2_standard", "job_id": "19", "ntime": 1721819826, "nonce": 1, "version": 536870912, "difficulty": 1e-12}}}}"#
        ),
        standard(26, "17", 0x2000_0000, 11, "1e-12"),
    ]
}

/// The job messages and share batches abi_test.c's `encode` writes, in order.
const BATCHES: [(&str, &str); 6] = [
    ("job1.bin", "shares1.bin"),
    ("job2.bin", "shares2.bin"),
    ("job3.bin", "shares3.bin"),
    ("job4.bin", "shares4.bin"),
    ("job5.bin", "shares5.bin"),
    ("job6.bin", "shares6.bin"),
];

/// What abi_test.c's `encode` wrote, in order: job messages and share batches.
enum Message {
    Job(sharecheck::model::Job),
    Shares(Vec<ShareRecord>),
}

fn c_messages() -> (Vec<Message>, String) {
    let dir = scratch("encode");
    let stdout = run_c(&["encode", dir.to_str().unwrap()]);
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let mut msgs = Vec::new();
    for (job, shares) in BATCHES {
        msgs.push(Message::Job(binary::decode_job(&read(job)).unwrap()));
        let recs = binary::decode_shares(&read(shares)).unwrap().to_vec();
        msgs.push(Message::Shares(recs));
    }
    // The genesis job and share are docs/wire-format.md's worked example, byte for byte.
    let example = sharecheck::wire::example::messages();
    assert_eq!(read("job1.bin"), example[0].1, "job message");
    let first = binary::decode_shares(&read("shares1.bin")).unwrap()[0];
    assert_eq!(binary::encode_shares(&[first]), example[1].1, "share batch");
    (msgs, stdout)
}

/// The verdicts of the messages through the validator, as a node judges them.
fn validate(msgs: &[Message]) -> Vec<Verdict> {
    let mut v = Validator::new(ValidationConfig::default());
    let mut future = sharecheck::model::future::FutureJobs::new(16);
    let mut out = Vec::new();
    for m in msgs {
        match m {
            Message::Job(job) => {
                if let Some(job) = future.resolve(job.clone()).expect("a valid job message") {
                    v.add_job(job).expect("a valid job");
                }
            }
            Message::Shares(recs) => {
                let mut batch = Batch::new();
                for r in recs {
                    v.check(r, &mut batch);
                }
                let hashes: Vec<_> = batch
                    .tasks
                    .iter()
                    .map(|t| sharecheck::model::validate::reference_hash(&batch.jobs, t))
                    .collect();
                out.extend(batch.finish(&hashes));
            }
        }
    }
    out
}

/// `sharecheck verify` on JSON Lines, as src/cli/verify.rs runs it with the default config.
fn sharecheck_verify(input: &str) -> Vec<String> {
    let cfg = sharecheck::config::Config::default();
    let backend =
        sharecheck::backend::open_with(&sharecheck::backend::Options::from_config(&cfg.backend))
            .unwrap();
    let mut out = Vec::new();
    let summary = sharecheck::verify::run(
        input.as_bytes(),
        &mut out,
        backend.as_ref(),
        cfg.validation.clone(),
        cfg.backend.batch.max_shares,
        |n, e| panic!("line {n}: job skipped: {e}"),
    )
    .unwrap();
    assert_eq!(summary.jobs, BATCHES.len() as u64);
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn shares_made_in_c_get_the_verdicts_of_sharecheck_verify() {
    let (msgs, keys) = c_messages();
    let input = input_jsonl();

    // The C messages hold the records and jobs the JSON lines say, field for field.
    let mut from_c = msgs.iter().flat_map(|m| match m {
        Message::Job(j) => vec![Line::Job(Ok(j.clone()))],
        Message::Shares(r) => r.iter().map(|r| Line::Share(Ok(*r))).collect(),
    });
    for (n, line) in input.lines().enumerate() {
        let got = from_c
            .next()
            .unwrap_or_else(|| panic!("C wrote nothing for line {}", n + 1));
        match (parse_line(line), got) {
            (Line::Job(Ok(want)), Line::Job(Ok(job))) => assert_eq!(job, want, "line {}", n + 1),
            (Line::Share(Ok(want)), Line::Share(Ok(rec))) => {
                assert_eq!(rec, want, "line {}", n + 1)
            }
            _ => panic!("line {}: C wrote something else", n + 1),
        }
    }
    assert!(from_c.next().is_none(), "C wrote more than the input has");

    let verdicts = validate(&msgs);
    let statuses: Vec<Status> = verdicts.iter().map(|v| v.status).collect();
    use Status::*;
    assert_eq!(
        statuses,
        [
            Block,
            Duplicate,
            UnknownJob,
            LowDifficulty,
            BadVersion,
            BadNtime,
            Accepted,
            // The genesis header as a header share: no standard job states its work, so it
            // proves nothing about the pool's (it is a block only to `verify --audit-headers`).
            UnknownJob,
            Block,
            Stale,
            Accepted,
            LowDifficulty,
            // SV2 standard job 17: standard shares, then header shares of its work (the
            // first is share 13's proof of work again).
            Accepted,
            Duplicate,
            UnknownJob,
            BadVersion,
            LowDifficulty,
            Duplicate,
            Accepted,
            // SV2 extended job 18, then job 17 again.
            Accepted,
            Malformed,
            Duplicate,
            Accepted,
            // Future job 19: unknown until activated; then job 17's prev hash is old.
            UnknownJob,
            Accepted,
            Stale,
        ]
    );
    let binary: Vec<String> = verdicts.iter().map(verdict_json).collect();
    assert_lines(&sharecheck_verify(&input).join("\n"), &binary);

    // Each share's key is the one the node's producers use.
    let want_keys: Vec<String> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Shares(r) => Some(r),
            Message::Job(_) => None,
        })
        .zip(BATCHES.map(|b| b.1))
        .flat_map(|(recs, name)| {
            recs.iter().map(move |r| {
                let key = sharecheck::kafka::send::share_key(r);
                format!("key {name} {}", hex::encode(&key))
            })
        })
        .collect();
    assert_lines(&keys, &want_keys);
}

/// abi_test.c's line for a verdict, from sharecheck's own decoding of the batch.
fn verdict_line(v: &Verdict) -> String {
    let (code, arg) = match &v.error {
        Some(sharecheck::model::Malformed::Record(e)) => (e.code(), e.arg()),
        _ => (0, 0),
    };
    format!(
        "id={} has_id={} status={}({}) error={code}/{arg} difficulty={:016x} hash={} header={} \
         sv2_error={}",
        v.id.unwrap_or(0),
        v.id.is_some() as u8,
        v.status as u8,
        v.status.as_str(),
        v.difficulty.unwrap_or(0.0).to_bits(),
        v.hash.map_or("-".into(), |h| hex::encode(&h)),
        v.header
            .as_ref()
            .map_or("-".into(), |h| hex::encode(&h[..])),
        v.sv2_error().unwrap_or("-"),
    )
}

#[test]
fn verdict_batches_decode_in_c_as_in_sharecheck() {
    let (msgs, _) = c_messages();
    let mut verdicts = validate(&msgs);
    verdicts.push(Verdict::malformed(
        Some(u64::MAX),
        RecordError::Extranonce2Length(17).into(),
    ));
    verdicts.push(Verdict::malformed(None, RecordError::UnknownKind(9).into()));
    let compact: Vec<Verdict> = verdicts
        .iter()
        .filter(|v| v.header.is_none())
        .cloned()
        .collect();
    let dir = scratch("decode");
    for (name, vs, record) in [("full", &verdicts, 136), ("compact", &compact, 56)] {
        let msg = binary::encode_verdicts(vs);
        assert_eq!(msg.len(), 16 + record * vs.len(), "{name} records");
        let path = dir.join(format!("{name}.bin"));
        std::fs::write(&path, &msg).unwrap();
        let decoded = binary::decode_verdicts(&msg).unwrap();
        let mut want = vec![format!("count {}", decoded.len())];
        want.extend(decoded.iter().map(verdict_line));
        assert_lines(&run_c(&["decode", path.to_str().unwrap()]), &want);
    }
    let empty = dir.join("empty.bin");
    std::fs::write(&empty, binary::encode_verdicts(&[])).unwrap();
    assert_lines(
        &run_c(&["decode", empty.to_str().unwrap()]),
        &["count 0".into()],
    );
}

#[test]
fn error_paths_return_their_codes() {
    use ffi::*;
    let strerror = |c| {
        let e = ERRORS.iter().find(|e| e.0 == c).unwrap();
        e.2.to_str().unwrap().to_string()
    };
    let want = [
        format!("share_job_id_33 {SHARECHECK_ERR_JOB_ID_LENGTH}"),
        format!("share_job_id_0 {SHARECHECK_ERR_JOB_ID_LENGTH}"),
        format!("share_job_id_32 {SHARECHECK_OK}"),
        format!("share_extranonce1_17 {SHARECHECK_ERR_EXTRANONCE1_LENGTH}"),
        format!("share_extranonce2_0 {SHARECHECK_ERR_EXTRANONCE2_LENGTH}"),
        format!("share_extranonce2_17 {SHARECHECK_ERR_EXTRANONCE2_LENGTH}"),
        format!("share_nan {SHARECHECK_ERR_DIFFICULTY}"),
        format!("share_infinity {SHARECHECK_ERR_DIFFICULTY}"),
        format!("share_zero {SHARECHECK_ERR_DIFFICULTY}"),
        format!("share_negative {SHARECHECK_ERR_DIFFICULTY}"),
        format!("share_null_out {SHARECHECK_ERR_NULL}"),
        format!("share_null_extranonce2 {SHARECHECK_ERR_NULL}"),
        format!("share_job_id_utf8 {SHARECHECK_ERR_JOB_ID_UTF8}"),
        format!("failed_share_untouched {SHARECHECK_ERR_DIFFICULTY} 1"),
        format!("header_zero_target {SHARECHECK_ERR_ZERO_TARGET}"),
        format!("header_nan {SHARECHECK_ERR_DIFFICULTY}"),
        format!("header_bad_nbits {SHARECHECK_ERR_HEADER_NBITS}"),
        format!("shares_buffer_too_small {SHARECHECK_ERR_BUFFER_TOO_SMALL} 272"),
        format!("shares_size_query {SHARECHECK_ERR_BUFFER_TOO_SMALL} 272"),
        format!("shares_null_len {SHARECHECK_ERR_NULL}"),
        format!("job_id_33 {SHARECHECK_ERR_JOB_ID_LENGTH}"),
        format!("job_coinb1_16385 {SHARECHECK_ERR_COINBASE_LENGTH}"),
        format!("job_branch_33 {SHARECHECK_ERR_BRANCH_LENGTH}"),
        format!("job_nbits_0 {SHARECHECK_ERR_NBITS}"),
        format!("job_ok {SHARECHECK_OK}"),
        format!("job_null {SHARECHECK_ERR_NULL}"),
        format!("sv2_extranonce_33 {SHARECHECK_ERR_SV2_EXTRANONCE_LENGTH}"),
        format!("sv2_extranonce_32 {SHARECHECK_OK}"),
        format!("sv2_standard_zero_target {SHARECHECK_ERR_ZERO_TARGET}"),
        format!("sv2_standard_job_id_0 {SHARECHECK_ERR_JOB_ID_LENGTH}"),
        format!("standard_job_nbits_0 {SHARECHECK_ERR_NBITS}"),
        format!(
            "standard_job_too_small {SHARECHECK_ERR_BUFFER_TOO_SMALL} {}",
            ffi::STANDARD_JOB_SIZE
        ),
        "sv2_error_null 1".into(),
        format!("activation_nbits_0 {SHARECHECK_ERR_NBITS}"),
        format!(
            "activation_too_small {SHARECHECK_ERR_BUFFER_TOO_SMALL} {}",
            ffi::ACTIVATION_SIZE
        ),
        format!("decode_garbage {SHARECHECK_ERR_DECODE} 0"),
        format!("decode_null_count {SHARECHECK_ERR_NULL}"),
        format!(
            "strerror_too_small {}",
            strerror(SHARECHECK_ERR_BUFFER_TOO_SMALL)
        ),
        "strerror_unknown unknown sharecheck error code".into(),
        "status_name_block block".into(),
        "status_name_9 unknown".into(),
        "abi_version 1".into(),
    ];
    assert_lines(&run_c(&["errors"]), &want);
}

#[test]
fn struct_layouts_are_the_same_in_c_and_rust() {
    use std::mem::{offset_of, size_of};
    let f = |s: &str, field: &str, off: usize| format!("{s}.{field} {off}");
    let v = "sharecheck_verdict";
    let j = "sharecheck_job";
    let sj = "sharecheck_standard_job";
    let want = [
        format!("sizeof sharecheck_share {}", size_of::<ShareRecord>()),
        format!("sizeof sharecheck_verdict {}", size_of::<ffi::Verdict>()),
        format!("sizeof sharecheck_job {}", size_of::<ffi::Job>()),
        f(v, "id", offset_of!(ffi::Verdict, id)),
        f(v, "has_id", offset_of!(ffi::Verdict, has_id)),
        f(v, "status", offset_of!(ffi::Verdict, status)),
        f(v, "has_hash", offset_of!(ffi::Verdict, has_hash)),
        f(v, "has_header", offset_of!(ffi::Verdict, has_header)),
        f(v, "error_code", offset_of!(ffi::Verdict, error_code)),
        f(v, "error_arg", offset_of!(ffi::Verdict, error_arg)),
        f(v, "difficulty", offset_of!(ffi::Verdict, difficulty)),
        f(v, "hash", offset_of!(ffi::Verdict, hash)),
        f(v, "header", offset_of!(ffi::Verdict, header)),
        f(j, "job_id", offset_of!(ffi::Job, job_id)),
        f(j, "job_id_len", offset_of!(ffi::Job, job_id_len)),
        f(j, "prevhash", offset_of!(ffi::Job, prevhash)),
        f(j, "coinb1", offset_of!(ffi::Job, coinb1)),
        f(j, "coinb1_len", offset_of!(ffi::Job, coinb1_len)),
        f(j, "coinb2", offset_of!(ffi::Job, coinb2)),
        f(j, "coinb2_len", offset_of!(ffi::Job, coinb2_len)),
        f(j, "merkle_branch", offset_of!(ffi::Job, merkle_branch)),
        f(j, "merkle_count", offset_of!(ffi::Job, merkle_count)),
        f(j, "version", offset_of!(ffi::Job, version)),
        f(j, "nbits", offset_of!(ffi::Job, nbits)),
        f(j, "ntime", offset_of!(ffi::Job, ntime)),
        f(j, "version_mask", offset_of!(ffi::Job, version_mask)),
        f(j, "clean_jobs", offset_of!(ffi::Job, clean_jobs)),
        f(j, "extranonce_size", offset_of!(ffi::Job, extranonce_size)),
        format!(
            "sizeof sharecheck_standard_job {}",
            size_of::<ffi::StandardJob>()
        ),
        f(sj, "job_id", offset_of!(ffi::StandardJob, job_id)),
        f(sj, "job_id_len", offset_of!(ffi::StandardJob, job_id_len)),
        f(sj, "prevhash", offset_of!(ffi::StandardJob, prevhash)),
        f(sj, "merkle_root", offset_of!(ffi::StandardJob, merkle_root)),
        f(sj, "version", offset_of!(ffi::StandardJob, version)),
        f(sj, "nbits", offset_of!(ffi::StandardJob, nbits)),
        f(sj, "min_ntime", offset_of!(ffi::StandardJob, min_ntime)),
        f(
            sj,
            "version_mask",
            offset_of!(ffi::StandardJob, version_mask),
        ),
        f(sj, "clean_jobs", offset_of!(ffi::StandardJob, clean_jobs)),
        f(sj, "future", offset_of!(ffi::StandardJob, future)),
    ];
    assert_lines(&run_c(&["layout"]), &want);
}

/// `#define NAME VALUE` lines of the header, the value with its parentheses and any comment
/// removed.
fn header_defines() -> Vec<(String, String)> {
    let h = std::fs::read_to_string(format!("{ROOT}/include/sharecheck.h")).unwrap();
    h.lines()
        .filter_map(|l| l.strip_prefix("#define "))
        .filter_map(|l| {
            let l = l.split("/*").next().unwrap().trim();
            let (name, value) = l.split_once(' ')?;
            Some((
                name.to_string(),
                value.trim().trim_matches(['(', ')']).to_string(),
            ))
        })
        .collect()
}

#[test]
fn the_headers_constants_are_the_librarys() {
    let defs = header_defines();
    let get = |name: &str| {
        defs.iter()
            .find(|d| d.0 == name)
            .map(|d| d.1.clone())
            .unwrap_or_else(|| panic!("include/sharecheck.h lacks {name}"))
    };
    for (code, name, _) in ffi::ERRORS {
        assert_eq!(get(name), code.to_string(), "{name}");
    }
    let codes = defs.iter().filter(|d| d.0.starts_with("SHARECHECK_ERR_"));
    assert_eq!(
        codes.count() + 1,
        ffi::ERRORS.len(),
        "error codes in the header"
    );
    for s in Status::ALL {
        let name = format!("SHARECHECK_STATUS_{}", s.as_str().to_uppercase());
        assert_eq!(get(&name), (s as u8).to_string(), "{name}");
    }
    assert_eq!(
        get("SHARECHECK_HEADER_REPLY_TO"),
        format!("{:?}", ffi::HEADER_REPLY_TO)
    );
    assert_eq!(ffi::HEADER_REPLY_TO, "reply_to");
    assert_eq!(get("SHARECHECK_ABI_VERSION"), ffi::ABI_VERSION.to_string());
    use sharecheck::model::job::*;
    for (name, v) in [
        ("SHARECHECK_MAX_JOB_ID", MAX_JOB_ID),
        ("SHARECHECK_MAX_EXTRANONCE1", MAX_EXTRANONCE1),
        ("SHARECHECK_MAX_EXTRANONCE2", MAX_EXTRANONCE2),
        ("SHARECHECK_MAX_COINB", MAX_COINB),
        ("SHARECHECK_MAX_BRANCH", MAX_BRANCH),
        (
            "SHARECHECK_MAX_SV2_EXTRANONCE",
            sharecheck::model::share::MAX_SV2_EXTRANONCE,
        ),
    ] {
        assert_eq!(get(name), v.to_string(), "{name}");
    }
    assert_eq!(
        get("SHARECHECK_DEFAULT_VERSION_MASK"),
        format!("{DEFAULT_VERSION_MASK:#x}u")
    );
    // The job size macro is checked where C evaluates it: abi_test.c encodes the largest job
    // into a buffer of SHARECHECK_JOB_MAX_SIZE bytes (job_ok above); here its formula.
    assert_eq!(
        get("SHARECHECK_JOB_MAX_SIZE"),
        "16 + 88 + 2 * SHARECHECK_MAX_COINB + 32 * SHARECHECK_MAX_BRANCH"
    );
    assert_eq!(ffi::JOB_MAX_SIZE, 16 + 88 + 2 * MAX_COINB + 32 * MAX_BRANCH);
    // The standard job's size is checked in C too (standard_job_too_small above).
    assert_eq!(get("SHARECHECK_STANDARD_JOB_SIZE"), "16 + 88 + 32");
    assert_eq!(get("SHARECHECK_ACTIVATION_SIZE"), "16 + 88");
}

/// C++ programs (btcpool) include the header too: it must compile as C++ with its
/// declarations inside extern "C".
#[test]
fn the_header_compiles_as_cpp() {
    let cxx = compiler("CXX", "c++");
    let dir = scratch("cpp");
    let src = dir.join("t.cpp");
    std::fs::write(
        &src,
        "#include \"sharecheck.h\"\n\
         static_assert(sizeof(sharecheck_share) == 128, \"share\");\n\
         static_assert(sizeof(sharecheck_verdict) == 136, \"verdict\");\n\
         int main() { return sharecheck_abi_version() == SHARECHECK_ABI_VERSION ? 0 : 1; }\n",
    )
    .unwrap();
    let mut cmd = Command::new(&cxx);
    cmd.args(["-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg(format!("-I{ROOT}/include"))
        .arg(&src)
        .arg("-o")
        .arg(dir.join("t"));
    let status = link_library(&mut cmd).status();
    match status {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("no C++ compiler {cxx:?}: header not checked as C++");
        }
        Err(e) => panic!("cannot run {cxx:?}: {e}"),
        Ok(s) => {
            assert!(s.success(), "the header does not compile as C++");
            let run = run_linked(&dir.join("t")).status().unwrap();
            assert!(
                run.success(),
                "a C++ program linked the library but saw another ABI"
            );
        }
    }
}
