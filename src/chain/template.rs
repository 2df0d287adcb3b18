//! From a Bitcoin node's block template to a stratum job, and from a block share back to the
//! block: the coinbase around its extranonce slot, the merkle branch of the coinbase, the
//! witness commitment, and the block's serialization. Pure functions; the job maker
//! ([`super::jobs`]) and the block submitter ([`super::blocks`]) do the I/O.
//!
//! Byte orders: the node's hex txids and block hashes are in display order (reversed);
//! everything here works in internal order, as the block and the job's `merkle_branch` and
//! `prevhash` (header order) use it.

use super::rpc::BlockTemplate;
use crate::model::Job;
use serde::{Deserialize, Serialize};

/// How a job maker's coinbases are made (from `[jobs]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoinbasePlan {
    /// The payout's output script (all of the block's reward and fees).
    pub payout_script: Vec<u8>,
    /// Pushed in the coinbase script after the extranonce slot (the pool's tag).
    pub tag: Vec<u8>,
    /// Bytes of the extranonce slot: extranonce1 + extranonce2.
    pub extranonce_len: usize,
}

/// What the block submitter needs, besides the share, to rebuild a job's block: kept by job
/// id on the templates topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTemplate {
    pub job_id: String,
    pub height: u64,
    /// The previous block's hash, display order.
    pub prevhash: String,
    /// The coinbase (non-witness serialization) around the extranonce slot, hex.
    pub coinb1: String,
    pub coinb2: String,
    /// The block's other transactions, serialized as the template gave them (with
    /// witnesses), hex, in block order.
    pub transactions: Vec<String>,
}

/// Why a template could not become a job.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("template field {0}: {1}")]
    Field(&'static str, String),
    #[error("coinbase script of {0} bytes (consensus allows 2 to 100): shorten [jobs] coinbase_tag or the extranonce sizes")]
    ScriptSize(usize),
}

/// SHA-256d.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(Sha256::digest(data)).into()
}

/// A display-order hex hash in internal order.
pub fn internal(hex_display: &str, what: &'static str) -> Result<[u8; 32], TemplateError> {
    let mut b: [u8; 32] = hex_decode(hex_display)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| {
            TemplateError::Field(what, format!("not a 32-byte hash: {hex_display:?}"))
        })?;
    b.reverse();
    Ok(b)
}

fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    crate::wire::hex::decode(s).map_err(|e| e.to_string())
}

fn hex_encode(b: &[u8]) -> String {
    crate::wire::hex::encode(b)
}

/// A Bitcoin compact-size integer.
pub fn compact_size(n: usize, out: &mut Vec<u8>) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&(n as u64).to_le_bytes());
        }
    }
}

/// A script push of `data` (at most 75 bytes here: the tag and the extranonce slot).
fn push(data: &[u8], out: &mut Vec<u8>) {
    debug_assert!(data.len() <= 75);
    out.push(data.len() as u8);
    out.extend_from_slice(data);
}

/// The block height as BIP34 wants it first in the coinbase script: the script number push
/// Bitcoin Core's `CScript() << height` makes (OP_1..OP_16 for 1 to 16, else the minimal
/// little-endian number).
fn push_height(height: u64, out: &mut Vec<u8>) {
    match height {
        0 => out.push(0x00),
        1..=16 => out.push(0x50 + height as u8),
        _ => {
            let mut n = Vec::new();
            let mut h = height;
            while h > 0 {
                n.push(h as u8);
                h >>= 8;
            }
            // A set top bit would make the number negative.
            if n.last().is_some_and(|b| b & 0x80 != 0) {
                n.push(0);
            }
            push(&n, out);
        }
    }
}

/// The merkle root over `leaves` (internal order), duplicating the last of an odd level.
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    let mut level = leaves.to_vec();
    if level.is_empty() {
        return [0; 32];
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| {
                let mut b = [0u8; 64];
                b[..32].copy_from_slice(&p[0]);
                b[32..].copy_from_slice(p.get(1).unwrap_or(&p[0]));
                sha256d(&b)
            })
            .collect();
    }
    level[0]
}

