//! The validation contract: every status, in its order of precedence, on real blocks.

mod common;
use common::*;
use serde_json::{json, Value};

fn status(v: &Value) -> &str {
    v["status"].as_str().unwrap()
}

#[test]
fn genesis_as_stratum_job_and_header_share_is_a_block() {
    let vs = verify_values(&[
        genesis_job("g", true),
        genesis_standard_job("gs"),
        genesis_share(1, "g"),
        json!({"share": {"id": 2, "header": GENESIS_HEADER, "difficulty": 1}}),
    ]);
    // The same work as an SV2 standard share: a block, and the header share after it the
    // same proof of work (a duplicate).
    let std = verify_values(&[
        genesis_standard_job("gs"),
        json!({"share": {"id": 3, "kind": "sv2_standard", "job_id": "gs", "version": 1,
            "ntime": 0x495fab29u32, "nonce": 0x7c2bac1du32, "difficulty": 1}}),
        json!({"share": {"id": 4, "header": GENESIS_HEADER, "difficulty": 1}}),
    ]);
    assert_eq!(status(&std[1]), "duplicate");
    let vs = [&vs[..], &std[..1]].concat();
    assert_eq!(vs.len(), 3);
    for v in &vs {
        assert_eq!(status(v), "block", "{v}");
        assert_eq!(v["hash"], GENESIS_HASH);
        assert_eq!(v["header"], GENESIS_HEADER);
        let d = v["difficulty"].as_f64().unwrap();
        assert!((d - 2536.4262984).abs() < 1e-6, "{d}");
        assert!(v.get("error").is_none());
    }
}

/// A header share is worth something only against the pool's own work: headers that meet
/// their own (regtest) nbits on a prevhash no job published are unknown_job, never block;
/// the same headers are blocks to an audit (`verify --audit-headers`), and to a job that
/// states their work.
#[test]
fn header_shares_without_the_pools_work_are_unknown_job() {
    let mut lines = Vec::new();
    let mut headers = Vec::new();
    for i in 0..5u32 {
        let mut h = header(
            0x2000_0000,
            &format!("{:064x}", 0xabc0 + i),
            &"11".repeat(32),
            1_700_000_000,
            0x207fffff,
            i,
        );
        // Find a nonce under regtest's target (one hash in two meets it).
        let mut nonce = 0u32;
        loop {
            h.replace_range(
                152..160,
                &sharecheck::wire::hex::encode(&nonce.to_le_bytes()),
            );
            let vs = audit_values(&[json!({"share": {"id": 1, "header": h, "difficulty": 1e-9}})]);
            if status(&vs[0]) == "block" {
                break;
            }
            nonce += 1;
        }
        lines.push(json!({"share": {"id": i, "header": h, "difficulty": 1e-9}}));
        headers.push(h);
    }
    for v in verify_values(&lines) {
        assert_eq!(status(&v), "unknown_job", "{v}");
        assert_eq!(v["sv2_error"], "invalid-job-id");
    }
    assert!(audit_values(&lines).iter().all(|v| status(v) == "block"));
    // The pool's standard job for the first one's work makes it a block; the others stay
    // unknown_job.
    let h = &headers[0];
    let swap = |hex: &str| {
        let b = sharecheck::wire::hex::decode(hex).unwrap();
        let words: Vec<u8> = b.chunks(4).flat_map(|c| c.iter().rev().copied()).collect();
        sharecheck::wire::hex::encode(&words)
    };
    let job = json!({"job": {"job_id": "s", "prevhash": swap(&h[8..72]), "merkle_root": &h[72..136],
        "version": "20000000", "nbits": "207fffff", "ntime": &format!("{:08x}", 1_700_000_000u32),
        "clean_jobs": true}});
    let vs = verify_values(&[vec![job], lines].concat());
    let got: Vec<&str> = vs.iter().map(status).collect();
    assert_eq!(
        got,
        [
            "block",
            "unknown_job",
            "unknown_job",
            "unknown_job",
            "unknown_job"
        ]
    );
}

