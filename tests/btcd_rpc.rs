//! The RPC client against a real btcd on regtest: templates with real transactions (legacy and
//! segwit), block submission, failover and a refused login; and one block mined by hand from a
//! template exactly as a pool builds it, accepted by the node.

mod btcd_support;

use bitcoin::blockdata::block::{Header, Version as BlockVersion};
use bitcoin::hashes::Hash;
use bitcoin::hex::FromHex;
use bitcoin::{
    absolute::LockTime, transaction::Version, Amount, Block, BlockHash, CompactTarget, OutPoint,
    ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode, TxOut, Witness, Wtxid,
};
use btcd_support::{decode_hex, Btcd, SentTx, Wallet, FEE};
use serde_json::json;
use sharecheck::chain::rpc::{BlockTemplate, Rpc, RpcError};
use std::str::FromStr;
use std::time::Instant;

/// Regtest's subsidy at `height`: 50 BTC, halved every 150 blocks.
fn subsidy(height: u64) -> u64 {
    5_000_000_000 >> (height / 150)
}

/// A node with segwit active, a legacy spend of a mature coinbase and a segwit spend of that
/// spend's output in its mempool.
fn node_with_two_transactions(name: &str) -> (Btcd, Rpc, SentTx, SentTx) {
    let btcd = Btcd::start(name);
    let rpc = btcd.rpc();
    let started = Instant::now();
    btcd.activate_segwit();
    eprintln!(
        "segwit active at height {} after {:.1} s",
        rpc.block_count().unwrap(),
        started.elapsed().as_secs_f64()
    );
    let block1 = rpc.call("getblockhash", json!([1])).unwrap();
    let wallet = Wallet::new();
    let legacy = wallet.spend_coinbase(&rpc, block1.as_str().unwrap());
    let segwit = wallet.spend_p2wpkh(&rpc, &legacy);
    (btcd, rpc, legacy, segwit)
}

#[test]
fn the_scripts_default_mining_address_is_the_wallets() {
    let script =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/btcd.sh")).unwrap();
    let want = format!(
        "BTCD_MINING_ADDR=\"${{BTCD_MINING_ADDR:-{}}}\"",
        Wallet::new().p2pkh_address()
    );
    assert!(script.contains(&want), "scripts/btcd.sh should set {want}");
}

#[test]
fn a_template_lists_the_transactions_with_their_ids_and_fees() {
    let (_btcd, rpc, legacy, segwit) = node_with_two_transactions("template");
    assert_ne!(segwit.txid.to_string(), segwit.wtxid.to_string());
    let t = rpc.block_template(None).unwrap();
    let height = rpc.block_count().unwrap() + 1;
    assert_eq!(height, 432, "btcd's regtest activates segwit at 432");
    assert_eq!(t.height, height);
    assert_eq!(t.previousblockhash, rpc.best_block_hash().unwrap());
    assert_eq!(t.bits, "207fffff");
    let listed: Vec<(&str, &str, Option<i64>)> = t
        .transactions
        .iter()
        .map(|x| (x.txid.as_str(), x.hash.as_str(), x.fee))
        .collect();
    let want = [&legacy, &segwit].map(|s| (s.txid.to_string(), s.wtxid.to_string()));
    assert_eq!(
        listed,
        [
            (want[0].0.as_str(), want[0].1.as_str(), Some(FEE as i64)),
            (want[1].0.as_str(), want[1].1.as_str(), Some(FEE as i64)),
        ],
        "the spend comes after the transaction it spends"
    );
    assert_eq!(
        t.transactions[1].data,
        bitcoin::consensus::encode::serialize_hex(&segwit.tx),
        "template data carries the witness"
    );
    assert_eq!(t.coinbasevalue, subsidy(height) + 2 * FEE);
    let commitment = t.default_witness_commitment.as_deref().unwrap();
    assert!(commitment.starts_with("6a24aa21a9ed"), "{commitment}");
    assert!(t.longpollid.is_some());
}

#[test]
fn best_block_hash_follows_generate_and_garbage_blocks_are_rejected() {
    let btcd = Btcd::start("tip");
    let rpc = btcd.rpc();
    assert_eq!(rpc.block_count().unwrap(), 0);
    let mined = btcd.generate(2);
    assert_eq!(rpc.block_count().unwrap(), 2);
    assert_eq!(rpc.best_block_hash().unwrap(), mined[1]);
    let reason = rpc.submit_block_at(0, "00").unwrap();
    assert!(
        reason.as_deref().is_some_and(|r| r.contains("decode")),
        "{reason:?}"
    );
    // A block the node has already: rejected with a reason, not an error.
    let known = rpc.call("getblock", json!([mined[1], 0])).unwrap();
    let reason = rpc.submit_block_at(0, known.as_str().unwrap()).unwrap();
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("already have")),
        "{reason:?}"
    );
    assert_eq!(rpc.best_block_hash().unwrap(), mined[1]);
}