/// The merkle branch of the coinbase (position 0) among the block's transactions, whose
/// other txids are `txids` (internal order): the hashes a share's coinbase hash is folded
/// with, as stratum's `merkle_branch` carries them.
pub fn coinbase_branch(txids: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let mut branch = Vec::new();
    // The level without its first element (the coinbase's own path).
    let mut rest = txids.to_vec();
    while !rest.is_empty() {
        branch.push(rest[0]);
        rest = rest[1..]
            .chunks(2)
            .map(|p| {
                let mut b = [0u8; 64];
                b[..32].copy_from_slice(&p[0]);
                b[32..].copy_from_slice(p.get(1).unwrap_or(&p[0]));
                sha256d(&b)
            })
            .collect();
    }
    branch
}

/// BIP141's commitment to the block's witnesses: SHA-256d of the merkle root of the wtxids
/// (the coinbase's counted as zero) and the coinbase's witness reserved value (zero).
pub fn witness_commitment(wtxids: &[[u8; 32]]) -> [u8; 32] {
    let mut leaves = Vec::with_capacity(1 + wtxids.len());
    leaves.push([0u8; 32]);
    leaves.extend_from_slice(wtxids);
    let mut b = [0u8; 64];
    b[..32].copy_from_slice(&merkle_root(&leaves));
    sha256d(&b)
}

/// The witness commitment output's script: OP_RETURN, a 36-byte push of the header
/// `aa21a9ed` and the commitment.
fn commitment_script(commitment: &[u8; 32]) -> Vec<u8> {
    let mut s = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    s.extend_from_slice(commitment);
    s
}

/// coinb1 and coinb2: the coinbase (version 1, non-witness serialization) split at its
/// extranonce slot. Its script: the BIP34 height, the template's `coinbaseaux` flags, a
/// push of the extranonce slot, a push of the tag. Its outputs: the payout of the whole
/// `coinbasevalue`, then the witness commitment (always present, so that every block has
/// the same shape; the block then carries the coinbase's witness reserved value).
pub fn coinbase_parts(
    t: &BlockTemplate,
    plan: &CoinbasePlan,
) -> Result<(Vec<u8>, Vec<u8>), TemplateError> {
    let mut script = Vec::new();
    push_height(t.height, &mut script);
    if let Some(aux) = &t.coinbaseaux {
        script.extend(hex_decode(&aux.flags).map_err(|e| TemplateError::Field("coinbaseaux", e))?);
    }
    let slot_at = script.len() + 1;
    script.push(plan.extranonce_len as u8);
    let after_slot = script.len();
    let mut tail = Vec::new();
    push(&plan.tag[..plan.tag.len().min(75)], &mut tail);
    let script_len = after_slot + plan.extranonce_len + tail.len();
    if !(2..=100).contains(&script_len) {
        return Err(TemplateError::ScriptSize(script_len));
    }
    let commitment = match &t.default_witness_commitment {
        Some(hex) => {
            hex_decode(hex).map_err(|e| TemplateError::Field("default_witness_commitment", e))?
        }
        None => {
            let mut wtxids = Vec::with_capacity(t.transactions.len());
            for tx in &t.transactions {
                wtxids.push(internal(&tx.hash, "transactions.hash")?);
            }
            commitment_script(&witness_commitment(&wtxids))
        }
    };
    let mut c1 = Vec::with_capacity(64 + script.len());
    c1.extend_from_slice(&1u32.to_le_bytes());
    c1.push(1);
    c1.extend_from_slice(&[0u8; 32]);
    c1.extend_from_slice(&u32::MAX.to_le_bytes());
    compact_size(script_len, &mut c1);
    c1.extend_from_slice(&script[..slot_at]);
    let mut c2 = tail;
    c2.extend_from_slice(&u32::MAX.to_le_bytes());
    c2.push(2);
    c2.extend_from_slice(&t.coinbasevalue.to_le_bytes());
    compact_size(plan.payout_script.len(), &mut c2);
    c2.extend_from_slice(&plan.payout_script);
    c2.extend_from_slice(&0u64.to_le_bytes());
    compact_size(commitment.len(), &mut c2);
    c2.extend_from_slice(&commitment);
    c2.extend_from_slice(&0u32.to_le_bytes());
    Ok((c1, c2))
}

