//! The binary batch format: JSONL → binary → validation gives the same verdicts as JSONL
//! directly; verdict batches round-trip; truncated or corrupt batches are errors, never panics.

mod common;
use common::*;
use proptest::prelude::*;
use sharecheck::model::{Batch, ValidationConfig, Validator};
use sharecheck::wire::binary::{self, DecodeError, ShareRecord};
use sharecheck::wire::jsonl::{self, Line};

/// Splits a generated workload into jobs and share records (dropping lines that only JSON
/// can express, such as bad hex).
fn workload(shares: u64, seed: u64) -> (Vec<String>, Vec<Line>) {
    let cfg = sharecheck::gen::GenConfig {
        shares,
        seed,
        mode: sharecheck::gen::GenMode::Mixed,
        ..Default::default()
    };
    let mut out = Vec::new();
    sharecheck::gen::generate(&cfg, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let parsed = lines.iter().map(|l| jsonl::parse_line(l)).collect();
    (lines, parsed)
}

/// Validates a stream of binary messages (job messages and share batches) in order.
fn validate_binary(messages: &[(bool, Vec<u8>)]) -> Vec<sharecheck::model::Verdict> {
    let backend = sharecheck::backend::open("cpu", 2).unwrap();
    let mut v = Validator::new(ValidationConfig::default());
    let mut verdicts = vec![];
    for (is_job, msg) in messages {
        if *is_job {
            v.add_job(binary::decode_job(msg).unwrap()).unwrap();
            continue;
        }
        let recs = binary::decode_shares(msg).unwrap();
        let mut batch = Batch::new();
        for r in recs {
            v.check(r, &mut batch);
        }
        let mut hashes = vec![[0u32; 8]; batch.tasks.len()];
        backend
            .hash(&batch.jobs, &batch.tasks, &mut hashes)
            .unwrap();
        // Verdicts survive their own binary round trip.
        let out = batch.finish(&hashes);
        let back = binary::decode_verdicts(&binary::encode_verdicts(&out)).unwrap();
        assert_eq!(back, out);
        verdicts.extend(out);
    }
    verdicts
}

#[test]
fn jsonl_and_binary_give_the_same_verdicts() {
    let (lines, parsed) = workload(3000, 11);
    // Binary stream: each job as a job message, shares in batches of up to 100 between jobs.
    let mut messages: Vec<(bool, Vec<u8>)> = vec![];
    let mut pending: Vec<ShareRecord> = vec![];
    let mut json_lines = vec![];
    for (line, p) in lines.iter().zip(parsed) {
        match p {
            Line::Job(Ok(job)) => {
                if !pending.is_empty() {
                    messages.push((false, binary::encode_shares(&pending)));
                    pending.clear();
                }
                // Job messages round-trip exactly.
                let msg = binary::encode_job(&job);
                assert_eq!(binary::decode_job(&msg).unwrap(), job);
                messages.push((true, msg));
                json_lines.push(line.clone());
            }
            Line::Share(Ok(rec)) => {
                pending.push(rec);
                if pending.len() == 100 {
                    messages.push((false, binary::encode_shares(&pending)));
                    pending.clear();
                }
                json_lines.push(line.clone());
            }
            _ => {}
        }
    }
    messages.push((false, binary::encode_shares(&pending)));
    let from_binary = validate_binary(&messages);
    let b = sharecheck::backend::open("cpu:scalar", 1).unwrap();
    let from_json = verify_lines(&json_lines, b.as_ref(), 256);
    assert_eq!(from_binary.len(), from_json.len());
    assert!(from_json.len() > 2500);
    for (bv, jv) in from_binary.iter().zip(&from_json) {
        let line: serde_json::Value = serde_json::from_str(&jsonl::verdict_json(bv)).unwrap();
        assert_eq!(&line, jv);
    }
}

#[test]
fn truncated_and_corrupt_batches_are_errors() {
    let (_, parsed) = workload(50, 3);
    let recs: Vec<ShareRecord> = parsed
        .into_iter()
        .filter_map(|p| match p {
            Line::Share(Ok(r)) => Some(r),
            _ => None,
        })
        .collect();
    let msg = binary::encode_shares(&recs);
    assert_eq!(binary::decode_shares(&msg).unwrap(), &recs[..]);
    for cut in [0, 1, 15, 16, 17, msg.len() - 1] {
        assert!(binary::decode_shares(&msg[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = msg.clone();
    longer.push(0);
    assert!(matches!(
        binary::decode_shares(&longer),
        Err(DecodeError::Length { .. })
    ));
    let mut m = msg.clone();
    m[0] = b'X';
    assert!(matches!(
        binary::decode_shares(&m),
        Err(DecodeError::Magic(_))
    ));
    let mut m = msg.clone();
    m[4] = 9;
    assert!(matches!(
        binary::decode_shares(&m),
        Err(DecodeError::Version(9))
    ));
    let mut m = msg.clone();
    m[6] = 2;
    assert!(matches!(
        binary::decode_shares(&m),
        Err(DecodeError::Kind { .. })
    ));
    let mut m = msg.clone();
    m[12] = 127;
    assert!(matches!(
        binary::decode_shares(&m),
        Err(DecodeError::RecordSize { .. })
    ));
    let mut m = msg;
    m[8] = m[8].wrapping_add(1);
    assert!(matches!(
        binary::decode_shares(&m),
        Err(DecodeError::Length { .. })
    ));
    // A share batch is not a job, nor a verdict batch.
    assert!(binary::decode_job(&binary::encode_shares(&recs)).is_err());
    assert!(binary::decode_verdicts(&binary::encode_shares(&recs)).is_err());
}

#[test]
fn corrupt_records_are_malformed_verdicts() {
    let (_, parsed) = workload(20, 5);
    let good: Vec<ShareRecord> = parsed
        .into_iter()
        .filter_map(|p| match p {
            Line::Share(Ok(r)) => Some(r),
            _ => None,
        })
        .collect();
    let stratum = *good.iter().find(|r| r.kind == 1).unwrap();
    let header = *good.iter().find(|r| r.kind == 2).unwrap();
    let mut cases = vec![];
    let mut r = stratum;
    r.kind = 9;
    cases.push((r, 1u16));
    let mut r = stratum;
    r.flags |= 0x80;
    cases.push((r, 2));
    let mut r = stratum;
    r.reserved[1] = 1;
    cases.push((r, 3));
    let mut r = stratum;
    r.job_id_len = 40;
    cases.push((r, 4));
    let mut r = stratum;
    r.payload[16] = 0xff;
    cases.push((r, 5));
    let mut r = stratum;
    r.extranonce1_len = 17;
    cases.push((r, 6));
    let mut r = stratum;
    r.extranonce2_len = 0;
    cases.push((r, 7));
    let mut r = stratum;
    r.target[..8].copy_from_slice(&f64::NAN.to_le_bytes());
    cases.push((r, 8));
    let mut r = header;
    r.flags = binary::FLAG_TARGET;
    r.target = [0; 32];
    cases.push((r, 9));
    let mut r = header;
    r.payload[72..76].copy_from_slice(&0x0492_3456u32.to_le_bytes());
    cases.push((r, 10));
    let mut r = stratum;
    r.payload[79] = 1;
    cases.push((r, 11));
    let mut r = header;
    r.job_id_len = 1;
    cases.push((r, 12));
    let recs: Vec<ShareRecord> = cases.iter().map(|c| c.0).collect();
    let msg = binary::encode_shares(&recs);
    let mut v = Validator::new(ValidationConfig::default());
    let mut batch = Batch::new();
    for r in binary::decode_shares(&msg).unwrap() {
        v.check(r, &mut batch);
    }
    let out = batch.finish(&[]);
    let encoded = binary::encode_verdicts(&out);
    let back = binary::decode_verdicts(&encoded).unwrap();
    for ((verdict, (rec, code)), b) in out.iter().zip(&cases).zip(&back) {
        assert_eq!(verdict.status, sharecheck::model::Status::Malformed);
        assert_eq!(verdict.id, Some(rec.id()));
        match &verdict.error {
            Some(sharecheck::model::Malformed::Record(e)) => assert_eq!(e.code(), *code),
            e => panic!("expected a record error, got {e:?}"),
        }
        assert_eq!(
            b, verdict,
            "error code and argument survive the binary round trip"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes never panic any decoder.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = binary::decode_shares(&bytes);
        let _ = binary::decode_job(&bytes);
        let _ = binary::decode_verdicts(&bytes);
        let mut framed = bytes.clone();
        framed.splice(0..framed.len().min(16), binary::encode_shares(&[]).into_iter());
        let _ = binary::decode_shares(&framed);
    }

    /// Any 128 bytes as a share record give a verdict (hashed or malformed), never a panic,
    /// and at most one hash task.
    #[test]
    fn random_records_get_verdicts(raw in proptest::collection::vec(any::<u8>(), 128), kind in 0u8..4) {
        let mut rec: ShareRecord = bytemuck::pod_read_unaligned(&raw);
        rec.kind = kind;
        let mut v = Validator::new(ValidationConfig::default());
        let job = jsonl::parse_job(genesis_job("g", true)["job"].as_object().unwrap()).unwrap();
        v.add_job(job).unwrap();
        let mut batch = Batch::new();
        v.check(&rec, &mut batch);
        let n = batch.tasks.len();
        prop_assert!(n <= 1);
        let backend = sharecheck::backend::open("cpu", 1).unwrap();
        let mut hashes = vec![[0u32; 8]; n];
        backend.hash(&batch.jobs, &batch.tasks, &mut hashes).unwrap();
        let out = batch.finish(&hashes);
        prop_assert_eq!(out.len(), 1);
    }

    /// Job messages with random bytes after a valid header never panic.
    #[test]
    fn random_job_bodies(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut msg = binary::BatchHeader::new(binary::RecordKind::Job, 1, body.len() as u32);
        let mut bytes = bytemuck::bytes_of(&msg).to_vec();
        bytes.extend(&body);
        let _ = binary::decode_job(&bytes);
        msg.count = 2u32.to_le_bytes();
        let mut bytes = bytemuck::bytes_of(&msg).to_vec();
        bytes.extend(&body);
        prop_assert!(binary::decode_job(&bytes).is_err());
    }
}

/// A verdict batch without blocks uses 56-byte records; one with a block uses 136-byte records
/// for every verdict (the ones before the block widened), and both decode to the same verdicts.
#[test]
fn verdict_batches_are_compact_unless_a_verdict_carries_a_header() {
    use sharecheck::model::{Status, Verdict};
    let hashed = |id: u64, status: Status| Verdict {
        id: Some(id),
        status,
        hash: Some([id as u8; 32]),
        difficulty: Some(id as f64 * 1.5),
        header: None,
        error: None,
        rolling_forbidden: false,
    };
    let mut vs = vec![
        hashed(1, Status::Accepted),
        Verdict::rejected(2, Status::Duplicate),
        hashed(3, Status::LowDifficulty),
        // The SV2 answer of a bad_version share survives the wire.
        Verdict::bad_version(4, 0),
        Verdict::bad_version(5, 0x1fff_e000),
    ];
    let compact = binary::encode_verdicts(&vs);
    assert_eq!(compact.len(), 16 + 5 * binary::COMPACT_VERDICT_SIZE);
    assert_eq!(&compact[12..16], &56u32.to_le_bytes());
    assert_eq!(binary::decode_verdicts(&compact).unwrap(), vs);
    assert_eq!(
        binary::batch_count(&compact, binary::RecordKind::Verdicts),
        Ok(5)
    );
    let codes: Vec<_> = binary::decode_verdicts(&compact)
        .unwrap()
        .iter()
        .map(|v| v.sv2_error())
        .collect();
    assert_eq!(
        codes[3..],
        [
            Some("version-rolling-not-allowed"),
            Some("invalid-non-rollable-version-bit")
        ]
    );

    let mut block = hashed(4, Status::Block);
    block.header = Some(Box::new([7; 80]));
    vs.insert(1, block);
    let full = binary::encode_verdicts(&vs);
    assert_eq!(full.len(), 16 + 6 * 136);
    assert_eq!(&full[12..16], &136u32.to_le_bytes());
    assert_eq!(binary::decode_verdicts(&full).unwrap(), vs);

    // The writer gives the same bytes as the one-shot encoder.
    let mut w = binary::VerdictWriter::with_capacity(1);
    for v in &vs {
        w.push(v);
    }
    assert_eq!(w.len(), 6);
    assert_eq!(w.finish(), full);

    // A compact record cannot say it carries a header.
    let mut bad = compact.clone();
    bad[16 + 9] |= binary::VFLAG_HEADER;
    assert!(matches!(
        binary::decode_verdicts(&bad),
        Err(DecodeError::Verdict(_))
    ));
    // Record sizes other than 56 and 136, and bodies of the wrong length, are refused.
    let mut odd = compact.clone();
    odd[12..16].copy_from_slice(&57u32.to_le_bytes());
    assert!(matches!(
        binary::decode_verdicts(&odd),
        Err(DecodeError::RecordSize { .. })
    ));
    assert!(matches!(
        binary::decode_verdicts(&compact[..compact.len() - 1]),
        Err(DecodeError::Length { .. })
    ));
    assert!(matches!(
        binary::batch_count(&compact[..compact.len() - 1], binary::RecordKind::Verdicts),
        Err(DecodeError::Length { .. })
    ));
}

/// A job's extranonce_size travels in byte 3 of the job message (0: not stated, as in every
/// job message written before it existed, whose byte 3 was the high byte of the branch
/// count) and in the JSON job line.
#[test]
fn extranonce_size_round_trips() {
    let line = genesis_job("e", true).to_string();
    let Line::Job(Ok(mut job)) = jsonl::parse_line(&line) else {
        panic!("a job line")
    };
    assert_eq!(job.extranonce_size, None);
    let msg = binary::encode_job(&job);
    assert_eq!(msg[16 + 3], 0);
    assert_eq!(binary::decode_job(&msg).unwrap().extranonce_size, None);
    job.extranonce_size = Some(12);
    let msg = binary::encode_job(&job);
    assert_eq!(msg[16 + 3], 12);
    assert_eq!(binary::decode_job(&msg).unwrap(), job);
    let json = jsonl::job_json(&job).to_string();
    assert!(json.contains("\"extranonce_size\":12"), "{json}");
    let Line::Job(Ok(again)) = jsonl::parse_line(&json) else {
        panic!("a job line")
    };
    assert_eq!(again, job);
    let mut bad = genesis_job("e", true);
    bad["job"]["extranonce_size"] = serde_json::json!(0);
    assert!(matches!(
        jsonl::parse_line(&bad.to_string()),
        Line::Job(Err(_))
    ));
}

/// SV2's two steps travel as job messages: a future job (flag 4: a standard job with no
/// prevhash, nbits or ntime yet) and its activation (flag 8 with clean: job_id, prevhash,
/// nbits, ntime), in JSON as `"future": true` and `"activate": true`; both round-trip, and
/// mixtures that mean nothing are refused in both forms.
#[test]
fn future_jobs_and_activations_round_trip() {
    use sharecheck::model::job::JobStep;
    let root = "5a".repeat(32);
    let future = format!(
        r#"{{"job": {{"job_id": "17", "future": true, "merkle_root": "{root}", "version": "20000000", "version_mask": "1fffffe0"}}}}"#
    );
    let activate = format!(
        r#"{{"job": {{"job_id": "17", "activate": true, "prevhash": "{}", "nbits": "1d00ffff", "ntime": "66a0e2b1"}}}}"#,
        "20".repeat(32)
    );
    for (line, step, flags) in [
        (&future, JobStep::Future, 2 | 4),
        (&activate, JobStep::Activation, 1 | 8),
    ] {
        let Line::Job(Ok(job)) = jsonl::parse_line(line) else {
            panic!("a job line: {line}")
        };
        assert_eq!(job.step, step);
        let msg = binary::encode_job(&job);
        assert_eq!(msg[16 + 1], flags, "{line}");
        assert_eq!(binary::decode_job(&msg).unwrap(), job);
        let Line::Job(Ok(again)) = jsonl::parse_line(&jsonl::job_json(&job).to_string()) else {
            panic!("job_json of {line}")
        };
        assert_eq!(again, job);
    }
    // A future job has no prev hash yet; an activation brings nothing of the job's own.
    let refused = [
        future.replace(
            r#""future": true"#,
            r#""future": true, "nbits": "1d00ffff""#,
        ),
        future.replace(&format!(r#""merkle_root": "{root}", "#), ""),
        activate.replace(
            r#""activate": true"#,
            r#""activate": true, "version": "20000000""#,
        ),
        activate.replace(r#""activate": true"#, r#""activate": true, "future": true"#),
    ];
    for line in &refused {
        assert!(
            matches!(jsonl::parse_line(line), Line::Job(Err(_))),
            "{line}"
        );
    }
    let Line::Job(Ok(job)) = jsonl::parse_line(&future) else {
        unreachable!()
    };
    let mut msg = binary::encode_job(&job);
    msg[16 + 1] = 4; // future without the standard flag
    assert!(binary::decode_job(&msg).is_err());
    msg[16 + 1] = 2 | 4 | 8;
    assert!(binary::decode_job(&msg).is_err());
}
