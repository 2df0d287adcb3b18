//! The configuration file (TOML). Every field has a default, so an empty file is a valid
//! configuration; command-line flags override the file. config/sharecheck.toml documents every
//! key.

use crate::model::ValidationConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub backend: BackendConfig,
    pub validation: ValidationConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackendConfig {
    /// Backend name: `cpu` (fastest CPU path), `cpu:scalar`, `cpu:sha-ni`, `cpu:avx2`,
    /// `cpu:avx512`, `wgpu`, `opencl`, or `auto` (self-test and measure every available
    /// backend at start, use the fastest). Default `cpu`.
    pub kind: String,
    /// Worker threads for the CPU backend; 0 = one per core. Default 0.
    pub threads: usize,
    /// Device index for `wgpu` / `opencl`, as `sharecheck backends` lists them. Default 0.
    pub device: usize,
    /// Work items per work group for `wgpu` / `opencl`. Default 64.
    pub work_group_size: u32,
    pub batch: BatchConfig,
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            kind: "cpu".into(),
            threads: 0,
            device: 0,
            work_group_size: 64,
            batch: BatchConfig::default(),
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
    pub format: String,
    /// A tracing filter such as `info` or `sharecheck=debug`; RUST_LOG overrides it. Default
    /// `info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl Config {
    /// Reads a config file; errors name the file and the offending key.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("config {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let c: Config = toml::from_str(text)?;
        c.check()?;
        Ok(c)
    }

    /// Values serde cannot rule out.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.backend.batch.max_shares > 0,
            "backend.batch.max_shares must be at least 1"
        );
        anyhow::ensure!(
            self.backend.work_group_size > 0,
            "backend.work_group_size must be at least 1"
        );
        anyhow::ensure!(
            matches!(self.log.format.as_str(), "text" | "json"),
            "log.format must be \"text\" or \"json\""
        );
        anyhow::ensure!(
            self.validation.max_live_jobs > 0,
            "validation.max_live_jobs must be at least 1"
        );
        Ok(())
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
}
