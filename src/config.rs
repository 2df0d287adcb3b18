//! The configuration file (TOML). Every field has a default, so an empty file is a valid
//! configuration; command-line flags override the file. config/sharecheck.toml documents every
//! key.

use crate::model::ValidationConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

mod bitcoind;
mod choice;
mod fpga;
mod jobs;
pub mod secrets;
mod stratum;
pub use bitcoind::BitcoindConfig;
pub use choice::{BackendKind, BalanceMode, Delivery, LogFormat, UnknownWord, ZkAuthScheme};
pub use fpga::FpgaConfig;
pub use jobs::JobsConfig;
pub use stratum::StratumConfig;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub backend: BackendConfig,
    pub validation: ValidationConfig,
    pub log: LogConfig,
    pub kafka: KafkaConfig,
    pub metrics: MetricsConfig,
    pub balance: BalanceConfig,
    pub jobs: JobsConfig,
    pub bitcoind: BitcoindConfig,
    pub stratum: StratumConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConfig {
    /// Backend name: `cpu` (fastest CPU path), `cpu:scalar`, `cpu:sha-ni`, `cpu:avx2`,
    /// `cpu:avx512`, `wgpu`, `opencl`, `fpga`, or `auto` (self-test and measure every
    /// available backend at start, use the fastest). Default `cpu`.
    pub kind: BackendKind,
    /// Worker threads for the CPU backend; 0 = one per core. Default 0.
    pub threads: usize,
    /// Service mode: batches being validated at once (checked, hashed, their verdicts
    /// produced). With 2 or more, the next batch is prepared while one is hashed; at the
    /// limit the node takes no more messages. Batches waiting for the broker's
    /// acknowledgement count against `kafka.max_unacked_batches` instead (with
    /// `exactly_once`, until their transaction commits, against this). Default 2.
    pub inflight: usize,
    /// Service mode: validation lanes. Each lane has its own thread for checks 1–6 and its own
    /// thread for check 7 and the verdict encoding, and owns some of the node's partitions
    /// (a partition stays in the lane it was first given to), so that a host with many cores
    /// is not held by one thread's share of the work. A gathered batch is split by lane; each
    /// lane keeps up to `inflight` batches. 0 = one lane per 4 cores, at most 8 (one on a
    /// machine of up to 7 cores). Default 0.
    pub lanes: usize,
    /// Device index for `wgpu` / `opencl`, as `sharecheck backends` lists them. Default 0.
    pub device: usize,
    /// Work items per work group for `wgpu` / `opencl`. Default 64.
    pub work_group_size: u32,
    pub batch: BatchConfig,
    /// The FPGA card's streams (`kind = "fpga"`).
    pub fpga: FpgaConfig,
}

/// The most validation lanes `backend.lanes` may ask for.
pub const MAX_LANES: usize = 64;

