//! Helpers for the tests against a real Bitcoin node: a btcd on regtest of the test's own
//! ([`Btcd`], started with scripts/btcd.sh on free ports in its own services directory), and
//! a [`Wallet`] with a fixed key that signs real transactions for it.
//!
//! btcd is built once per machine by `scripts/btcd.sh install` (scripts/test.sh runs it
//! before `cargo test`, so the build is outside every test's time); its binaries are shared
//! from $SHARECHECK_SERVICES_DIR/btcd-dist (or $BTCD_DIST_ROOT), as scripts/btcd.sh reads them.
#![allow(dead_code)]

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    absolute::LockTime, transaction::Version, Address, Amount, CompressedPublicKey, Network,
    OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness, Wtxid,
};
use serde_json::{json, Value};
use sharecheck::chain::rpc::Rpc;
use sharecheck::config::BitcoindConfig;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

fn btcd_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/btcd.sh")
}

/// The services dir scripts/btcd.sh uses when none is given: where the shared build lives.
fn shared_services_dir() -> PathBuf {
    std::env::var_os("SHARECHECK_SERVICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/sharecheck")
        })
}

/// Builds btcd once per test process (a no-op when it is built already).
pub fn ensure_installed() {
    static DONE: Once = Once::new();
    DONE.call_once(|| {
        let out = Command::new(btcd_script())
            .arg("install")
            .env("SHARECHECK_SERVICES_DIR", shared_services_dir())
            .output()
            .expect("run scripts/btcd.sh install");
        assert!(
            out.status.success(),
            "scripts/btcd.sh install failed (Go is needed):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// A free local TCP port, other than `not`.
fn free_port(not: u16) -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p != not {
            return p;
        }
    }
}

/// A btcd on regtest of the test's own, mining to [`Wallet`]'s P2PKH address. Stopped and its
/// chain deleted when dropped, also when the test fails.
pub struct Btcd {
    pub rpc_port: u16,
    pub p2p_port: u16,
    pub dir: PathBuf,
    pub user: String,
    pub password: String,
}

impl Btcd {
    pub fn start(name: &str) -> Btcd {
        ensure_installed();
        let rpc_port = free_port(0);
        let p2p_port = free_port(rpc_port);
        let dir = std::env::temp_dir().join(format!(
            "sharecheck-btcd-{}-{name}-{rpc_port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let b = Btcd {
            rpc_port,
            p2p_port,
            dir,
            user: "sharecheck-test".into(),
            password: format!("pw-{rpc_port}"),
        };
        b.run("up");
        b
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    /// A `[bitcoind]` config for this node alone.
    pub fn config(&self) -> BitcoindConfig {
        BitcoindConfig {
            url: self.url(),
            user: self.user.clone(),
            password: self.password.clone(),
            ..Default::default()
        }
    }

    /// The `[bitcoind]` table of a config file for this node.
    pub fn toml(&self) -> String {
        format!(
            "[bitcoind]\nurl = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\n",
            self.url(),
            self.user,
            self.password
        )
    }

    pub fn rpc(&self) -> Rpc {
        Rpc::new(&self.config()).expect("rpc client")
    }

    /// Stops the node (for outage tests).
    pub fn stop(&self) {
        self.run("down");
    }

    /// Starts it again after [`Btcd::stop`], on the same ports. btcd deletes its regtest
    /// chain at every start, so the node comes back at height 0 with a new tip.
    pub fn restart(&self) {
        self.run("up");
    }

    fn command(&self, arg: &str) -> Command {
        let mut c = Command::new(btcd_script());
        c.arg(arg)
            .env("SHARECHECK_SERVICES_DIR", &self.dir)
            .env("BTCD_RPC_PORT", self.rpc_port.to_string())
            .env("BTCD_P2P_PORT", self.p2p_port.to_string())
            .env("BTCD_RPC_USER", &self.user)
            .env("BTCD_RPC_PASS", &self.password)
            .env(
                "BTCD_MINING_ADDR",
                Wallet::new().p2pkh_address().to_string(),
            )
            .env(
                "BTCD_DIST_ROOT",
                std::env::var_os("BTCD_DIST_ROOT")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| shared_services_dir().join("btcd-dist")),
            );
        c
    }

    /// `scripts/btcd.sh ARG` for this node; panics with the script's output on failure.
    pub fn run(&self, arg: &str) {
        let out = self.command(arg).output().expect("run scripts/btcd.sh");
        assert!(
            out.status.success(),
            "scripts/btcd.sh {arg} (RPC port {}) failed:\n{}",
            self.rpc_port,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Mines `n` blocks to the wallet with btcd's `generate` (Core has `generatetoaddress`
    /// instead): their hashes.
    pub fn generate(&self, n: u64) -> Vec<String> {
        let v = self.rpc().call("generate", json!([n])).expect("generate");
        serde_json::from_value(v).expect("generate returns block hashes")
    }

    /// Mines `n` blocks, so that the coinbases of the first `n - 100` can be spent (100
    /// confirmations on regtest as on mainnet): the hashes.
    pub fn mature(&self, n: u64) -> Vec<String> {
        self.generate(n)
    }

    /// Mines until segwit is active for the next block. btcd's regtest starts segwit as a
    /// BIP 9 deployment (Core's has it active from the start): it locks in after a window of
    /// 144 signalling blocks and is active from height 432, so this mines to height 431.
    pub fn activate_segwit(&self) {
        for _ in 0..5 {
            if self.segwit_status() == "active" {
                return;
            }
            let count = self.rpc().block_count().unwrap();
            // To the last block of the current 144-block window.
            let n = match 143 - count % 144 {
                0 => 144,
                n => n,
            };
            self.generate(n);
        }
        panic!("segwit still {} after 5 windows", self.segwit_status());
    }

    /// btcd's BIP 9 state of segwit for the next block (`defined`, `started`, `lockedin`,
    /// `active`); `active` for a node that does not report it (Core).
    pub fn segwit_status(&self) -> String {
        let info = self
            .rpc()
            .call("getblockchaininfo", json!([]))
            .expect("getblockchaininfo");
        info["bip9_softforks"]["segwit"]["status"]
            .as_str()
            .unwrap_or("active")
            .to_string()
    }
}

impl Drop for Btcd {
    fn drop(&mut self) {
        let _ = self.command("down").arg("--purge").output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A transaction the wallet sent, with what a template check needs.
#[derive(Debug, Clone)]
pub struct SentTx {
    pub tx: Transaction,
    pub txid: Txid,
    /// Equal to the txid unless the transaction has witnesses.
    pub wtxid: Wtxid,
    /// Satoshis.
    pub fee: u64,
}

/// One fixed, deterministic secp256k1 key: the secret is SHA-256 of
/// "sharecheck regtest test key". Its P2PKH address is the one btcd mines to, its P2WPKH
/// address the one the segwit spends go through.
pub struct Wallet {
    secp: Secp256k1<bitcoin::secp256k1::All>,
    secret: SecretKey,
    public: CompressedPublicKey,
}

/// What each of the wallet's transactions leaves to the miner, in satoshis.
pub const FEE: u64 = 10_000;

impl Default for Wallet {
    fn default() -> Self {
        Wallet::new()
    }
}

impl Wallet {
    pub fn new() -> Wallet {
        let secp = Secp256k1::new();
        let digest = sha256::Hash::hash(b"sharecheck regtest test key");
        let secret = SecretKey::from_slice(digest.as_byte_array()).expect("a valid key");
        let public = CompressedPublicKey(secret.public_key(&secp));
        Wallet {
            secp,
            secret,
            public,
        }
    }

    pub fn p2pkh_address(&self) -> Address {
        Address::p2pkh(self.public, Network::Regtest)
    }

    pub fn p2wpkh_address(&self) -> Address {
        Address::p2wpkh(&self.public, Network::Regtest)
    }

    pub fn p2pkh_script(&self) -> ScriptBuf {
        self.p2pkh_address().script_pubkey()
    }

    pub fn p2wpkh_script(&self) -> ScriptBuf {
        self.p2wpkh_address().script_pubkey()
    }

    /// Spends the coinbase of block `block_hash` (mined to the wallet, at least 100 deep)
    /// with a legacy P2PKH signature, paying all but [`FEE`] to the wallet's P2WPKH address
    /// (output 0), and sends it with sendrawtransaction.
    pub fn spend_coinbase(&self, rpc: &Rpc, block_hash: &str) -> SentTx {
        let raw = rpc
            .call("getblock", json!([block_hash, 0]))
            .expect("getblock");
        let block: bitcoin::Block = decode_hex(raw.as_str().expect("getblock hex"));
        let coinbase = &block.txdata[0];
        let vout = coinbase
            .output
            .iter()
            .position(|o| o.script_pubkey == self.p2pkh_script())
            .expect("the coinbase pays the wallet's P2PKH address");
        let value = coinbase.output[vout].value;
        let mut tx = self.one_to_one(
            OutPoint::new(coinbase.compute_txid(), vout as u32),
            value,
            self.p2wpkh_script(),
        );
        let sighash = SighashCache::new(&tx)
            .legacy_signature_hash(0, &self.p2pkh_script(), EcdsaSighashType::All.to_u32())
            .expect("sighash");
        let sig = self.sign(sighash.to_byte_array());
        tx.input[0].script_sig = bitcoin::script::Builder::new()
            .push_slice(sig.serialize())
            .push_key(&self.public.into())
            .into_script();
        self.send(rpc, tx)
    }

    /// Spends output 0 of `prev` (a [`Wallet::spend_coinbase`] transaction, paying the
    /// wallet's P2WPKH address) with a witness, paying all but [`FEE`] back to the P2PKH
    /// address, and sends it: a segwit transaction whose wtxid differs from its txid.
    pub fn spend_p2wpkh(&self, rpc: &Rpc, prev: &SentTx) -> SentTx {
        let out = &prev.tx.output[0];
        assert_eq!(
            out.script_pubkey,
            self.p2wpkh_script(),
            "not a P2WPKH output"
        );
        let mut tx = self.one_to_one(OutPoint::new(prev.txid, 0), out.value, self.p2pkh_script());
        let sighash = SighashCache::new(&tx)
            .p2wpkh_signature_hash(0, &out.script_pubkey, out.value, EcdsaSighashType::All)
            .expect("sighash");
        let sig = self.sign(sighash.to_byte_array());
        tx.input[0].witness = Witness::p2wpkh(&sig, &self.public.0);
        self.send(rpc, tx)
    }

    /// An unsigned transaction of one input and one output of `value` less [`FEE`].
    fn one_to_one(&self, prevout: OutPoint, value: Amount, to: ScriptBuf) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: prevout,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: value - Amount::from_sat(FEE),
                script_pubkey: to,
            }],
        }
    }

    fn sign(&self, digest: [u8; 32]) -> bitcoin::ecdsa::Signature {
        let msg = Message::from_digest(digest);
        bitcoin::ecdsa::Signature {
            signature: self.secp.sign_ecdsa(&msg, &self.secret),
            sighash_type: EcdsaSighashType::All,
        }
    }

    fn send(&self, rpc: &Rpc, tx: Transaction) -> SentTx {
        let hex = bitcoin::consensus::encode::serialize_hex(&tx);
        let answer = rpc
            .call("sendrawtransaction", json!([hex]))
            .unwrap_or_else(|e| panic!("sendrawtransaction {hex}: {e}"));
        let txid = tx.compute_txid();
        assert_eq!(answer, Value::String(txid.to_string()), "the node's txid");
        SentTx {
            wtxid: tx.compute_wtxid(),
            txid,
            tx,
            fee: FEE,
        }
    }
}

/// A consensus-encoded value from hex.
pub fn decode_hex<T: bitcoin::consensus::Decodable>(hex: &str) -> T {
    use bitcoin::hex::FromHex;
    let bytes = Vec::<u8>::from_hex(hex).expect("hex");
    bitcoin::consensus::encode::deserialize(&bytes).expect("consensus encoding")
}