/// Real mainnet headers and their hashes.
#[test]
fn real_block_headers() {
    // (height, header, hash)
    let blocks = [
        (1, "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299",
            "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048"),
        (170, &header(1, "000000002a22cfee1f2c846adbd12b3e183d4f97683f85dad08a79780a84bd55",
            "7dac2c5666815c17a3b36427de37bb9d2e2c5ccec3f8633eb91a4205cb4c10ff", 1231731025, 0x1d00ffff, 1889418792),
            "00000000d1145790a8694403d4063f323d499e655c83426834d4ce2f8dd4a2ee"),
        (125552, &header(1, "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81",
            "2b12fcf1b09288fcaff797d71e950e71ae42b91e8bdb2304758dfcffc2b620e3", 1305998791, 0x1a44b9f2, 2504433986),
            "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d"),
    ];
    for (height, hdr, hash) in blocks {
        // As a block: difficulty 1 share target; each is a valid block at its own nbits.
        let vs = audit_values(&[json!({"share": {"id": height, "header": hdr, "difficulty": 1}})]);
        assert_eq!(vs[0]["hash"], hash, "block {height}");
        assert_eq!(status(&vs[0]), "block", "block {height}");
        assert_eq!(vs[0]["header"], hdr.to_lowercase());
        // One bit of nonce changed: no longer a block, and at difficulty 1 almost surely low.
        let mut bad = hdr.to_string();
        let last = bad.pop().unwrap();
        bad.push(if last == '0' { '1' } else { '0' });
        let vs = audit_values(&[json!({"share": {"id": 1, "header": bad, "difficulty": 1}})]);
        assert_eq!(status(&vs[0]), "low_difficulty");
        assert!(vs[0]["hash"].as_str().unwrap() != hash);
    }
}

/// Builds a header hex from its fields (display-order hashes).
fn header(version: u32, prev: &str, root: &str, time: u32, bits: u32, nonce: u32) -> String {
    let rev = |h: &str| {
        let mut b = sharecheck::wire::hex::decode(h).unwrap();
        b.reverse();
        sharecheck::wire::hex::encode(&b)
    };
    format!(
        "{}{}{}{}{}{}",
        sharecheck::wire::hex::encode(&version.to_le_bytes()),
        rev(prev),
        rev(root),
        sharecheck::wire::hex::encode(&time.to_le_bytes()),
        sharecheck::wire::hex::encode(&bits.to_le_bytes()),
        sharecheck::wire::hex::encode(&nonce.to_le_bytes())
    )
}

/// A stratum job with a real merkle branch: the coinbase is the genesis coinbase, the other
/// transactions are arbitrary txids, and rust-bitcoin computes the merkle root independently.
#[test]
fn stratum_merkle_branch_matches_rust_bitcoin() {
    use bitcoin::hashes::{sha256d, Hash};
    let (c1, e1, e2, c2) = genesis_split();
    let coinbase = sharecheck::wire::hex::decode(GENESIS_COINBASE).unwrap();
    let txids: Vec<[u8; 32]> = (1..=11u8)
        .map(|i| sha256d::Hash::hash(&[i]).to_byte_array())
        .collect();
    // The branch of leaf 0 in a tree of 12 leaves, as a pool computes it.
    let mut level: Vec<[u8; 32]> = std::iter::once(sha256d::Hash::hash(&coinbase).to_byte_array())
        .chain(txids.iter().copied())
        .collect();
    let mut branch = vec![];
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            level.push(*level.last().unwrap());
        }
        branch.push(level[1]);
        level = level
            .chunks(2)
            .map(|p| sha256d::Hash::hash(&[p[0], p[1]].concat()).to_byte_array())
            .collect();
    }
    let root = bitcoin::merkle_tree::calculate_root(
        std::iter::once(bitcoin::Txid::from_byte_array(
            sha256d::Hash::hash(&coinbase).to_byte_array(),
        ))
        .chain(txids.iter().map(|t| bitcoin::Txid::from_byte_array(*t))),
    )
    .unwrap();
    assert_eq!(level[0], root.to_byte_array());
    let prev = [0x11u8; 32];
    let stratum_prev: Vec<u8> = prev
        .chunks(4)
        .flat_map(|w| w.iter().rev().copied())
        .collect();
    let job = json!({"job": {
        "job_id": "b", "prevhash": sharecheck::wire::hex::encode(&stratum_prev),
        "coinb1": c1, "coinb2": c2,
        "merkle_branch": branch.iter().map(|b| sharecheck::wire::hex::encode(b)).collect::<Vec<_>>(),
        "version": "20000000", "nbits": "1703a30c", "ntime": "66000000", "clean_jobs": true
    }});
    let share = json!({"share": {"id": 9, "job_id": "b", "extranonce1": e1, "extranonce2": e2,
        "ntime": "66000010", "nonce": "01020304", "version_bits": "00ffe000", "target": "f".repeat(64)}});
    let vs = verify_values(&[job, share]);
    assert_eq!(status(&vs[0]), "accepted", "{}", vs[0]);
    let hdr = bitcoin::block::Header {
        version: bitcoin::block::Version::from_consensus(0x20ffe000),
        prev_blockhash: bitcoin::BlockHash::from_byte_array(prev),
        merkle_root: bitcoin::TxMerkleNode::from_byte_array(root.to_byte_array()),
        time: 0x66000010,
        bits: bitcoin::CompactTarget::from_consensus(0x1703a30c),
        nonce: 0x01020304,
    };
    assert_eq!(vs[0]["hash"], hdr.block_hash().to_string());
}