impl BackendConfig {
    /// The validation lanes a node runs: `lanes`, or with 0 one per 4 cores, 1 to 8.
    pub fn lanes(&self) -> usize {
        match self.lanes {
            0 => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                (cores / 4).clamp(1, 8)
            }
            n => n,
        }
    }
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            kind: BackendKind::Cpu,
            threads: 0,
            inflight: 2,
            lanes: 0,
            device: 0,
            work_group_size: 64,
            batch: BatchConfig::default(),
            fpga: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// Shares handed to the backend at once. Larger batches amortise dispatch (and, on GPUs,
    /// transfers); smaller ones cut latency. Default 8192.
    pub max_shares: usize,
    /// Longest a partial batch waits for more shares before it is validated (service mode).
    /// Default 5.
    pub max_wait_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_shares: 8192,
            max_wait_ms: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`. Default `text`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `sharecheck=debug`; RUST_LOG overrides it. Default
    /// `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// The `[kafka]` table: where the node reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated (librdkafka `bootstrap.servers`). Default
    /// `127.0.0.1:9092`.
    pub brokers: String,
    /// Consumer group of the validator nodes; the share partitions are shared among its
    /// members. Default `sharecheck`.
    pub group_id: String,
    pub topics: TopicsConfig,
    /// librdkafka options for every consumer, under their librdkafka names (e.g.
    /// `"session.timeout.ms" = "10000"`). They override sharecheck's own settings except
    /// the ones at-least-once depends on (offset storing). Default empty.
    pub consumer: BTreeMap<String, String>,
    /// librdkafka options for every producer (e.g. `"linger.ms" = "2"`). Default empty.
    pub producer: BTreeMap<String, String>,
    /// librdkafka options for every client sharecheck makes (the node's consumers and
    /// producers, the admin client of `topics create`, `send`, `receive`, the job maker, the
    /// block submitter, `bench-kafka`): where TLS and SASL go, e.g. `"security.protocol" =
    /// "sasl_ssl"`, `"ssl.ca.location"`, `"sasl.mechanism" = "SCRAM-SHA-512"`,
    /// `"sasl.username"`. Set before `consumer` and `producer`. Default empty.
    pub client: BTreeMap<String, String>,
    /// librdkafka options of every client whose values are secret, each read from a file
    /// when the config is loaded (e.g. `"sasl.password" = "/etc/sharecheck/kafka.password"`);
    /// `SHARECHECK_KAFKA_SASL_PASSWORD` in the environment gives `sasl.password` instead.
    /// Default empty.
    pub secret_files: BTreeMap<String, std::path::PathBuf>,
    /// The values of `secret_files`, once loaded (never written back or printed).
    #[serde(skip)]
    pub secrets: secrets::Secrets,
    /// `at_least_once`: an offset is stored only after the verdicts of its message are
    /// acknowledged; after a crash the uncommitted tail is validated again, and readers drop
    /// the repeats by source partition and offset. `exactly_once`: the verdicts of a batch
    /// and the offsets it consumed are written in one Kafka transaction (one transactional
    /// producer per owned partition); read_committed readers see every verdict once.
    /// Default `at_least_once`.
    pub delivery: Delivery,
    /// Service mode, at_least_once: batches whose verdicts are handed to the producer and not
    /// yet acknowledged by the broker. The backend takes the next batches meanwhile; at the
    /// limit the node takes no more messages until acknowledgements come. Bounds the memory
    /// of verdicts waiting for the broker. Default 8.
    pub max_unacked_batches: usize,
    /// Seconds a share message may hold back its partition's committable offset (its
    /// outputs not acknowledged) before the partition is reported stalled: a log line,
    /// `sharecheck_partition_stalled`, and `/healthz` 503 with the reason. Default 60.
    pub stall_timeout_s: u64,
    /// The most the node's job log holds of coinbase parts, merkle branches and job ids;
    /// beyond it the oldest jobs go (a new validator then does not get them; validators
    /// that have them keep them until they expire). It also keeps at most
    /// `validation.max_live_jobs + validation.max_jobs_ahead` jobs. Default 67108864 (64 MiB).
    pub max_job_log_bytes: usize,
    /// Staleness and job expiry are judged by the shares and jobs topics' message
    /// timestamps. With `CreateTime` topics a producer chooses them (one share stamped in
    /// the future expires every job of its partition); `topics create` makes both
    /// `LogAppendTime`. The node checks at start: with false it warns about a `CreateTime`
    /// topic, with true it refuses to start. Default false.
    pub require_log_append_time: bool,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            group_id: "sharecheck".into(),
            topics: TopicsConfig::default(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
            client: BTreeMap::new(),
            secret_files: BTreeMap::new(),
            secrets: secrets::Secrets::default(),
            delivery: Delivery::AtLeastOnce,
            max_unacked_batches: 8,
            stall_timeout_s: 60,
            max_job_log_bytes: 64 << 20,
            require_log_append_time: false,
        }
    }
}