/// The job of a template (`job_id`, `clean_jobs`, the version-rolling mask are the job
/// maker's), and what the submitter needs to rebuild its block.
pub fn job_from_template(
    t: &BlockTemplate,
    plan: &CoinbasePlan,
    job_id: &str,
    clean_jobs: bool,
    version_mask: u32,
) -> Result<(Job, StoredTemplate), TemplateError> {
    let (coinb1, coinb2) = coinbase_parts(t, plan)?;
    let mut txids = Vec::with_capacity(t.transactions.len());
    for tx in &t.transactions {
        txids.push(internal(&tx.txid, "transactions.txid")?);
    }
    let nbits = u32::from_str_radix(&t.bits, 16)
        .map_err(|e| TemplateError::Field("bits", format!("{:?}: {e}", t.bits)))?;
    let job = Job {
        job_id: job_id.to_string(),
        prevhash: internal(&t.previousblockhash, "previousblockhash")?,
        coinb1: coinb1.clone(),
        coinb2: coinb2.clone(),
        merkle_branch: coinbase_branch(&txids),
        version: t.version,
        nbits,
        ntime: t.curtime as u32,
        clean_jobs,
        version_mask,
        // At most 32 (the config checks both sizes).
        extranonce_size: Some(plan.extranonce_len as u8),
        merkle_root: None,
        step: Default::default(),
    };
    let stored = StoredTemplate {
        job_id: job_id.to_string(),
        height: t.height,
        prevhash: t.previousblockhash.clone(),
        coinb1: hex_encode(&coinb1),
        coinb2: hex_encode(&coinb2),
        transactions: t.transactions.iter().map(|x| x.data.clone()).collect(),
    };
    Ok((job, stored))
}

/// Why a block could not be rebuilt from a share.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RebuildError {
    #[error("stored template of job {0}: {1}")]
    Template(String, String),
    #[error("the share's header does not commit to the coinbase and transactions of job {0} (merkle root differs)")]
    MerkleRoot(String),
}

/// The block of a share: `header` (80 bytes, as the share hashed it), the coinbase made
/// of the job's coinb1, the share's extranonce (extranonce1 ‖ extranonce2) and coinb2, with
/// the coinbase witness reserved value, and the template's transactions. Checks that the
/// header's merkle root is that of these transactions.
pub fn rebuild_block(
    header: &[u8; 80],
    extranonce: &[u8],
    t: &StoredTemplate,
) -> Result<Vec<u8>, RebuildError> {
    let bad = |e: String| RebuildError::Template(t.job_id.clone(), e);
    let coinb1 = hex_decode(&t.coinb1).map_err(bad)?;
    let coinb2 = hex_decode(&t.coinb2).map_err(bad)?;
    let mut coinbase = coinb1;
    coinbase.extend_from_slice(extranonce);
    coinbase.extend_from_slice(&coinb2);
    if coinbase.len() < 8 {
        return Err(bad("coinbase too short".into()));
    }
    let mut txs = Vec::with_capacity(t.transactions.len());
    let mut leaves = vec![sha256d(&coinbase)];
    for hex in &t.transactions {
        let raw = hex_decode(hex).map_err(bad)?;
        leaves.push(txid_of(&raw).map_err(bad)?);
        txs.push(raw);
    }
    if merkle_root(&leaves)[..] != header[36..68] {
        return Err(RebuildError::MerkleRoot(t.job_id.clone()));
    }
    let mut block =
        Vec::with_capacity(80 + coinbase.len() + 64 + txs.iter().map(Vec::len).sum::<usize>());
    block.extend_from_slice(header);
    compact_size(1 + txs.len(), &mut block);
    // The coinbase with its witness: marker and flag after the version, one witness item
    // of 32 zero bytes (the reserved value the commitment hashes) before the locktime.
    let (body, locktime) = coinbase.split_at(coinbase.len() - 4);
    block.extend_from_slice(&body[..4]);
    block.extend_from_slice(&[0x00, 0x01]);
    block.extend_from_slice(&body[4..]);
    block.extend_from_slice(&[0x01, 0x20]);
    block.extend_from_slice(&[0u8; 32]);
    block.extend_from_slice(locktime);
    for tx in &txs {
        block.extend_from_slice(tx);
    }
    Ok(block)
}