fn base_share(id: u64) -> Value {
    genesis_share(id, "g")
}

fn with(mut v: Value, k: &str, x: Value) -> Value {
    v["share"][k] = x;
    v
}

#[test]
fn every_status_and_its_precedence() {
    let mut lines = vec![genesis_job("old", false), genesis_job("g", false)];
    // A job with a hard target so that a share is accepted but not a block, and one where
    // the share target is even harder.
    let mut hard = genesis_job("h", false);
    hard["job"]["nbits"] = "1703a30c".into();
    lines.push(hard);
    let mut easy = with(base_share(1), "job_id", "h".into());
    easy["share"].as_object_mut().unwrap().remove("difficulty");
    lines.push(with(easy, "target", "f".repeat(64).into()));
    lines.push(with(
        with(
            with(base_share(2), "job_id", "h".into()),
            "difficulty",
            json!(1e6),
        ),
        "extranonce2",
        "00000000".into(),
    ));
    lines.push(base_share(3)); // block
    lines.push(with(base_share(4), "extranonce2", "1dac2B7C".into())); // hashed differently
    lines.push(base_share(5)); // duplicate of 3
    lines.push(with(base_share(6), "job_id", "nope".into())); // unknown_job
    lines.push(with(base_share(7), "version_bits", "00000001".into())); // bad_version
    lines.push(with(base_share(8), "ntime", "495fab28".into())); // bad_ntime (before)
    lines.push(with(
        base_share(9),
        "ntime",
        format!("{:08x}", 0x495fab29u32 + 7201).into(),
    )); // after
    lines.push(with(
        base_share(10),
        "ntime",
        format!("{:08x}", 0x495fab29u32 + 7200).into(),
    )); // ok
    lines.push(with(base_share(11), "nonce", "zz".into())); // malformed
                                                            // A clean job makes "old", "g" and "h" stale.
    lines.push(genesis_job("new", true));
    lines.push(with(base_share(12), "job_id", "old".into()));
    // Precedence: stale beats bad_version, bad_ntime and duplicate.
    lines.push(with(
        with(base_share(13), "version_bits", "00000001".into()),
        "ntime",
        "00000000".into(),
    ));
    // Precedence: bad_version beats bad_ntime; bad_ntime beats duplicate.
    lines.push(with(
        with(base_share(14), "job_id", "new".into()),
        "version_bits",
        "00000001".into(),
    ));
    lines.push(with(base_share(15), "job_id", "new".into()));
    lines.push(with(
        with(base_share(16), "job_id", "new".into()),
        "ntime",
        "00000001".into(),
    ));
    // malformed beats unknown_job
    lines.push(with(
        with(base_share(17), "job_id", "nope".into()),
        "difficulty",
        json!(0),
    ));
    let vs = verify_values(&lines);
    let got: Vec<(u64, &str)> = vs
        .iter()
        .map(|v| (v["id"].as_u64().unwrap(), status(v)))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "accepted"),
            (2, "low_difficulty"),
            (3, "block"),
            (4, "low_difficulty"),
            (5, "duplicate"),
            (6, "unknown_job"),
            (7, "bad_version"),
            (8, "bad_ntime"),
            (9, "bad_ntime"),
            (10, "low_difficulty"),
            (11, "malformed"),
            (12, "stale"),
            (13, "stale"),
            (14, "bad_version"),
            (15, "block"),
            (16, "bad_ntime"),
            (17, "malformed"),
        ]
    );
    // Fields present exactly when they apply.
    for v in &vs {
        let hashed = matches!(status(v), "accepted" | "block" | "low_difficulty");
        assert_eq!(v.get("hash").is_some(), hashed, "{v}");
        assert_eq!(v.get("difficulty").is_some(), hashed, "{v}");
        assert_eq!(v.get("header").is_some(), status(v) == "block", "{v}");
        assert_eq!(v.get("error").is_some(), status(v) == "malformed", "{v}");
    }
}

