//! TLS to ZooKeeper, against a real ZooKeeper of the test's own (scripts/zookeeper.sh with
//! ZK_TLS=1 and ZK_AUTH=digest: TLS only, a client certificate required, digest credentials
//! required) and the shared Kafka broker: a node joins over TLS, owns the partitions and
//! validates shares, and `cluster status` reads the group over TLS; a client with another CA,
//! one without a client certificate and a plaintext one are refused within bounded times,
//! each with one line that says why.

mod kafka_support;
use kafka_support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

/// A ZooKeeper server of the test's own, started by scripts/zookeeper.sh with TLS (and
/// `ZK_AUTH`); stopped and deleted when dropped.
struct OwnZookeeper {
    port: u16,
    dir: PathBuf,
}

impl OwnZookeeper {
    fn start(env: &[(&str, &str)]) -> OwnZookeeper {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("sharecheck-zk-tls-{}-{port}", std::process::id()));
        let z = OwnZookeeper { port, dir };
        let out = z.script("up").envs(env.iter().copied()).output().unwrap();
        assert!(
            out.status.success(),
            "scripts/zookeeper.sh up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        z
    }

    fn script(&self, arg: &str) -> Command {
        let mut c =
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/zookeeper.sh"));
        c.arg(arg)
            .env("SHARECHECK_SERVICES_DIR", &self.dir)
            .env("ZK_PORT", self.port.to_string());
        c
    }
}