/// The `[kafka.topics]` table: topic names, and what `sharecheck topics create` makes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TopicsConfig {
    /// Share batches from the stratum servers, keyed by miner session. Default
    /// `sharecheck.shares`.
    pub shares: String,
    /// Job messages; every node reads all of it. Default `sharecheck.jobs`.
    pub jobs: String,
    /// One verdict batch per share batch. Default `sharecheck.verdicts`.
    pub verdicts: String,
    /// One message per block candidate, with the full header. Default `sharecheck.blocks`.
    pub blocks: String,
    /// Messages that could not be decoded, with the reason in a header. Default
    /// `sharecheck.dead-letter`.
    pub dead_letter: String,
    /// What the block submitter needs to rebuild a job's block (its coinbase parts and
    /// transactions), written by the job maker with each job, keyed by job id; compacted.
    /// Default `sharecheck.templates`.
    pub templates: String,
    /// Where verdicts go when a share message names no reply target of its own
    /// (`reply_to` header) is `verdicts`; a share message may name this topic, or any topic
    /// whose name starts with it and a dot (`sharecheck.replies.gw1`), and nothing else, so
    /// that no producer can make the node write into another topic. Default
    /// `sharecheck.replies`.
    pub replies: String,
    /// Partitions of the replies topic `topics create` makes: one per stratum server that
    /// reads its verdicts from a partition of its own. Default 16.
    pub reply_partitions: i32,
    /// The stratum gateways' share log: one JSON line per submit, keyed by worker. Default
    /// `sharecheck.sharelog`.
    pub sharelog: String,
    /// Partitions of the shares and verdicts topics (the others get 1). Default 8.
    pub partitions: i32,
    /// Replication factor of every topic. Default 1.
    pub replication: i32,
    /// retention.ms of the shares, verdicts and dead-letter topics; -1 keeps forever.
    /// Default 86400000 (one day).
    pub retention_ms: i64,
    /// retention.ms of the jobs and blocks topics. Default 604800000 (a week).
    pub jobs_retention_ms: i64,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            shares: "sharecheck.shares".into(),
            jobs: "sharecheck.jobs".into(),
            verdicts: "sharecheck.verdicts".into(),
            blocks: "sharecheck.blocks".into(),
            dead_letter: "sharecheck.dead-letter".into(),
            templates: "sharecheck.templates".into(),
            replies: "sharecheck.replies".into(),
            reply_partitions: 16,
            sharelog: "sharecheck.sharelog".into(),
            partitions: 8,
            replication: 1,
            retention_ms: 86_400_000,
            jobs_retention_ms: 604_800_000,
        }
    }
}

/// The `[metrics]` table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the HTTP listener serving `/metrics` (Prometheus text) and `/healthz`;
    /// empty turns it off. Default `127.0.0.1:9464`.
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: "127.0.0.1:9464".into(),
        }
    }
}

/// The `[balance]` table: how the share partitions are spread over the validator nodes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BalanceConfig {
    /// `kafka`: the nodes are members of Kafka's consumer group `kafka.group_id`
    /// (cooperative-sticky assignment, every node counts the same). `zookeeper`: the nodes
    /// share the partitions by measured capacity through ZooKeeper (docs/operations.md).
    /// Default `kafka`.
    pub mode: BalanceMode,
    /// ZooKeeper connect string (`host:port,host:port`, optionally with a chroot path).
    /// Default `127.0.0.1:2181`.
    pub zookeeper: String,
    /// Name of the group of nodes under /sharecheck/ in ZooKeeper. Default `sharecheck`.
    pub group: String,
    /// ZooKeeper session timeout: how long after a node stops answering its partitions move.
    /// Default 10000.
    pub session_timeout_ms: u64,
    /// This node's name in the group; unique per node. Default: the host name.
    pub node_id: Option<String>,
    /// This node's capacity in shares/s, the weight of its share of the partitions. Default:
    /// the backend's measured shares/s at start.
    pub capacity: Option<f64>,
    /// A file holding `user:password` (ZooKeeper's digest scheme): every session
    /// authenticates with it and the group's znodes are created readable and writable by
    /// that identity only. `SHARECHECK_ZOOKEEPER_AUTH` in the environment takes its place.
    /// Default: none, and the znodes are world-writable (docs/security.md).
    pub zookeeper_auth_file: Option<std::path::PathBuf>,
    /// How the sessions present `zookeeper_auth_file`: `digest` (ZooKeeper's digest scheme;
    /// the password crosses the network in clear without TLS) or `sasl` (SASL DIGEST-MD5
    /// against the server's JAAS users; for servers with SASLAuthenticationProvider), or
    /// `kerberos` (SASL GSSAPI: no password file, the process's Kerberos ticket or client
    /// keytab authenticates; the `gssapi` build). Default `digest`.
    pub zookeeper_auth_scheme: ZkAuthScheme,
    /// Connect to ZooKeeper with TLS (to its `secureClientPort`): the server's certificate
    /// is checked against `zookeeper_ca_file` and its address, and the credentials and the
    /// group's data cross the network encrypted. Default false (plaintext).
    pub zookeeper_tls: bool,
    /// PEM file of the CA certificate(s) that signed the ZooKeeper servers' certificates;
    /// required with `zookeeper_tls`.
    pub zookeeper_ca_file: Option<std::path::PathBuf>,
    /// PEM file of this node's client certificate (and its chain), for servers with
    /// `ssl.clientAuth=need`; with `zookeeper_key_file`. Default: none.
    pub zookeeper_cert_file: Option<std::path::PathBuf>,
    /// PEM file of the unencrypted private key of `zookeeper_cert_file`. Default: none.
    pub zookeeper_key_file: Option<std::path::PathBuf>,
}