#[test]
fn version_rolling_changes_the_hash_and_the_duplicate_key() {
    let vs = verify_values(&[
        genesis_job("g", true),
        with(base_share(1), "version_bits", "00002000".into()),
        with(base_share(2), "version_bits", "00004000".into()),
        with(base_share(3), "version_bits", "00002000".into()),
        base_share(4),
    ]);
    assert_eq!(status(&vs[0]), "low_difficulty");
    assert_eq!(status(&vs[1]), "low_difficulty");
    assert_ne!(vs[0]["hash"], vs[1]["hash"]);
    assert_eq!(status(&vs[2]), "duplicate");
    assert_eq!(status(&vs[3]), "block");
}

#[test]
fn duplicate_header_shares_ignore_hex_case() {
    let vs = audit_values(&[
        json!({"share": {"id": 1, "header": GENESIS_HEADER, "difficulty": 1}}),
        json!({"share": {"id": 2, "header": GENESIS_HEADER.to_uppercase(), "difficulty": 2}}),
    ]);
    assert_eq!(status(&vs[0]), "block");
    assert_eq!(status(&vs[1]), "duplicate");
}

#[test]
fn share_target_boundaries_are_inclusive() {
    // First learn the hash of a share on a job whose network target it cannot meet, then use
    // that hash, and that hash minus one, as explicit share targets.
    let mut hard = genesis_job("h", true);
    hard["job"]["nbits"] = "1703a30c".into();
    let mut probe = with(base_share(1), "job_id", "h".into());
    probe["share"].as_object_mut().unwrap().remove("difficulty");
    let probe = with(probe, "target", "f".repeat(64).into());
    let vs = verify_values(&[hard.clone(), probe.clone()]);
    assert_eq!(status(&vs[0]), "accepted");
    let hash = vs[0]["hash"].as_str().unwrap().to_string();
    let mut minus_one = sharecheck::wire::hex::decode(&hash).unwrap();
    for b in minus_one.iter_mut().rev() {
        let (v, borrow) = b.overflowing_sub(1);
        *b = v;
        if !borrow {
            break;
        }
    }
    let at = with(probe.clone(), "target", hash.to_uppercase().into());
    let below = with(
        probe,
        "target",
        sharecheck::wire::hex::encode(&minus_one).into(),
    );
    let vs = verify_values(&[hard.clone(), at]);
    assert_eq!(
        status(&vs[0]),
        "accepted",
        "hash equal to the target is accepted"
    );
    assert_eq!(vs[0]["hash"], hash);
    let vs = verify_values(&[hard, below]);
    assert_eq!(status(&vs[0]), "low_difficulty");
    // The genesis hash is below its network target (nbits 1d00ffff): a block whatever the
    // share target, even an impossible one.
    let mut tiny = base_share(2);
    tiny["share"].as_object_mut().unwrap().remove("difficulty");
    let tiny = with(tiny, "target", format!("{}1", "0".repeat(63)).into());
    let vs = verify_values(&[genesis_job("g", true), tiny]);
    assert_eq!(status(&vs[0]), "block");
}