#[test]
fn a_node_refusing_connections_is_passed_over_and_a_wrong_password_is_unreachable() {
    let btcd = Btcd::start("failover");
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut cfg = btcd.config();
    cfg.url = refused.clone();
    cfg.fallback_urls = vec![btcd.url()];
    let rpc = Rpc::new(&cfg).unwrap();
    assert_eq!(rpc.block_count().unwrap(), 0);
    assert!(rpc.block_template(None).is_ok());
    assert_eq!(rpc.url(1), btcd.url());

    let mut wrong = btcd.config();
    wrong.password = "not-the-password".into();
    match Rpc::new(&wrong).unwrap().block_count() {
        Err(e @ RpcError::Unreachable(_)) => {
            let m = e.to_string();
            assert!(m.contains(&btcd.url()), "{m}");
            assert!(m.contains("401") && m.contains("credentials"), "{m}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_long_poll_waits_for_the_next_block() {
    let btcd = Btcd::start("longpoll");
    btcd.generate(1);
    let t = btcd.rpc().block_template(None).unwrap();
    let id = t.longpollid.clone().unwrap();

    // Nothing changes: the node holds the poll until the client's timeout, and the client
    // then fetches the same template.
    let mut cfg = btcd.config();
    cfg.longpoll_timeout_ms = 500;
    let quick = Rpc::new(&cfg).unwrap();
    let started = Instant::now();
    let same = quick.block_template(Some(&id)).unwrap();
    assert!(
        started.elapsed().as_millis() >= 500,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(same.previousblockhash, t.previousblockhash);

    // A new block ends the poll (at once, if it came before the poll did).
    let rpc = btcd.rpc();
    let polling = std::thread::spawn(move || rpc.block_template(Some(&id)).unwrap());
    let mined = btcd.generate(1);
    let next = polling.join().unwrap();
    assert_eq!(next.previousblockhash, mined[0]);
    assert_eq!(next.height, t.height + 1);
}

#[test]
fn a_stopped_node_is_unreachable_and_a_restarted_one_starts_a_new_chain() {
    let btcd = Btcd::start("outage");
    let rpc = btcd.rpc();
    let mined = btcd.generate(3);
    btcd.stop();
    match rpc.block_count() {
        Err(RpcError::Unreachable(m)) => assert!(m.contains(&btcd.url()), "{m}"),
        other => panic!("{other:?}"),
    }
    btcd.restart();
    // The same client reconnects. btcd deletes its regtest chain at every start.
    assert_eq!(rpc.block_count().unwrap(), 0);
    assert_ne!(rpc.best_block_hash().unwrap(), mined[2]);
    assert_eq!(btcd.generate(1).len(), 1);
}

/// The coinbase a pool builds for template `t`: BIP 34 height, the node's coinbaseaux flags
/// and an extranonce in the scriptSig; the reward to `payout`; with a witness commitment, the
/// commitment output last and the 32-byte witness reserved value (zeros) as the input's
/// witness.
fn coinbase(t: &BlockTemplate, payout: ScriptBuf, commitment: Option<ScriptBuf>) -> Transaction {
    let mut script_sig = bitcoin::script::Builder::new()
        .push_int(t.height as i64)
        .into_script()
        .into_bytes();
    // The flags are script bytes to append as they are (btcd's are a push of "/P2SH/btcd/").
    let flags = t.coinbaseaux.as_ref().map_or("", |a| a.flags.as_str());
    script_sig.extend(Vec::<u8>::from_hex(flags).unwrap());
    script_sig.extend([8]); // a push of an 8-byte extranonce
    script_sig.extend(0x5348_4152_4543_4845u64.to_le_bytes());
    let mut output = vec![TxOut {
        value: Amount::from_sat(t.coinbasevalue),
        script_pubkey: payout,
    }];
    let mut witness = Witness::new();
    if let Some(script) = commitment {
        output.push(TxOut {
            value: Amount::ZERO,
            script_pubkey: script,
        });
        witness.push([0u8; 32]);
    }
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(script_sig),
            sequence: Sequence::MAX,
            witness,
        }],
        output,
    }
}

/// The witness commitment output script for the template's transactions: wtxids (the
/// coinbase's counted as zeros) into a merkle root, hashed with the reserved value.
fn witness_commitment_script(t: &BlockTemplate) -> ScriptBuf {
    let wtxids = std::iter::once(Wtxid::all_zeros()).chain(
        t.transactions
            .iter()
            .map(|x| Wtxid::from_str(&x.hash).unwrap()),
    );
    let root = bitcoin::merkle_tree::calculate_root(wtxids.map(|w| w.to_raw_hash()))
        .map(bitcoin::WitnessMerkleNode::from_raw_hash)
        .unwrap();
    let commitment = Block::compute_witness_commitment(&root, &[0u8; 32]);
    let mut script = Vec::<u8>::from_hex("6a24aa21a9ed").unwrap();
    script.extend(commitment.to_byte_array());
    ScriptBuf::from_bytes(script)
}

/// A block for template `t` as a pool assembles it: [`coinbase`] paying the wallet, the
/// template's transactions in its order, the merkle root, and the nonce ground on the CPU
/// until the header meets the target (regtest's 207fffff: about every second nonce does).
fn mine_by_hand(t: &BlockTemplate, commitment: Option<ScriptBuf>) -> Block {
    let mut txdata = vec![coinbase(t, Wallet::new().p2pkh_script(), commitment)];
    txdata.extend(
        t.transactions
            .iter()
            .map(|x| decode_hex::<Transaction>(&x.data)),
    );
    let mut block = Block {
        header: Header {
            version: BlockVersion::from_consensus(t.version as i32),
            prev_blockhash: BlockHash::from_str(&t.previousblockhash).unwrap(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: t.curtime as u32,
            bits: CompactTarget::from_consensus(u32::from_str_radix(&t.bits, 16).unwrap()),
            nonce: 0,
        },
        txdata,
    };
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    let target = block.header.target();
    while block.header.validate_pow(target).is_err() {
        block.header.nonce += 1;
    }
    block
}

#[test]
fn a_block_mined_by_hand_from_a_template_becomes_the_tip() {
    let (_btcd, rpc, legacy, segwit) = node_with_two_transactions("mine");
    let t = rpc.block_template(None).unwrap();
    assert_eq!(t.transactions.len(), 2);

    let commitment = witness_commitment_script(&t);
    assert_eq!(
        Some(commitment.to_hex_string()),
        t.default_witness_commitment,
        "the commitment over the wallet's wtxids is the node's"
    );
    let block = mine_by_hand(&t, Some(commitment));
    assert_eq!(block.txdata[1].compute_txid(), legacy.txid);
    assert_eq!(block.txdata[2].compute_wtxid(), segwit.wtxid);
    assert!(block.check_witness_commitment());

    // Without the witness reserved value in the coinbase the node refuses the block. The
    // witness is in no txid, so the header and hash stay those of the good block, which the
    // node takes afterwards all the same.
    let mut bare = block.clone();
    bare.txdata[0].input[0].witness = Witness::new();
    assert_refused(submit(&rpc, &bare), "witness");

    assert_becomes_tip(&rpc, &block);
    assert_eq!(rpc.block_count().unwrap(), t.height);
    let next = rpc.block_template(None).unwrap();
    assert!(next.transactions.is_empty(), "both transactions were mined");
    assert_eq!(
        next.default_witness_commitment, None,
        "btcd sends none without witness transactions"
    );
}

#[test]
fn a_template_without_transactions_is_mined_without_a_witness_commitment() {
    let btcd = Btcd::start("empty");
    let rpc = btcd.rpc();
    // Before segwit is active btcd takes a coinbase witness without a commitment too.
    btcd.activate_segwit();
    let t = rpc.block_template(None).unwrap();
    assert!(t.transactions.is_empty());
    assert_eq!(t.default_witness_commitment, None);
    assert_eq!(t.coinbasevalue, subsidy(t.height));

    // A coinbase witness with no commitment to it is refused.
    let block = mine_by_hand(&t, None);
    let mut witnessed = block.clone();
    witnessed.txdata[0].input[0].witness.push([0u8; 32]);
    assert_refused(submit(&rpc, &witnessed), "witness");

    assert_becomes_tip(&rpc, &block);
}

/// submitblock of `block` on the first endpoint: None when accepted, else the node's reason.
fn submit(rpc: &Rpc, block: &Block) -> Option<String> {
    let hex = bitcoin::consensus::encode::serialize_hex(block);
    rpc.submit_block_at(0, &hex).expect("the node answers")
}

fn assert_refused(reason: Option<String>, says: &str) {
    assert!(
        reason.as_deref().is_some_and(|r| r.contains(says)),
        "{reason:?} should be a refusal saying {says:?}"
    );
}

fn assert_becomes_tip(rpc: &Rpc, block: &Block) {
    assert_eq!(submit(rpc, block), None, "accepted");
    assert_eq!(
        rpc.best_block_hash().unwrap(),
        block.block_hash().to_string()
    );
}