impl Default for BalanceConfig {
    fn default() -> Self {
        BalanceConfig {
            mode: BalanceMode::Kafka,
            zookeeper: "127.0.0.1:2181".into(),
            group: "sharecheck".into(),
            session_timeout_ms: 10_000,
            node_id: None,
            capacity: None,
            zookeeper_auth_file: None,
            zookeeper_auth_scheme: ZkAuthScheme::Digest,
            zookeeper_tls: false,
            zookeeper_ca_file: None,
            zookeeper_cert_file: None,
            zookeeper_key_file: None,
        }
    }
}

impl KafkaConfig {
    /// `delivery = "exactly_once"`: verdicts and offsets in one transaction.
    pub fn is_exactly_once(&self) -> bool {
        self.delivery == Delivery::ExactlyOnce
    }
}

impl BalanceConfig {
    pub fn is_zookeeper(&self) -> bool {
        self.mode == BalanceMode::Zookeeper
    }

    /// The TLS settings fit together and their files are readable PEM files of the right
    /// kind (what is in them is checked when connecting).
    fn check_tls(&self) -> anyhow::Result<()> {
        let files = [
            ("zookeeper_ca_file", &self.zookeeper_ca_file),
            ("zookeeper_cert_file", &self.zookeeper_cert_file),
            ("zookeeper_key_file", &self.zookeeper_key_file),
        ];
        if !self.zookeeper_tls {
            anyhow::ensure!(
                !self.zookeeper.contains("tcp+tls://"),
                "balance.zookeeper names a tcp+tls:// server but balance.zookeeper_tls is false: \
                 set zookeeper_tls = true and zookeeper_ca_file"
            );
            if let Some((key, _)) = files.iter().find(|(_, f)| f.is_some()) {
                anyhow::bail!(
                    "balance.{key} is set but balance.zookeeper_tls is false: set \
                     zookeeper_tls = true to connect to ZooKeeper with TLS, or remove {key}"
                );
            }
            return Ok(());
        }
        let Some(ca) = &self.zookeeper_ca_file else {
            anyhow::bail!(
                "balance.zookeeper_tls = true needs balance.zookeeper_ca_file: the PEM file of \
                 the CA that signed the ZooKeeper server's certificate"
            );
        };
        pem_file("zookeeper_ca_file", ca, "CERTIFICATE", "certificate")?;
        match (&self.zookeeper_cert_file, &self.zookeeper_key_file) {
            (Some(cert), Some(key)) => {
                pem_file("zookeeper_cert_file", cert, "CERTIFICATE", "certificate")?;
                pem_file("zookeeper_key_file", key, "PRIVATE KEY", "private key")?;
            }
            (Some(_), None) => anyhow::bail!(
                "balance.zookeeper_cert_file needs balance.zookeeper_key_file, the certificate's \
                 private key"
            ),
            (None, Some(_)) => anyhow::bail!(
                "balance.zookeeper_key_file is set without balance.zookeeper_cert_file: a client \
                 identity needs both"
            ),
            (None, None) => {}
        }
        Ok(())
    }
}

