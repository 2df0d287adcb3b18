//! Data formats: the binary batch format that travels on Kafka ([`binary`]), the JSON Lines
//! format of `sharecheck verify` ([`jsonl`]), and hex helpers.

pub mod binary;
pub mod example;
pub mod hex;
pub mod jsonl;
