//! The Bitcoin side of a pool: block templates in, blocks out.
//!
//! - [`rpc`]: the node's JSON-RPC (Bitcoin Core or btcd).
//! - [`template`]: a template into a stratum job, a block share back into its block.
//! - [`jobs`]: `sharecheck jobs`, the job maker (templates in, jobs out, one active).
//! - [`blocks`]: `sharecheck blocks`, the block submitter (block candidates to the node).

pub mod blocks;
pub mod jobs;
pub mod rpc;
pub mod template;
