//! The `sharecheck` binary as a user runs it.

use std::io::Write;
use std::process::{Command, Stdio};

fn sharecheck(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sharecheck"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn gen_is_deterministic_and_verify_meets_its_expectations() {
    for mode in sharecheck::gen::MODE_NAMES {
        let args = [
            "gen", "--shares", "1500", "--seed", "42", "--mode", mode, "--blocks", "0.01",
        ];
        let (code, a, _) = sharecheck(&args, b"");
        assert_eq!(code, 0);
        let (_, b, _) = sharecheck(&args, b"");
        assert_eq!(a, b, "same seed, same output");
        let (_, c, _) = sharecheck(
            &["gen", "--shares", "1500", "--seed", "43", "--mode", mode],
            b"",
        );
        assert_ne!(a, c, "another seed, another output");
        let (code, verdicts, err) = sharecheck(&["verify", "--backend", "cpu"], a.as_bytes());
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("1500 shares"), "summary on stderr: {err}");
        let expect: Vec<String> = a
            .lines()
            .filter_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["share"]["expect"].as_str().map(str::to_string)
            })
            .collect();
        let got: Vec<String> = verdicts
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["status"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(got, expect, "mode {mode}");
        // Every status, for every kind of share (header and SV2 standard shares included:
        // they are judged against their standard jobs, so stale, unknown_job, bad_ntime and
        // bad_version reach them too).
        for status in sharecheck::model::Status::ALL {
            assert!(
                got.iter().any(|s| s == status.as_str()),
                "mode {mode} has {status}"
            );
        }
        let kinds = ["\"sv2_standard\"", "\"sv2_extended\"", "\"header\""];
        let has = kinds.map(|k| a.contains(k));
        let want = match mode {
            "sv2-standard" => [true, false, false],
            "sv2-extended" => [false, true, false],
            "header" | "mixed" => [false, false, true],
            "all" => [true, true, true],
            _ => [false, false, false],
        };
        assert_eq!(has, want, "mode {mode}: share kinds");
    }
}

#[test]
fn gen_fractions_are_respected() {
    let (_, out, _) = sharecheck(
        &[
            "gen",
            "--shares",
            "4000",
            "--accepted",
            "0.5",
            "--rejects",
            "0.3",
            "--blocks",
            "0",
            "--reject-mix",
            "0,0,0,0,0,1",
        ],
        b"",
    );
    let mut counts = std::collections::HashMap::new();
    for l in out.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if let Some(e) = v["share"]["expect"].as_str() {
            *counts.entry(e.to_string()).or_insert(0) += 1;
        }
    }
    let frac = |k: &str| *counts.get(k).unwrap_or(&0) as f64 / 4000.0;
    assert!((frac("accepted") - 0.5).abs() < 0.03, "{counts:?}");
    assert!((frac("malformed") - 0.3).abs() < 0.03, "{counts:?}");
    assert!((frac("low_difficulty") - 0.2).abs() < 0.03, "{counts:?}");
    assert_eq!(frac("duplicate") + frac("stale") + frac("block"), 0.0);
}