#[test]
fn malformed_inputs_every_kind() {
    let cases: Vec<(Value, &str)> = vec![
        (
            with(base_share(1), "extranonce2", "zz".into()),
            "extranonce2",
        ),
        (
            with(base_share(1), "extranonce2", "abc".into()),
            "odd number",
        ),
        (with(base_share(1), "extranonce2", "".into()), "extranonce2"),
        (
            with(base_share(1), "extranonce2", "00".repeat(17).into()),
            "extranonce2",
        ),
        (
            with(base_share(1), "extranonce1", "00".repeat(17).into()),
            "extranonce1",
        ),
        (with(base_share(1), "nonce", "1234567".into()), "nonce"),
        (
            with(base_share(1), "nonce", 5.into()),
            "nonce must be a string",
        ),
        (with(base_share(1), "ntime", "123456789".into()), "ntime"),
        (
            with(base_share(1), "version_bits", "xyz".into()),
            "version_bits",
        ),
        (with(base_share(1), "difficulty", 0.into()), "difficulty"),
        (with(base_share(1), "difficulty", (-3).into()), "difficulty"),
        (with(base_share(1), "difficulty", "1".into()), "difficulty"),
        (
            with(base_share(1), "target", "00".repeat(32).into()),
            "not both",
        ),
        (
            with(base_share(1), "job_id", "x".repeat(33).into()),
            "job_id",
        ),
        (with(base_share(1), "job_id", "".into()), "job_id"),
        (with(base_share(1), "job_id", 7.into()), "job_id"),
        (json!({"share": {"id": 1, "job_id": "g"}}), "difficulty"),
        (
            json!({"share": {"id": 1, "difficulty": 1, "job_id": "g", "extranonce1": "00", "extranonce2": "00", "ntime": "495fab29"}}),
            "nonce",
        ),
        (
            json!({"share": {"id": 1, "header": "00", "difficulty": 1}}),
            "header",
        ),
        (
            json!({"share": {"id": 1, "header": GENESIS_HEADER, "target": "00".repeat(32)}}),
            "zero",
        ),
        (
            json!({"share": {"id": 1, "header": GENESIS_HEADER, "target": "ff"}}),
            "target",
        ),
        (
            json!({"share": {"id": 1, "header": GENESIS_HEADER, "difficulty": 1, "nonce": "00000000"}}),
            "header share",
        ),
        // an nbits inside a header that is not a valid compact target
        (
            json!({"share": {"id": 1, "header": format!("{}56349204{}", &GENESIS_HEADER[..144], &GENESIS_HEADER[152..]), "difficulty": 1}}),
            "nbits",
        ),
    ];
    let mut lines = vec![genesis_job("g", true)];
    lines.extend(cases.iter().map(|(v, _)| v.clone()));
    let vs = verify_values(&lines);
    assert_eq!(vs.len(), cases.len());
    for (v, (input, needle)) in vs.iter().zip(&cases) {
        assert_eq!(status(v), "malformed", "{input} -> {v}");
        assert_eq!(v["id"], 1);
        let err = v["error"].as_str().unwrap();
        assert!(
            err.contains(needle),
            "error {err:?} should mention {needle:?} for {input}"
        );
    }
}

#[test]
fn lines_without_a_usable_id() {
    let b = sharecheck::backend::open("cpu", 1).unwrap();
    let lines: Vec<String> = vec![
        "not json".into(),
        "[1,2]".into(),
        "42".into(),
        "{}".into(),
        r#"{"share": 5}"#.into(),
        r#"{"share": {"id": "7", "header": "00"}}"#.into(),
        r#"{"share": {"id": -1}}"#.into(),
        r#"{"share": {"id": 1.5}}"#.into(),
        r#"{"share": {}, "job": {}}"#.into(),
        "".into(),
        "   ".into(),
        "\u{feff}{\"x\": 1".into(),
    ];
    let vs = verify_lines(&lines, b.as_ref(), 4);
    assert_eq!(vs.len(), 10, "blank lines give no verdict: {vs:?}");
    for v in &vs {
        assert!(v["id"].is_null(), "{v}");
        assert_eq!(status(v), "malformed");
        assert!(!v["error"].as_str().unwrap().is_empty());
    }
}