/// The txid of a serialized transaction, with or without witness (the witness is left out
/// of the hash).
fn txid_of(raw: &[u8]) -> Result<[u8; 32], String> {
    use bitcoin::consensus::Decodable;
    use bitcoin::hashes::Hash;
    let tx = bitcoin::Transaction::consensus_decode(&mut &raw[..])
        .map_err(|e| format!("transaction does not decode: {e}"))?;
    Ok(tx.compute_txid().to_byte_array())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::rpc::{CoinbaseAux, TemplateTx};
    use bitcoin::hashes::Hash;

    fn plan() -> CoinbasePlan {
        CoinbasePlan {
            // P2WPKH of a 20-byte zero hash.
            payout_script: [vec![0x00, 0x14], vec![0u8; 20]].concat(),
            tag: b"/sharecheck/".to_vec(),
            extranonce_len: 8,
        }
    }

    /// Two real transactions of a test chain (a legacy spend and a segwit spend), as a node
    /// would list them.
    fn txs() -> Vec<bitcoin::Transaction> {
        use bitcoin::{
            absolute, transaction, Amount, OutPoint, ScriptBuf, Sequence, TxIn, TxOut, Witness,
        };
        let legacy = bitcoin::Transaction {
            version: transaction::Version::ONE,
            lock_time: absolute::LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::new(bitcoin::Txid::from_byte_array([7; 32]), 0),
                script_sig: ScriptBuf::from_bytes(vec![0x51]),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(1000),
                script_pubkey: ScriptBuf::from_bytes(vec![0x51]),
            }],
        };
        let mut segwit = legacy.clone();
        segwit.input[0].previous_output.vout = 1;
        segwit.input[0].script_sig = ScriptBuf::new();
        segwit.input[0].witness = Witness::from_slice(&[vec![1u8; 72], vec![2u8; 33]]);
        let mut third = legacy.clone();
        third.input[0].previous_output.vout = 2;
        vec![legacy, segwit, third]
    }

    fn template(txs: &[bitcoin::Transaction]) -> BlockTemplate {
        use bitcoin::consensus::encode::serialize_hex;
        BlockTemplate {
            version: 0x2000_0000,
            previousblockhash: "583ce7763908e33c8e8203454e903104aaf4dbd97760cdb56808fa66cd2a177e"
                .into(),
            transactions: txs
                .iter()
                .map(|t| TemplateTx {
                    data: serialize_hex(t),
                    txid: t.compute_txid().to_string(),
                    hash: t.compute_wtxid().to_string(),
                    fee: Some(100),
                })
                .collect(),
            coinbasevalue: 5_000_000_100,
            coinbaseaux: Some(CoinbaseAux {
                flags: "0b2f503253482f627463642f".into(),
            }),
            bits: "207fffff".into(),
            height: 300,
            curtime: 1_796_162_674,
            mintime: None,
            default_witness_commitment: None,
            longpollid: None,
            target: "7fffff0000000000000000000000000000000000000000000000000000000000".into(),
        }
    }

    /// The coinbase parts around any extranonce make a valid transaction paying the whole
    /// value, with BIP34's height first in its script and the witness commitment rust-bitcoin
    /// computes for the same transactions.
    #[test]
    fn the_coinbase_is_a_transaction_with_height_payout_and_commitment() {
        let txs = txs();
        let t = template(&txs);
        let (c1, c2) = coinbase_parts(&t, &plan()).unwrap();
        let coinbase: Vec<u8> = [c1.clone(), vec![0xab; 8], c2].concat();
        use bitcoin::consensus::Decodable;
        let tx = bitcoin::Transaction::consensus_decode(&mut &coinbase[..]).unwrap();
        assert!(tx.is_coinbase());
        let script = tx.input[0].script_sig.as_bytes();
        assert_eq!(
            &script[..3],
            &[0x02, 0x2c, 0x01],
            "BIP34: 300 as a 2-byte push"
        );
        assert!(script.windows(8).any(|w| w == [0xab; 8]));
        assert_eq!(tx.output[0].value.to_sat(), 5_000_000_100);
        assert_eq!(
            tx.output[0].script_pubkey.as_bytes(),
            &plan().payout_script[..]
        );
        // rust-bitcoin's witness commitment over the same block.
        let mut all = vec![tx.clone()];
        all.extend(txs.iter().cloned());
        let hashes = all.iter().enumerate().map(|(i, t)| {
            if i == 0 {
                bitcoin::Wtxid::all_zeros().to_raw_hash()
            } else {
                t.compute_wtxid().to_raw_hash()
            }
        });
        let root = bitcoin::merkle_tree::calculate_root(hashes).unwrap();
        let root = bitcoin::WitnessMerkleNode::from_raw_hash(root);
        let want = bitcoin::Block::compute_witness_commitment(&root, &[0u8; 32]);
        assert_eq!(
            &tx.output[1].script_pubkey.as_bytes()[6..],
            want.as_byte_array()
        );
        assert_eq!(c1.len() + 8, c1.len() + plan().extranonce_len);
    }

    /// Folding the coinbase hash with the branch gives the merkle root rust-bitcoin computes
    /// over the whole transaction list, for 0 to 9 other transactions.
    #[test]
    fn the_branch_folds_to_the_block_merkle_root() {
        for n in 0..10usize {
            let others: Vec<[u8; 32]> = (0..n).map(|i| sha256d(&[i as u8])).collect();
            let cb = sha256d(b"coinbase");
            let branch = coinbase_branch(&others);
            let mut acc = cb;
            for h in &branch {
                acc = sha256d(&[acc, *h].concat());
            }
            let mut leaves = vec![cb];
            leaves.extend_from_slice(&others);
            let hashes = leaves
                .iter()
                .map(|h| bitcoin::TxMerkleNode::from_byte_array(*h));
            let want = bitcoin::merkle_tree::calculate_root(hashes).unwrap();
            assert_eq!(acc, want.to_byte_array(), "{n} transactions");
            assert_eq!(merkle_root(&leaves), acc);
        }
    }

    /// A share's header over the job (the coinbase with its extranonce, the branch) rebuilds
    /// into a block rust-bitcoin decodes, whose merkle root and witness commitment check; a
    /// header with another root is refused.
    #[test]
    fn a_share_rebuilds_into_a_valid_block() {
        let txs = txs();
        let t = template(&txs);
        let (job, stored) = job_from_template(&t, &plan(), "a1", true, 0x1fffe000).unwrap();
        let en = [1, 2, 3, 4, 5, 6, 7, 8];
        let coinbase = [job.coinb1.clone(), en.to_vec(), job.coinb2.clone()].concat();
        let mut root = sha256d(&coinbase);
        for h in &job.merkle_branch {
            root = sha256d(&[root, *h].concat());
        }
        let mut header = [0u8; 80];
        header[..4].copy_from_slice(&job.version.to_le_bytes());
        header[4..36].copy_from_slice(&job.prevhash);
        header[36..68].copy_from_slice(&root);
        header[68..72].copy_from_slice(&job.ntime.to_le_bytes());
        header[72..76].copy_from_slice(&job.nbits.to_le_bytes());
        let raw = rebuild_block(&header, &en, &stored).unwrap();
        let block: bitcoin::Block = bitcoin::consensus::deserialize(&raw).unwrap();
        assert_eq!(block.txdata.len(), 4);
        assert!(block.check_merkle_root());
        assert!(block.check_witness_commitment());
        assert_eq!(block.bip34_block_height().unwrap(), 300);
        assert_eq!(block.header.prev_blockhash.to_string(), t.previousblockhash);
        let mut other = header;
        other[40] ^= 1;
        assert_eq!(
            rebuild_block(&other, &en, &stored),
            Err(RebuildError::MerkleRoot("a1".into()))
        );
    }

    #[test]
    fn heights_push_as_core_does() {
        let h = |n| {
            let mut v = Vec::new();
            push_height(n, &mut v);
            v
        };
        assert_eq!(h(1), [0x51]);
        assert_eq!(h(16), [0x60]);
        assert_eq!(h(17), [0x01, 17]);
        assert_eq!(h(128), [0x02, 0x80, 0x00]);
        assert_eq!(h(840_000), [0x03, 0x40, 0xd1, 0x0c]);
    }

    #[test]
    fn an_oversized_coinbase_script_is_refused() {
        let t = template(&[]);
        let mut p = plan();
        p.tag = vec![b'x'; 75];
        p.extranonce_len = 32;
        assert!(matches!(
            coinbase_parts(&t, &p),
            Err(TemplateError::ScriptSize(_))
        ));
    }
}
