//! sharecheck: share validation for Bitcoin mining pools.
//!
//! - [`model`]: jobs, shares, verdicts, targets, and the validation rules.
//! - [`wire`]: the binary batch format and the JSON Lines format.
//! - [`sha256`]: SHA-256 engines (scalar reference, SHA-NI, AVX2, AVX-512).
//! - [`backend`]: the hashing backends behind one trait.
//! - [`verify`]: the JSONL → verdicts driver behind `sharecheck verify`.
//! - [`chain`]: the Bitcoin node's JSON-RPC (templates in, blocks out).
//! - [`client`]: what a stratum server links: shares out, each share's verdict back.
//! - [`stratum`]: the Stratum V1 gateway and a miner to drive it.

pub mod backend;
pub mod balance;
pub mod bench;
pub mod chain;
pub mod client;
pub mod config;
pub mod gen;
pub mod kafka;
pub mod metrics;
pub mod model;
pub mod sha256;
pub mod stratum;
pub mod verify;
pub mod wire;
