//! The `[backend.fpga]` table.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[backend.fpga]` settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FpgaConfig {
    /// Host-to-card stream. Default `/dev/xdma0_h2c_0`.
    pub h2c: PathBuf,
    /// Card-to-host stream. Default `/dev/xdma0_c2h_0`.
    pub c2h: PathBuf,
    /// Longest wait for the next result before the card counts as lost. Default 2000.
    pub timeout_ms: u64,
}

impl Default for FpgaConfig {
    fn default() -> Self {
        FpgaConfig {
            h2c: "/dev/xdma0_h2c_0".into(),
            c2h: "/dev/xdma0_c2h_0".into(),
            timeout_ms: 2000,
        }
    }
}