impl Drop for OwnZookeeper {
    fn drop(&mut self) {
        let _ = self.script("down").arg("--purge").output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `cluster status --json` with the config file `config`: the status, or stderr.
fn status(config: &Path) -> Result<Value, String> {
    cluster_status(config, &[])
}

/// `env`'s config with the [balance] lines `fragment` replaced by `other`, as another file.
fn variant(env: &Env, fragment: &str, other: &str, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(&env.config).unwrap();
    assert!(text.contains(fragment));
    let p = env.dir.join(format!("{name}.toml"));
    std::fs::write(&p, text.replace(fragment, other)).unwrap();
    p
}

/// `cluster status` with `config` fails within `limit`: its error line and how long it took.
/// With `alone`, that line is all it prints (no log lines of retries before it).
fn refused(config: &Path, limit: Duration, alone: bool) -> (String, Duration) {
    let t0 = Instant::now();
    let e = status(config).expect_err("cluster status succeeded");
    let took = t0.elapsed();
    assert!(took < limit, "refused only after {took:?}: {e}");
    let lines: Vec<&str> = e.trim_end().lines().collect();
    if alone {
        assert_eq!(lines.len(), 1, "{e}");
    }
    let last = lines.last().copied().unwrap_or_default();
    assert!(last.starts_with("sharecheck: error: "), "{e}");
    (last.to_string(), took)
}

#[test]
fn a_node_joins_and_cluster_status_reads_over_tls_and_other_clients_are_refused() {
    let zk = OwnZookeeper::start(&[("ZK_TLS", "1"), ("ZK_AUTH", "digest")]);
    let fragment = std::fs::read_to_string(zk.dir.join("zookeeper/client.toml"))
        .expect("scripts/zookeeper.sh writes client.toml with ZK_TLS=1");
    for key in [
        "zookeeper_tls = true",
        "zookeeper_ca_file",
        "zookeeper_cert_file",
        "zookeeper_key_file",
        "zookeeper_auth_file",
    ] {
        assert!(
            fragment.contains(key),
            "{key} not in client.toml:\n{fragment}"
        );
    }
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let group = format!("t{}-tls-{:x}", std::process::id(), nanos & 0xffff_ffff);
    let extra = format!(
        "[balance]\nmode = \"zookeeper\"\nzookeeper = \"127.0.0.1:{}\"\ngroup = \"{group}\"\n\
         session_timeout_ms = 6000\n{fragment}",
        zk.port
    );
    let env = Env::with_partitions("tls", &extra, 2);
    let log_a = env.dir.join("a.log");
    let mut a = env.cmd(&["run", "--node-id", "a", "--capacity", "1000"]);
    a.env_remove("SHARECHECK_ZOOKEEPER_AUTH")
        .stderr(std::fs::File::create(&log_a).unwrap());
    // A Proc kills the node when dropped, also when an assertion fails.
    let _node = Proc {
        child: a.spawn().unwrap(),
        log: log_a.clone(),
    };
    let log = || std::fs::read_to_string(&log_a).unwrap_or_default();

    // The node joins over TLS and owns both partitions; `cluster status` reads it over TLS.
    let t0 = Instant::now();
    let mut last = String::new();
    while t0.elapsed() < Duration::from_secs(60) {
        match status(&env.config) {
            Ok(s) if owned_by(&s, "a") == 2 => break,
            Ok(s) => last = s.to_string(),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let joined = t0.elapsed();
    let s = status(&env.config).unwrap_or_else(|e| panic!("{e}\n{}", log()));
    assert_eq!(owned_by(&s, "a"), 2, "{last}\n{}", log());
    assert!(
        !log().contains("without authentication"),
        "the node warned it had no credentials:\n{}",
        log()
    );

    // It validates shares as always.
    let file = env.gen("s.jsonl", &["--shares", "200", "--seed", "7"]);
    env.send(&file, &[]);
    let got = env.receive(200, 60, &[]);
    assert_eq!(got.len(), 200);

    let limit = Duration::from_secs(25);
    // Another CA: the server's certificate is not trusted.
    let other_ca = env.dir.join("other-ca");
    std::fs::create_dir_all(&other_ca).unwrap();
    let out = Command::new("openssl")
        .current_dir(&other_ca)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
        ])
        .args(["-out", "ca.pem", "-days", "1", "-subj", "/CN=another CA"])
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ca_line = fragment
        .lines()
        .find(|l| l.starts_with("zookeeper_ca_file"))
        .unwrap();
    let wrong_ca = variant(
        &env,
        &fragment,
        &fragment.replace(
            ca_line,
            &format!(
                "zookeeper_ca_file = \"{}\"",
                other_ca.join("ca.pem").display()
            ),
        ),
        "wrong-ca",
    );
    let (wrong_ca_line, wrong_ca_took) = refused(&wrong_ca, limit, true);
    assert!(
        wrong_ca_line.contains("TLS") && wrong_ca_line.contains("certificate is not signed"),
        "{wrong_ca_line}"
    );

    // No client certificate: the server (ssl.clientAuth=need) refuses the handshake.
    let no_identity: String = fragment
        .lines()
        .filter(|l| !l.starts_with("zookeeper_cert_file") && !l.starts_with("zookeeper_key_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (no_identity_line, no_identity_took) = refused(
        &variant(&env, &fragment, &no_identity, "no-identity"),
        limit,
        true,
    );
    assert!(
        no_identity_line.contains("TLS") && no_identity_line.contains("client certificate"),
        "{no_identity_line}"
    );

    // Plaintext to the TLS port: `cluster status`, and a bare client. (The client library
    // logs each retry at warn level, as it does for any plaintext server that drops it.)
    let plaintext: String = fragment
        .lines()
        .filter(|l| l.starts_with("zookeeper_auth_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (plain_line, plain_took) = refused(
        &variant(&env, &fragment, &plaintext, "plaintext"),
        limit,
        false,
    );
    assert!(
        plain_line.contains("balance.zookeeper_tls = true"),
        "{plain_line}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t0 = Instant::now();
    let bare = rt.block_on(async {
        tokio::time::timeout(
            limit,
            zookeeper_client::Client::connector()
                .with_session_timeout(Duration::from_secs(6))
                .connect(&format!("127.0.0.1:{}", zk.port)),
        )
        .await
    });
    let bare_took = t0.elapsed();
    assert!(
        matches!(bare, Ok(Err(_))),
        "a plaintext client got {:?} after {bare_took:?}",
        bare.map(|r| r.map(|_| ()))
    );

    // The node kept its partitions all along.
    let s = status(&env.config).unwrap();
    assert_eq!(owned_by(&s, "a"), 2, "{s}");
    report(&format!(
        "zookeeper TLS (ZK_TLS=1 with ZK_AUTH=digest, client certificate required): the node \
         owned 2 of 2 partitions {:.1} s after start and validated 200 of 200 shares; refused: \
         another CA in {:.1} s, no client certificate in {:.1} s, plaintext `cluster status` in \
         {:.1} s, a bare plaintext client in {:.1} s",
        joined.as_secs_f64(),
        wrong_ca_took.as_secs_f64(),
        no_identity_took.as_secs_f64(),
        plain_took.as_secs_f64(),
        bare_took.as_secs_f64()
    ));
    report(&format!("zookeeper TLS, another CA: {wrong_ca_line}"));
    report(&format!(
        "zookeeper TLS, no client certificate: {no_identity_line}"
    ));
    report(&format!("zookeeper TLS, plaintext client: {plain_line}"));
}