#[test]
fn malformed_jobs_are_skipped_and_reported() {
    let mut bad_nbits = genesis_job("g", true);
    bad_nbits["job"]["nbits"] = "04923456".into();
    let mut bad_prev = genesis_job("g", true);
    bad_prev["job"]["prevhash"] = "00".into();
    let mut bad_branch = genesis_job("g", true);
    bad_branch["job"]["merkle_branch"] = json!(["00"]);
    let mut missing = genesis_job("g", true);
    missing["job"].as_object_mut().unwrap().remove("clean_jobs");
    let lines: Vec<String> = [bad_nbits, bad_prev, bad_branch, missing, base_share(1)]
        .iter()
        .map(|v| v.to_string())
        .chain(["{\"job\": 3}".to_string()])
        .collect();
    let b = sharecheck::backend::open("cpu:scalar", 1).unwrap();
    let mut reported = vec![];
    let mut out = vec![];
    let summary = sharecheck::verify::run(
        lines.join("\n").as_bytes(),
        &mut out,
        b.as_ref(),
        Default::default(),
        16,
        |line, msg| reported.push((line, msg.to_string())),
    )
    .unwrap();
    assert_eq!(
        reported.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 6]
    );
    assert!(reported[0].1.contains("nbits"), "{reported:?}");
    assert!(reported[1].1.contains("prevhash"), "{reported:?}");
    assert!(reported[2].1.contains("merkle_branch"), "{reported:?}");
    assert!(reported[3].1.contains("clean_jobs"), "{reported:?}");
    assert_eq!(summary.bad_jobs, 5);
    let v: Value = serde_json::from_slice(&out[..out.len() - 1]).unwrap();
    assert_eq!(status(&v), "unknown_job");
}

#[test]
fn verdicts_keep_input_order_across_batches() {
    let b = sharecheck::backend::open("cpu", 2).unwrap();
    let mut lines = vec![genesis_job("g", true).to_string()];
    for i in 0..1000u64 {
        lines.push(with(base_share(i), "extranonce2", format!("{:08x}", i).into()).to_string());
        if i % 97 == 0 {
            lines.push("garbage".into());
        }
    }
    for batch in [1, 3, 17, 1000] {
        let vs = verify_lines(&lines, b.as_ref(), batch);
        let ids: Vec<Option<u64>> = vs.iter().map(|v| v["id"].as_u64()).collect();
        let mut want = vec![];
        for i in 0..1000u64 {
            want.push(Some(i));
            if i % 97 == 0 {
                want.push(None);
            }
        }
        assert_eq!(ids, want, "batch {batch}");
    }
}

/// A job that states its extranonce slot (extranonce_size) gets `malformed` for a stratum
/// share whose extranonce1 + extranonce2 do not fill it exactly (SRI's bad-extranonce-size),
/// before any other check; a job that does not state it takes any length; a size outside
/// 1–32 makes the job unusable.
#[test]
fn extranonce_sizes_are_bound_by_the_job() {
    let mut sized = genesis_job("g", true);
    sized["job"]["extranonce_size"] = json!(8);
    let mut unsized_ = genesis_job("u", false);
    unsized_["job"]["extranonce_size"] = Value::Null;
    let mut bad = genesis_job("b", false);
    bad["job"]["extranonce_size"] = json!(33);
    let lines = vec![
        sized,
        unsized_,
        bad,
        base_share(1), // 4 + 4: the genesis block
        with(base_share(2), "extranonce2", "0000000000".into()), // 4 + 5
        with(
            with(base_share(3), "extranonce2", "00".into()),
            "job_id",
            "nope".into(),
        ),
        with(
            with(base_share(4), "extranonce2", "0000000000".into()),
            "job_id",
            "u".into(),
        ),
        with(base_share(5), "job_id", "b".into()),
    ];
    let vs = verify_values(&lines);
    assert_eq!(status(&vs[0]), "block");
    assert_eq!(status(&vs[1]), "malformed");
    assert!(
        vs[1]["error"]
            .as_str()
            .unwrap()
            .contains("are 9 bytes, not the job's extranonce_size"),
        "{}",
        vs[1]
    );
    assert_eq!(status(&vs[2]), "unknown_job", "no job, no size to check");
    assert_ne!(status(&vs[3]), "malformed", "{}", vs[3]);
    assert_eq!(
        status(&vs[4]),
        "unknown_job",
        "a job with extranonce_size 33 is unusable"
    );
}
