//! Helpers for the tests against a real Kafka broker: the broker is started with
//! scripts/kafka.sh (a no-op when it runs already), every test gets its own topics and
//! consumer group, and the real `sharecheck` binary runs as node, sender and receiver.
//!
//! The shared broker listens on 127.0.0.1:$KAFKA_PORT (default 9092), its state under
//! $SHARECHECK_SERVICES_DIR, exactly as scripts/kafka.sh reads them. A test that stops and
//! restarts a broker runs one of its own ([`OwnBroker`]) so that the others are not disturbed.
#![allow(dead_code)]

pub mod kdc;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Records a figure a test measured (repeats after a crash, shutdown times, ...): on stderr,
/// and appended to `test-reports.txt` in cargo's scratch directory for integration tests
/// (`target/tmp`), which `scripts/test.sh` prints after the run. `cargo test` shows a passing
/// test's stderr only with `--nocapture`, and these figures matter when the tests pass.
pub fn report(line: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let over = if secured().is_some() {
        "over SASL_SSL: "
    } else {
        ""
    };
    let line = &format!("{over}{line}");
    eprintln!("{line}");
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-reports.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{test}: {line}");
    }
}

/// The broker the tests use: SHARECHECK_TEST_BROKERS, else the one scripts/kafka.sh starts
/// (127.0.0.1:KAFKA_PORT, default 9092).
pub fn brokers() -> &'static str {
    static B: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    B.get_or_init(|| {
        std::env::var("SHARECHECK_TEST_BROKERS").unwrap_or_else(|_| {
            let port = std::env::var("KAFKA_PORT").unwrap_or_else(|_| "9092".into());
            format!("127.0.0.1:{port}")
        })
    })
}

/// A secured listener the tests run over instead of plaintext: SHARECHECK_TEST_KAFKA_CLIENT
/// names a client.toml as `KAFKA_SECURITY=sasl_ssl scripts/kafka.sh up` writes it, and
/// SHARECHECK_TEST_BROKERS that listener (scripts/test.sh runs the e2e, dead-letter and
/// kill -9 tests so). Every [`Env`] on the shared broker then carries the fragment in its
/// config, and the test's own clients (readers, raw producers) its settings.
pub struct Secured {
    /// The TOML fragment (`[kafka.client]`, `[kafka.secret_files]`).
    pub fragment: String,
    /// librdkafka settings for the test's own clients, the secret files read.
    pub client: Vec<(String, String)>,
}

/// The secured listener's settings, if the tests run over one.
pub fn secured() -> Option<&'static Secured> {
    static S: std::sync::OnceLock<Option<Secured>> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let path = std::env::var_os("SHARECHECK_TEST_KAFKA_CLIENT")?;
        Some(Secured::read(Path::new(&path)))
    })
    .as_ref()
}

impl Secured {
    /// A client.toml as scripts/kafka.sh writes it.
    pub fn read(path: &Path) -> Secured {
        let fragment = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("client settings {path:?}: {e}"));
        let table: toml::Table = fragment.parse().expect("client.toml is TOML");
        let kafka = &table["kafka"];
        let mut client: Vec<(String, String)> = kafka["client"]
            .as_table()
            .expect("[kafka.client]")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("a string").to_string()))
            .collect();
        if let Some(files) = kafka.get("secret_files").and_then(|f| f.as_table()) {
            for (k, v) in files {
                let text = std::fs::read_to_string(v.as_str().expect("a path")).unwrap();
                client.push((k.clone(), text.trim().to_string()));
            }
        }
        Secured { fragment, client }
    }
}

/// The ZooKeeper the tests use: SHARECHECK_TEST_ZK, else the one scripts/zookeeper.sh starts
/// (127.0.0.1:ZK_PORT, default 2181).
pub fn zookeeper() -> &'static str {
    static Z: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    Z.get_or_init(|| {
        std::env::var("SHARECHECK_TEST_ZK").unwrap_or_else(|_| {
            let port = std::env::var("ZK_PORT").unwrap_or_else(|_| "2181".into());
            format!("127.0.0.1:{port}")
        })
    })
}

