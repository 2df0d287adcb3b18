//! The Bitcoin node's JSON-RPC: the template types (the client comes with the btcd work).

#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
pub struct BlockTemplate {
    pub version: u32,
    pub previousblockhash: String,
    pub transactions: Vec<TemplateTx>,
    pub coinbasevalue: u64,
    #[serde(default)]
    pub coinbaseaux: Option<CoinbaseAux>,
    pub bits: String,
    pub height: u64,
    pub curtime: u64,
    #[serde(default)]
    pub mintime: Option<u64>,
    #[serde(default)]
    pub default_witness_commitment: Option<String>,
    #[serde(default)]
    pub longpollid: Option<String>,
    pub target: String,
}

#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
pub struct TemplateTx {
    pub data: String,
    pub txid: String,
    /// wtxid
    pub hash: String,
    #[serde(default)]
    pub fee: Option<i64>,
}

#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
pub struct CoinbaseAux {
    #[serde(default)]
    pub flags: String,
}