/// `path` (the value of `balance.<key>`) can be read and holds a PEM block `label`.
fn pem_file(key: &str, path: &Path, label: &str, what: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("balance.{key}: cannot read {}: {e}", path.display()))?;
    anyhow::ensure!(
        !text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "balance.{key}: {} is an encrypted private key, which is not supported; decrypt it \
         (openssl pkey -in KEY -out KEY.pem) and chmod 600 the result",
        path.display()
    );
    let found = text.lines().any(|l| {
        l.strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
            .is_some_and(|l| l.ends_with(label))
    });
    anyhow::ensure!(
        found,
        "balance.{key}: {} holds no PEM {what} (-----BEGIN ...{label}-----)",
        path.display()
    );
    Ok(())
}

/// A name usable as one znode path segment (`balance.group`, `balance.node_id`).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.chars().any(|c| c.is_control())
}

impl Config {
    /// Reads a config file; errors name the file and the offending key.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        let mut c =
            Self::parse(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))?;
        c.kafka.secrets = secrets::Secrets::resolve(&c.kafka.secret_files)
            .map_err(|e| anyhow::anyhow!("config {}: {e:#}", path.display()))?;
        Ok(c)
    }

    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let c: Config = toml::from_str(text)?;
        c.check()?;
        Ok(c)
    }

    /// Values serde cannot rule out (a one-word key is an enum, refused while reading).
    pub fn check(&self) -> anyhow::Result<()> {
        self.jobs.check()?;
        self.stratum.check()?;
        anyhow::ensure!(
            self.backend.batch.max_shares > 0,
            "backend.batch.max_shares must be at least 1"
        );
        anyhow::ensure!(
            self.backend.work_group_size > 0,
            "backend.work_group_size must be at least 1"
        );
        anyhow::ensure!(
            self.backend.inflight > 0,
            "backend.inflight must be at least 1"
        );
        anyhow::ensure!(
            self.backend.lanes <= MAX_LANES,
            "backend.lanes must be at most {MAX_LANES} (0 = from the core count)"
        );
        anyhow::ensure!(
            self.kafka.max_unacked_batches > 0,
            "kafka.max_unacked_batches must be at least 1"
        );
        anyhow::ensure!(
            self.kafka.stall_timeout_s > 0,
            "kafka.stall_timeout_s must be at least 1"
        );
        anyhow::ensure!(
            self.kafka.topics.partitions > 0 && self.kafka.topics.replication > 0,
            "kafka.topics.partitions and kafka.topics.replication must be at least 1"
        );
        anyhow::ensure!(
            self.kafka.topics.reply_partitions > 0,
            "kafka.topics.reply_partitions must be at least 1"
        );
        anyhow::ensure!(
            self.validation.max_live_jobs > 0,
            "validation.max_live_jobs must be at least 1"
        );
        let b = &self.balance;
        anyhow::ensure!(
            !b.zookeeper.trim().is_empty(),
            "balance.zookeeper must name at least one ZooKeeper server (host:port)"
        );
        anyhow::ensure!(
            valid_name(&b.group),
            "balance.group must be a non-empty name without '/' (got {:?})",
            b.group
        );
        if let Some(id) = &b.node_id {
            anyhow::ensure!(
                valid_name(id),
                "balance.node_id must be a non-empty name without '/' (got {id:?})"
            );
        }
        anyhow::ensure!(
            (2000..=600_000).contains(&b.session_timeout_ms),
            "balance.session_timeout_ms must be between 2000 and 600000 (ZooKeeper's usual limits)"
        );
        if let Some(c) = b.capacity {
            anyhow::ensure!(
                c.is_finite() && c > 0.0,
                "balance.capacity must be a positive number of shares/s"
            );
        }
        b.check_tls()?;
        self.bitcoind.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_parses_to_the_defaults() {
        let text = include_str!("../config/sharecheck.toml");
        assert_eq!(Config::parse(text).unwrap(), Config::default());
    }

    #[test]
    fn typos_are_errors() {
        let e = Config::parse("[backend]\nkinds = \"cpu\"\n").unwrap_err();
        assert!(e.to_string().contains("kinds"), "{e}");
        assert!(Config::parse("[backend.batch]\nmax_shares = 0\n").is_err());
    }

    #[test]
    fn balance_values_are_checked() {
        let ok =
            Config::parse("[balance]\nmode = \"zookeeper\"\nnode_id = \"a\"\ncapacity = 4.5\n")
                .unwrap();
        assert!(ok.balance.is_zookeeper());
        for bad in [
            "[balance]\nmode = \"zk\"\n",
            "[balance]\ngroup = \"a/b\"\n",
            "[balance]\nnode_id = \"\"\n",
            "[balance]\ncapacity = 0.0\n",
            "[balance]\nsession_timeout_ms = 10\n",
            "[balance]\nzookeeper = \" \"\n",
        ] {
            assert!(Config::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn balance_tls_settings_are_checked_at_load() {
        let dir = std::env::temp_dir().join(format!("sharecheck-zk-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = |name: &str, label: &str| {
            let p = dir.join(name);
            std::fs::write(
                &p,
                format!("-----BEGIN {label}-----\nAA==\n-----END {label}-----\n"),
            )
            .unwrap();
            p.display().to_string()
        };
        let (ca, cert) = (pem("ca.pem", "CERTIFICATE"), pem("c.pem", "CERTIFICATE"));
        let (key, enc) = (
            pem("c.key", "PRIVATE KEY"),
            pem("e.key", "ENCRYPTED PRIVATE KEY"),
        );
        let tls = |more: &str| format!("[balance]\nzookeeper_tls = true\n{more}");
        let ok = Config::parse(&tls(&format!(
            "zookeeper_ca_file = \"{ca}\"\nzookeeper_cert_file = \"{cert}\"\n\
             zookeeper_key_file = \"{key}\"\n"
        )))
        .unwrap();
        assert!(ok.balance.zookeeper_tls);
        assert!(Config::parse(&tls(&format!("zookeeper_ca_file = \"{ca}\"\n"))).is_ok());
        for (text, want) in [
            (tls(""), "needs balance.zookeeper_ca_file"),
            (
                tls(&format!("zookeeper_ca_file = \"{key}\"\n")),
                "holds no PEM certificate",
            ),
            (
                tls("zookeeper_ca_file = \"/nonexistent/ca.pem\"\n"),
                "cannot read /nonexistent/ca.pem",
            ),
            (
                tls(&format!(
                    "zookeeper_ca_file = \"{ca}\"\nzookeeper_key_file = \"{key}\"\n"
                )),
                "without balance.zookeeper_cert_file",
            ),
            (
                tls(&format!(
                    "zookeeper_ca_file = \"{ca}\"\nzookeeper_cert_file = \"{cert}\"\n"
                )),
                "needs balance.zookeeper_key_file",
            ),
            (
                tls(&format!(
                    "zookeeper_ca_file = \"{ca}\"\nzookeeper_cert_file = \"{cert}\"\n\
                     zookeeper_key_file = \"{enc}\"\n"
                )),
                "encrypted private key",
            ),
            (
                format!("[balance]\nzookeeper_ca_file = \"{ca}\"\n"),
                "balance.zookeeper_tls is false",
            ),
            (
                "[balance]\nzookeeper = \"tcp+tls://zk:2281\"\n".to_string(),
                "zookeeper_tls is false",
            ),
        ] {
            let e = format!("{:#}", Config::parse(&text).unwrap_err());
            assert!(e.contains(want), "{text}: {e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn delivery_modes_parse_and_unknown_ones_are_refused() {
        let c = Config::parse("[kafka]\ndelivery = \"exactly_once\"\n").unwrap();
        assert!(c.kafka.is_exactly_once());
        assert!(!Config::default().kafka.is_exactly_once());
        let e = Config::parse("[kafka]\ndelivery = \"twice\"\n").unwrap_err();
        assert!(e.to_string().contains("exactly_once"), "{e}");
    }

    #[test]
    fn unacked_batches_are_read_and_zero_is_refused() {
        let c = Config::parse("[kafka]\nmax_unacked_batches = 3\n").unwrap();
        assert_eq!(c.kafka.max_unacked_batches, 3);
        assert_eq!(Config::default().kafka.max_unacked_batches, 8);
        let e = Config::parse("[kafka]\nmax_unacked_batches = 0\n").unwrap_err();
        assert!(e.to_string().contains("max_unacked_batches"), "{e}");
    }
}