/// Starts the local ZooKeeper once per test process.
pub fn ensure_zookeeper() {
    static UP: Once = Once::new();
    UP.call_once(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/zookeeper.sh");
        let out = Command::new(script)
            .arg("up")
            .output()
            .expect("run scripts/zookeeper.sh up");
        assert!(
            out.status.success(),
            "scripts/zookeeper.sh up failed (Debian's zookeeper package is needed):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

fn kafka_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh")
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sharecheck")
}

/// `sharecheck --config config cluster status --json` with the environment `envs` (and
/// neither SHARECHECK_ZOOKEEPER_AUTH nor RUST_LOG from the test's own), or its stderr.
pub fn cluster_status(config: &Path, envs: &[(&str, &str)]) -> Result<Value, String> {
    let mut c = Command::new(bin());
    c.arg("--config")
        .arg(config)
        .args(["cluster", "status", "--json"])
        .env_remove("SHARECHECK_ZOOKEEPER_AUTH")
        .env_remove("RUST_LOG");
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("one JSON object"))
}

/// How many partitions a `cluster status --json` shows owned by `node`.
pub fn owned_by(s: &Value, node: &str) -> usize {
    s["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["owner"] == node)
        .count()
}

/// Starts the local broker once per test process.
pub fn ensure_broker() {
    static UP: Once = Once::new();
    UP.call_once(|| {
        let out = Command::new(kafka_script())
            .arg("up")
            .output()
            .expect("run scripts/kafka.sh up");
        assert!(
            out.status.success(),
            "scripts/kafka.sh up failed (Java 17+ and Maven are needed):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// A broker of the test's own, on free ports and in its own services directory, for tests
/// that stop and restart it. Stopped and deleted when dropped, also when the test fails.
pub struct OwnBroker {
    pub port: u16,
    pub dir: PathBuf,
    /// More environment for scripts/kafka.sh (a SASL_SSL listener, ...).
    env: Vec<(String, String)>,
}

impl OwnBroker {
    pub fn start(name: &str) -> OwnBroker {
        OwnBroker::start_with(name, &[])
    }

    /// [`OwnBroker::start`] with more environment for scripts/kafka.sh.
    pub fn start_with(name: &str, env: &[(&str, &str)]) -> OwnBroker {
        // The shared broker resolves the distribution once (under its lock); this one reuses
        // that cache instead of resolving it again.
        ensure_broker();
        let port = free_port_pair();
        let dir = std::env::temp_dir().join(format!(
            "sharecheck-broker-{}-{name}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let b = OwnBroker { port, dir, env };
        b.run("up");
        b
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn command(&self, arg: &str) -> Command {
        let shared = std::env::var_os("SHARECHECK_SERVICES_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/sharecheck")
            });
        let mut c = Command::new(kafka_script());
        c.arg(arg)
            .env("SHARECHECK_SERVICES_DIR", &self.dir)
            .env("KAFKA_PORT", self.port.to_string())
            .env("KAFKA_CONTROLLER_PORT", (self.port + 1).to_string())
            .env(
                "KAFKA_DIST_ROOT",
                std::env::var_os("KAFKA_DIST_ROOT")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| shared.join("kafka-dist")),
            );
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// `scripts/kafka.sh ARG` for this broker; panics with the script's output on failure.
    pub fn run(&self, arg: &str) {
        let out = self.command(arg).output().expect("run scripts/kafka.sh");
        assert!(
            out.status.success(),
            "scripts/kafka.sh {arg} (port {}) failed:\n{}",
            self.port,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.command("down").arg("--purge").output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port P with P and P + 1 free (broker and controller).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < 65535 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
    panic!("no two consecutive free ports");
}

/// A child process killed when the test ends, whatever happens.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill -{sig} {}", self.pid());
    }

    /// Waits for exit up to `limit`; None if still running.
    pub fn wait_for(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A passing test's topics are deleted when its [`Env`] goes, so that a broker used for many
/// runs (a developer's) does not collect thousands of topics and take minutes to start; a
/// failed test's stay, to be looked at. Best effort: an unreachable broker (a test's own,
/// stopped) just keeps them.
impl Drop for Env {
    fn drop(&mut self) {
        use rdkafka::admin::{AdminClient, AdminOptions};
        use rdkafka::client::DefaultClientContext;
        if std::thread::panicking() {
            return;
        }
        let Ok(admin) = self
            .client_config()
            .create::<AdminClient<DefaultClientContext>>()
        else {
            return;
        };
        let Ok(md) = admin.inner().fetch_metadata(None, Duration::from_secs(3)) else {
            return;
        };
        let prefix = format!("{}.", self.name);
        let names: Vec<String> = md
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        if names.is_empty() {
            return;
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
        let _ = rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), admin.delete_topics(&refs, &opts)).await
        });
    }
}

/// One test's topics, group, config file and scratch directory.
pub struct Env {
    pub name: String,
    pub brokers: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub group: String,
    pub partitions: i32,
    /// librdkafka settings of the test's own clients (readers, raw producers): TLS and SASL
    /// for a secured broker.
    pub client: Vec<(String, String)>,
}

impl Env {
    /// A client config for this env's broker with [`Env::client`].
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.client {
            c.set(k, v);
        }
        c
    }

    /// `extra` is appended to the config file (TOML).
    pub fn new(test: &str, extra: &str) -> Env {
        Env::with_partitions(test, extra, 4)
    }

    /// With `partitions` partitions of the shares and verdicts topics.
    /// Over the secured listener when the tests run over one ([`secured`]).
    pub fn with_partitions(test: &str, extra: &str, partitions: i32) -> Env {
        ensure_broker();
        let Some(s) = secured() else {
            return Env::on(test, brokers(), "", extra, partitions);
        };
        let mut env = Env::on(test, brokers(), &s.fragment, extra, partitions);
        env.client = s.client.clone();
        env
    }

    /// Like [`Env::new`] on another broker (which must be up).
    pub fn with_brokers(test: &str, brokers: &str, extra: &str) -> Env {
        Env::on(test, brokers, "", extra, 4)
    }

    /// `security` (client settings' tables) goes before the test's `extra`, so that bare
    /// keys at the head of `extra` stay where they were.
    fn on(test: &str, brokers: &str, security: &str, extra: &str, partitions: i32) -> Env {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("t{}-{}-{:x}", std::process::id(), test, nanos & 0xffff_ffff);
        let dir = std::env::temp_dir().join(format!("sharecheck-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let group = format!("{name}.group");
        let config = dir.join("sharecheck.toml");
        // Metrics off unless the test turns them on.
        let metrics = if extra.contains("[metrics]") {
            ""
        } else {
            "[metrics]\nlisten = \"\""
        };
        // Short session timeout: after a kill -9 the group waits this long for the dead
        // member before the restarted node gets the partitions.
        let text = format!(
            r#"
[validation]
stale_grace_ms = 0
[kafka]
brokers = "{brokers}"
group_id = "{group}"
[kafka.topics]
shares = "{name}.shares"
jobs = "{name}.jobs"
verdicts = "{name}.verdicts"
blocks = "{name}.blocks"
dead_letter = "{name}.dead-letter"
templates = "{name}.templates"
replies = "{name}.replies"
sharelog = "{name}.sharelog"
reply_partitions = 4
partitions = {partitions}
[kafka.consumer]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
{security}
{metrics}
{extra}
"#
        );
        std::fs::write(&config, text).unwrap();
        let env = Env {
            name,
            brokers: brokers.to_string(),
            dir,
            config,
            group,
            partitions,
            client: Vec::new(),
        };
        let out = env.cmd(&["topics", "create"]).output().unwrap();
        assert!(
            out.status.success(),
            "topics create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        env
    }

    pub fn topic(&self, which: &str) -> String {
        format!("{}.{which}", self.name)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--config").arg(&self.config).args(args);
        c.env_remove("RUST_LOG");
        c
    }

    pub fn spawn(&self, args: &[&str], log: &str) -> Proc {
        let log = self.dir.join(log);
        let f = std::fs::File::create(&log).unwrap();
        let child = self
            .cmd(args)
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .expect("spawn sharecheck");
        Proc { child, log }
    }

    pub fn node(&self, log: &str) -> Proc {
        self.spawn(&["run"], log)
    }

    /// `sharecheck gen` into a file of the scratch dir.
    pub fn gen(&self, file: &str, args: &[&str]) -> PathBuf {
        let p = self.dir.join(file);
        let out = Command::new(bin())
            .args(["gen", "-o"])
            .arg(&p)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        p
    }

    pub fn send(&self, file: &Path, args: &[&str]) {
        let out = self.cmd(&["send"]).args(args).arg(file).output().unwrap();
        assert!(
            out.status.success(),
            "send: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `sharecheck verify` on a file: verdict objects.
    pub fn verify(&self, file: &Path) -> Vec<Value> {
        let out = Command::new(bin())
            .arg("verify")
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        lines(&out.stdout)
    }

    /// `verify`'s status of each share of `file`, by id, quoted as in JSON (as
    /// [`first_verdicts`] gives them).
    pub fn verify_statuses(&self, file: &Path) -> HashMap<u64, String> {
        self.verify(file)
            .iter()
            .map(|v| (v["id"].as_u64().unwrap(), v["status"].to_string()))
            .collect()
    }

    /// `sharecheck receive --count N --timeout S`: verdict objects (fails the test on a
    /// short count).
    pub fn receive(&self, count: usize, timeout_s: u64, extra: &[&str]) -> Vec<Value> {
        let out = self
            .cmd(&[
                "receive",
                "--count",
                &count.to_string(),
                "--timeout",
                &timeout_s.to_string(),
            ])
            .args(extra)
            .output()
            .unwrap();
        let v = lines(&out.stdout);
        assert!(
            out.status.success(),
            "receive got {} of {count} verdicts: {}",
            v.len(),
            String::from_utf8_lossy(&out.stderr)
        );
        v
    }

    /// A plain reader of every partition of `topic` from the beginning.
    pub fn reader(&self, topic: &str) -> BaseConsumer {
        let c: BaseConsumer = self
            .client_config()
            .set("group.id", format!("{}.reader", self.name))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let md = c
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in md.topics()[0].partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        c
    }

    /// Messages of a topic as (key, payload, headers), read until `n` arrived or `limit`.
    pub fn read_messages(&self, topic: &str, n: usize, limit: Duration) -> Vec<RawMessage> {
        use rdkafka::message::Headers;
        let c = self.reader(topic);
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        while out.len() < n && Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                let mut h = HashMap::new();
                if let Some(hs) = m.headers() {
                    for x in hs.iter() {
                        h.insert(
                            x.key.to_string(),
                            String::from_utf8_lossy(x.value.unwrap_or(&[])).into_owned(),
                        );
                    }
                }
                out.push((
                    m.key().unwrap_or(&[]).to_vec(),
                    m.payload().unwrap_or(&[]).to_vec(),
                    h,
                ));
            }
        }
        out
    }

    /// Committed offsets of this test's group on the shares topic, and the end offsets.
    pub fn committed_and_end(&self) -> (Vec<i64>, Vec<i64>) {
        committed_now(self)
    }
}

/// A free local TCP port (for a node's metrics listener).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// GET http://127.0.0.1:PORT/PATH: the body (empty when nothing answers).
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The value of an unlabelled metric in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The value of the series of `name` that has every label of `labels` (whatever its other
/// labels and their order).
pub fn metric_with(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix('{')?;
        let (set, value) = rest.split_once("} ")?;
        labels
            .iter()
            .all(|(k, v)| set.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

/// Key, payload and headers of a message.
pub type RawMessage = (Vec<u8>, Vec<u8>, HashMap<String, String>);

pub fn lines(b: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(b)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// Verdicts by share id (the last one seen wins), and how many ids came more than once.
pub fn by_id(vs: &[Value]) -> (HashMap<u64, Value>, usize) {
    let mut m = HashMap::new();
    let mut repeats = 0;
    for v in vs {
        if let Some(id) = v["id"].as_u64() {
            if m.insert(id, v.clone()).is_some() {
                repeats += 1;
            }
        }
    }
    (m, repeats)
}

/// Every committed verdict of the verdicts topic (read_committed, librdkafka's default),
/// read until nothing new came for `quiet`: share id → how many verdicts, and the last one.
pub fn committed_verdicts(env: &Env, quiet: Duration) -> HashMap<u64, (usize, Value)> {
    let c = env.reader(&env.topic("verdicts"));
    let mut out: HashMap<u64, (usize, Value)> = HashMap::new();
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            last = Instant::now();
            for v in sharecheck::wire::binary::decode_verdicts(m.payload().unwrap()).unwrap() {
                let json: Value =
                    serde_json::from_str(&sharecheck::wire::jsonl::verdict_json(&v)).unwrap();
                let e = out.entry(v.id.expect("id")).or_insert((0, Value::Null));
                e.0 += 1;
                e.1 = json;
            }
        }
    }
    let _ = c.unassign();
    out
}

/// Committed offsets and end offsets without waiting for open transactions (a killed node's
/// transaction holds its offsets until the next owner's init_transactions aborts it).
pub fn committed_now(env: &Env) -> (Vec<i64>, Vec<i64>) {
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
    let c: BaseConsumer = env
        .client_config()
        .set("group.id", &env.group)
        .set("isolation.level", "read_uncommitted")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let topic = env.topic("shares");
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in 0..env.partitions {
        tpl.add_partition(&topic, p);
        ends.push(
            c.fetch_watermarks(&topic, p, Duration::from_secs(10))
                .unwrap()
                .1,
        );
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    let committed = got
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .collect();
    (committed, ends)
}

/// Fails unless every share of `want` has exactly one committed verdict, equal to verify's.
pub fn check_against_verify(got: &HashMap<u64, (usize, Value)>, want: &[Value]) {
    let (want, _) = by_id(want);
    let repeated: Vec<_> = got
        .iter()
        .filter(|(_, (n, _))| *n > 1)
        .map(|x| *x.0)
        .collect();
    assert!(
        repeated.is_empty(),
        "{} shares have more than one committed verdict (e.g. {:?})",
        repeated.len(),
        &repeated[..repeated.len().min(5)]
    );
    assert_eq!(got.len(), want.len(), "shares with a committed verdict");
    for (id, w) in &want {
        let (_, g) = got
            .get(id)
            .unwrap_or_else(|| panic!("no verdict for share {id}"));
        for field in ["status", "hash", "difficulty", "header"] {
            assert_eq!(
                g[field], w[field],
                "share {id}: {field}: kafka {g} verify {w}"
            );
        }
    }
}

/// `sharecheck ARGS` under a time limit: (success, stderr).
pub fn run_limited(mut c: Command, limit: Duration) -> (bool, String) {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = std::env::temp_dir().join(format!(
        "sharecheck-limited-{}-{run}.err",
        std::process::id()
    ));
    c.stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = c.spawn().unwrap();
    let t0 = Instant::now();
    let ok = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.success();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    (ok, text)
}

/// Reads `reader` (a verdicts topic) until `n` shares have a verdict or `limit` passes: the
/// first verdict of each share (its status, quoted as in JSON) and how many verdicts were read
/// in all (repeats included).
pub fn first_verdicts(
    reader: &BaseConsumer,
    n: usize,
    limit: Duration,
) -> (HashMap<u64, String>, usize) {
    let deadline = Instant::now() + limit;
    let mut first: HashMap<u64, String> = HashMap::new();
    let mut verdicts = 0;
    while first.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(100)) {
            for v in sharecheck::wire::binary::decode_verdicts(m.payload().unwrap()).unwrap() {
                verdicts += 1;
                first
                    .entry(v.id.expect("id"))
                    .or_insert_with(|| format!("\"{}\"", v.status));
            }
        }
    }
    (first, verdicts)
}
