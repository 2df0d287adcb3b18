//! The Bitcoin side of a pool: block templates in, blocks out.
//!
//! - [`rpc`]: the node's JSON-RPC (Bitcoin Core or btcd).
//! - [`template`]: a template into a stratum job, a block share back into its block.

pub mod rpc;
pub mod template;
