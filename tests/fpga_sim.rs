//! The FPGA design, simulated by Verilator behind the same two byte streams as a card, driven
//! by the real host backend and checked against the Rust scalar reference.

mod common;
use sharecheck::backend::fpga::{work_record, FpgaBackend, FpgaConfig, RESULT_RECORD, WORK_RECORD};
use sharecheck::backend::Backend;
use sharecheck::model::target::{target_from_compact, U256};
use sharecheck::model::validate::reference_hash;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the simulator (once; the script skips an up-to-date build).
fn simulator() -> PathBuf {
    let out = root().join("target/fpga-sim/sharecheck-fpga-sim");
    let st = Command::new(root().join("hardware/sim/build.sh"))
        .arg(&out)
        .status()
        .expect("run hardware/sim/build.sh");
    assert!(
        st.success(),
        "building the Verilator model failed (is verilator installed?)"
    );
    out
}

struct Card {
    child: Child,
    dir: PathBuf,
}

impl Card {
    fn start(name: &str) -> Card {
        let sim = simulator();
        let dir =
            std::env::temp_dir().join(format!("sharecheck-fpga-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for p in ["h2c", "c2h"] {
            let st = Command::new("mkfifo").arg(dir.join(p)).status().unwrap();
            assert!(st.success());
        }
        let child = Command::new(sim)
            .arg(dir.join("h2c"))
            .arg(dir.join("c2h"))
            .spawn()
            .unwrap();
        Card { child, dir }
    }

    fn config(&self) -> FpgaConfig {
        fifo_config(&self.dir, 5000)
    }
}

impl Drop for Card {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fifo_config(dir: &Path, timeout_ms: u64) -> FpgaConfig {
    FpgaConfig {
        h2c: dir.join("h2c"),
        c2h: dir.join("c2h"),
        timeout_ms,
    }
}

/// The testbench: raw work records with real share targets straight through the streams;
/// id, digest and both flags checked against the scalar reference.
#[test]
fn rtl_matches_the_reference_on_raw_records() {
    let card = Card::start("raw");
    let cfg = card.config();
    let mut h2c = std::fs::OpenOptions::new()
        .write(true)
        .open(&cfg.h2c)
        .unwrap();
    let mut c2h = std::fs::File::open(&cfg.c2h).unwrap();
    let fx = sharecheck::bench::header_fixture(300, 21);
    let mut headers: Vec<[u8; 80]> = fx.tasks.iter().map(|t| t.data).collect();
    headers[0] = sharecheck::wire::hex::decode(common::GENESIS_HEADER)
        .unwrap()
        .try_into()
        .unwrap();
    // An easy network target in some headers so that the network flag is exercised both ways.
    for h in headers.iter_mut().skip(1).step_by(3) {
        h[72..76].copy_from_slice(&0x2100_ffffu32.to_le_bytes());
    }
    let targets: Vec<U256> = (0..headers.len())
        .map(|i| match i % 4 {
            0 => U256::MAX,
            1 => U256::ZERO,
            2 => U256([0, 0, 0, 1 << 63]),
            _ => U256([u64::MAX, u64::MAX, u64::MAX, (1 << 63) - 1]),
        })
        .collect();
    let mut work = vec![];
    for (i, (h, t)) in headers.iter().zip(&targets).enumerate() {
        work.extend_from_slice(&work_record(1000 + i as u64, h, t));
    }
    assert_eq!(work.len(), headers.len() * WORK_RECORD);
    let writer = std::thread::spawn(move || h2c.write_all(&work).unwrap());
    let mut out = vec![0u8; headers.len() * RESULT_RECORD];
    c2h.read_exact(&mut out).unwrap();
    writer.join().unwrap();
    let mut blocks = 0;
    for (i, rec) in out.chunks_exact(RESULT_RECORD).enumerate() {
        let words = sharecheck::model::job::header_words_from_bytes(&headers[i]);
        let want = sharecheck::sha256::soft::sha256d_80(&words);
        let hash = U256::from_hash_state(&want);
        let net = target_from_compact(u32::from_le_bytes(headers[i][72..76].try_into().unwrap()))
            .unwrap();
        assert_eq!(
            u64::from_le_bytes(rec[..8].try_into().unwrap()),
            1000 + i as u64
        );
        assert_eq!(
            &rec[16..48],
            &sharecheck::sha256::soft::state_to_bytes(&want),
            "digest {i}"
        );
        let flags = (hash <= targets[i]) as u8 | (((hash <= net) as u8) << 1);
        assert_eq!(rec[8], flags, "flags of record {i}");
        assert!(rec[9..16].iter().chain(&rec[48..]).all(|&b| b == 0));
        blocks += (hash <= net) as usize;
    }
    assert!(blocks > 50, "network flag exercised ({blocks} blocks)");
}

/// The host backend over the simulated card: stratum and header shares, odd batch sizes,
/// several batches over one connection.
#[test]
fn backend_matches_the_reference() {
    let card = Card::start("backend");
    let b = FpgaBackend::new(card.config()).unwrap();
    let fx = sharecheck::bench::stratum_fixture(700, 3);
    let hx = sharecheck::bench::header_fixture(700, 4);
    for n in [1, 2, 17, 255, 257, 700] {
        for f in [&fx, &hx] {
            let mut out = vec![[0u32; 8]; n];
            b.hash(&f.jobs, &f.tasks[..n], &mut out).unwrap();
            for (i, o) in out.iter().enumerate() {
                assert_eq!(*o, reference_hash(&f.jobs, &f.tasks[i]), "share {i} of {n}");
            }
        }
    }
}

/// `verify` with the FPGA backend gives the CPU's verdicts on a generated workload of every
/// kind of share (stratum, header, SV2 standard, SV2 extended).
#[test]
fn verify_through_the_card_matches_cpu() {
    let card = Card::start("verify");
    let b = FpgaBackend::new(card.config()).unwrap();
    let cfg = sharecheck::gen::GenConfig {
        shares: 1500,
        seed: 8,
        mode: sharecheck::gen::GenMode::All,
        accepted: 0.6,
        blocks: 0.02,
        rejects: 0.2,
        ..Default::default()
    };
    let mut out = Vec::new();
    sharecheck::gen::generate(&cfg, &mut out).unwrap();
    let lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let cpu = sharecheck::backend::open("cpu:scalar", 1).unwrap();
    let want = common::verify_lines(&lines, cpu.as_ref(), 256);
    assert_eq!(common::verify_lines(&lines, &b, 256), want);
    assert!(want.iter().any(|v| v["status"] == "block"));
    assert!(lines.iter().any(|l| l.contains("\"sv2_standard\"")));
}

/// No card: a clear error within the time-out, not a hang.
#[test]
fn missing_or_lost_card_is_an_error() {
    let dir = std::env::temp_dir().join(format!("sharecheck-fpga-none-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let e = FpgaBackend::new(fifo_config(&dir, 300))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
    for p in ["h2c", "c2h"] {
        Command::new("mkfifo").arg(dir.join(p)).status().unwrap();
    }
    let t = std::time::Instant::now();
    let e = FpgaBackend::new(fifo_config(&dir, 300))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("did not open"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
    std::fs::remove_dir_all(&dir).unwrap();

    // A card that dies mid-run: the next batch is an error, not a wrong hash.
    let mut card = Card::start("lost");
    let b = FpgaBackend::new(fifo_config(&card.dir, 1000)).unwrap();
    let fx = sharecheck::bench::header_fixture(64, 5);
    let mut out = vec![[0u32; 8]; 64];
    b.hash(&fx.jobs, &fx.tasks, &mut out).unwrap();
    card.child.kill().unwrap();
    card.child.wait().unwrap();
    assert!(b.hash(&fx.jobs, &fx.tasks, &mut out).is_err());
}

/// `sharecheck verify --backend fpga` (the config names the simulator's pipes) prints the
/// CPU's verdicts.
#[test]
fn cli_verify_backend_fpga() {
    let card = Card::start("cli");
    let cfg_path = card.dir.join("fpga.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[backend.fpga]\nh2c = {:?}\nc2h = {:?}\n",
            card.dir.join("h2c"),
            card.dir.join("c2h")
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_sharecheck");
    let gen = Command::new(bin)
        .args([
            "gen", "--shares", "800", "--mode", "mixed", "--blocks", "0.02", "--seed", "4",
        ])
        .output()
        .unwrap();
    assert!(gen.status.success());
    let input = card.dir.join("in.jsonl");
    std::fs::write(&input, &gen.stdout).unwrap();
    let run = |backend: &str| {
        let o = Command::new(bin)
            .args([
                "--config",
                cfg_path.to_str().unwrap(),
                "verify",
                "--backend",
                backend,
            ])
            .arg(&input)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8(o.stderr).unwrap(),
        )
    };
    let (fpga, err) = run("fpga");
    assert!(err.contains("[fpga"), "{err}");
    let (cpu, _) = run("cpu");
    assert_eq!(fpga, cpu);
}

/// Through backend selection the card sits behind the CPU fallback: when it is lost mid-run,
/// the batch is redone on the CPU and every verdict is still right.
#[test]
fn lost_card_falls_back_to_the_cpu() {
    let mut card = Card::start("fallback");
    let opts = sharecheck::backend::Options {
        kind: sharecheck::backend::BackendKind::Fpga,
        threads: 1,
        fpga: fifo_config(&card.dir, 1000),
        ..Default::default()
    };
    let b = sharecheck::backend::open_with(&opts).unwrap();
    let fx = sharecheck::bench::stratum_fixture(300, 9);
    let mut out = vec![[0u32; 8]; 300];
    b.hash(&fx.jobs, &fx.tasks, &mut out).unwrap();
    card.child.kill().unwrap();
    card.child.wait().unwrap();
    let mut out2 = vec![[0u32; 8]; 300];
    b.hash(&fx.jobs, &fx.tasks, &mut out2).unwrap();
    for (i, (a, c)) in out.iter().zip(&out2).enumerate() {
        let want = reference_hash(&fx.jobs, &fx.tasks[i]);
        assert_eq!(*a, want);
        assert_eq!(*c, want);
    }
}