#[test]
fn verify_reads_files_and_reports_bad_jobs() {
    let dir = std::env::temp_dir().join(format!("sharecheck-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("in.jsonl");
    std::fs::write(&f, "{\"job\": {\"job_id\": \"x\"}}\n{\"share\": {\"id\": 3, \"header\": \"00\", \"difficulty\": 1}}\nnope\n").unwrap();
    let (code, out, err) = sharecheck(&["verify", f.to_str().unwrap()], b"");
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2);
    assert!(
        out.starts_with("{\"id\":3,\"status\":\"malformed\""),
        "{out}"
    );
    assert!(err.contains("line 1: job skipped"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn clear_errors() {
    let (code, _, err) = sharecheck(&["verify", "--backend", "gpu9"], b"");
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown backend") && err.contains("cpu:sha-ni"),
        "{err}"
    );
    let (code, _, err) = sharecheck(&["verify", "--backend", "cpu:mmx"], b"");
    assert_eq!(code, 2);
    assert!(err.contains("mmx"), "{err}");
    let (code, _, err) = sharecheck(&["verify", "/nonexistent/file"], b"");
    assert_eq!(code, 2);
    assert!(err.contains("cannot open /nonexistent/file"), "{err}");
    let (code, _, err) = sharecheck(&["--config", "/nonexistent.toml", "verify"], b"");
    assert_eq!(code, 2);
    assert!(err.contains("cannot read config"), "{err}");
    let (code, _, err) = sharecheck(&["verify", "--batch", "0"], b"");
    assert_eq!(code, 2);
    assert!(err.contains("max_shares"), "{err}");
    // The default config balances with Kafka: no broker or ZooKeeper is asked.
    let (code, _, err) = sharecheck(&["cluster", "status"], b"");
    assert_eq!(code, 2);
    assert!(err.contains("balance.mode = \"zookeeper\""), "{err}");
}

#[test]
fn config_file_is_read_and_flags_override_it() {
    let dir = std::env::temp_dir().join(format!("sharecheck-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("c.toml");
    std::fs::write(&f, "[backend]\nkind = \"cpu:scalar\"\n").unwrap();
    let (code, _, err) = sharecheck(&["--config", f.to_str().unwrap(), "verify"], b"");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("[cpu:scalar]"), "{err}");
    let (_, _, err) = sharecheck(
        &[
            "--config",
            f.to_str().unwrap(),
            "verify",
            "--backend",
            "cpu",
        ],
        b"",
    );
    assert!(
        !err.contains("[cpu:scalar]") || sharecheck::sha256::available() == ["scalar"],
        "{err}"
    );
    std::fs::write(&f, "[backend]\nkind = 3\n").unwrap();
    let (code, _, err) = sharecheck(&["--config", f.to_str().unwrap(), "verify"], b"");
    assert_eq!(code, 2);
    assert!(err.contains("c.toml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bench_json_lines() {
    let (code, out, err) = sharecheck(
        &[
            "bench",
            "--json",
            "--batch",
            "64",
            "--threads",
            "1",
            "--seconds",
            "0.02",
            "--backend",
            "cpu:scalar",
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    let figs: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = figs
        .iter()
        .map(|f| f["backend"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "cpu:scalar",
            "whole:cpu:scalar",
            "baseline:sha2",
            "baseline:rust-bitcoin",
            "cpu:scalar",
            "whole:cpu:scalar",
            "baseline:sha2",
            "baseline:rust-bitcoin",
            "cpu:scalar",
            "whole:cpu:scalar",
            "whole-sv2x:cpu:scalar",
            "baseline:sha2",
            "baseline:rust-bitcoin"
        ]
    );
    for f in &figs {
        assert!(f["shares_per_sec"].as_f64().unwrap() > 0.0);
        assert!(["header", "standard", "stratum"].contains(&f["mode"].as_str().unwrap()));
        assert!(f["batch"].as_u64().unwrap() > 0 && f["threads"].as_u64().unwrap() == 1);
    }
}

#[test]
fn a_line_that_is_not_utf8_is_a_malformed_verdict_and_the_rest_is_judged() {
    let (code, input, _) = sharecheck(&["gen", "--shares", "50", "--seed", "9"], b"");
    assert_eq!(code, 0);
    let (_, want, _) = sharecheck(&["verify"], input.as_bytes());
    let mut lines: Vec<Vec<u8>> = input.lines().map(|l| l.as_bytes().to_vec()).collect();
    // Line 4: a share line with two bytes that are not UTF-8 in it.
    lines.insert(3, b"{\"share\": {\"id\": 1\xff\xfe}}".to_vec());
    let mut bad = lines.join(&b"\n"[..]);
    bad.push(b'\n');
    let mut child = Command::new(env!("CARGO_BIN_EXE_sharecheck"))
        .arg("verify")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bad).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = String::from_utf8(out.stdout).unwrap();
    let mut got: Vec<&str> = got.lines().collect();
    let at = got
        .iter()
        .position(|l| l.contains("line 4 is not UTF-8"))
        .unwrap_or_else(|| panic!("no verdict names line 4:\n{}", got.join("\n")));
    assert!(got[at].contains("\"malformed\""), "{}", got[at]);
    got.remove(at);
    assert_eq!(
        got,
        want.lines().collect::<Vec<_>>(),
        "the other lines as without it"
    );
}

/// With no broker at kafka.brokers, every Kafka command ends within the probe's 10 s in one
/// line that names the brokers, the connection's error and the right hint (not a missing
/// topic), instead of hundreds of librdkafka lines and waits of 10 to 60 s.
#[test]
fn an_unreachable_broker_is_one_line_within_the_probe_wait() {
    // A port nothing listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let brokers = format!("127.0.0.1:{port}");
    for cmd in [
        &["run"][..],
        &["send", "/dev/null"],
        &["receive", "--count", "1"],
        &["topics", "create"],
    ] {
        let mut args = vec!["--brokers", &brokers];
        args.extend_from_slice(cmd);
        let t0 = std::time::Instant::now();
        let (code, _, err) = sharecheck(&args, b"");
        let took = t0.elapsed().as_secs_f64();
        let lines: Vec<&str> = err.lines().collect();
        assert_ne!(code, 0, "{cmd:?}");
        assert!(
            lines.len() == 1
                && lines[0].contains(&format!("no Kafka broker at {brokers} answered"))
                && lines[0].contains("Connection refused")
                && lines[0].contains("scripts/services.sh up"),
            "{cmd:?}: {err}"
        );
        assert!((9.0..20.0).contains(&took), "{cmd:?} took {took:.1} s");
    }
}

/// `backends` outside a login session (no XDG_RUNTIME_DIR, as under a service manager or in a
/// container): Mesa's drivers are listed without libwayland's "XDG_RUNTIME_DIR is invalid"
/// line per adapter.
#[test]
fn backends_prints_no_wayland_noise_without_a_runtime_dir() {
    let out = Command::new(env!("CARGO_BIN_EXE_sharecheck"))
        .args(["backends"])
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{err}");
    assert!(table.contains("wgpu"), "{table}");
    assert!(!err.contains("XDG_RUNTIME_DIR"), "stderr: {err}");
}
