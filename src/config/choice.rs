//! The keys whose value is one word of a fixed set. Each is an enum, spelled in the file (and
//! on the command line) by the same words as always; any other word is refused when the file
//! is read, with the key and the words it takes, instead of surfacing later as a string
//! nothing matched.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A word a key does not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWord {
    /// The key, e.g. `balance.mode`.
    pub key: &'static str,
    pub got: String,
    /// The words it takes.
    pub words: &'static [&'static str],
}

impl fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} value {:?}; choose one of: {}",
            self.key,
            self.got,
            self.words.join(", ")
        )
    }
}

impl std::error::Error for UnknownWord {}

/// Declares `pub enum $name` spelled by the given words, with `WORDS`, `as_str`, `Display`,
/// `FromStr` (an [`UnknownWord`] names `$key`), and serde through the words.
macro_rules! choice {
    ($(#[$meta:meta])* pub enum $name:ident ($key:literal) {
        $($(#[$vmeta:meta])* $variant:ident = $word:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every word the key takes, in the order errors list them.
            pub const WORDS: &'static [&'static str] = &[$($word),+];

            /// The word that spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownWord;

            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownWord {
                        key: $key,
                        got: s.to_string(),
                        words: Self::WORDS,
                    }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}

choice! {
    /// `backend.kind`: which backend hashes the shares.
    pub enum BackendKind ("backend.kind") {
        /// Self-test and measure every available backend at start, use the fastest.
        Auto = "auto",
        /// The fastest CPU path this machine supports.
        #[default]
        Cpu = "cpu",
        CpuScalar = "cpu:scalar",
        CpuShaNi = "cpu:sha-ni",
        CpuAvx512 = "cpu:avx512",
        CpuAvx2 = "cpu:avx2",
        Wgpu = "wgpu",
        OpenCl = "opencl",
        Fpga = "fpga",
    }
}

impl BackendKind {
    /// The SHA-256 engine of a `cpu:<path>` kind (`scalar`, `sha-ni`, ...); None for the
    /// others, `cpu` included (it picks the fastest).
    pub fn cpu_path(self) -> Option<&'static str> {
        self.as_str().strip_prefix("cpu:")
    }
}

choice! {
    /// `kafka.delivery`: how verdicts and consumed offsets reach the broker.
    pub enum Delivery ("kafka.delivery") {
        #[default]
        AtLeastOnce = "at_least_once",
        /// Verdicts and offsets in one transaction.
        ExactlyOnce = "exactly_once",
    }
}

choice! {
    /// `balance.mode`: how the share partitions are spread over the nodes.
    pub enum BalanceMode ("balance.mode") {
        /// Kafka's consumer group.
        #[default]
        Kafka = "kafka",
        /// By capacity, through ZooKeeper.
        Zookeeper = "zookeeper",
    }
}

choice! {
    /// `balance.zookeeper_auth_scheme`: how a node's sessions authenticate to ZooKeeper:
    /// `balance.zookeeper_auth_file`'s `user:password`, or Kerberos.
    pub enum ZkAuthScheme ("balance.zookeeper_auth_scheme") {
        /// ZooKeeper's digest scheme (`addauth digest`): the password crosses the network
        /// in clear without TLS; the identity is `digest:user:<hash>`.
        #[default]
        Digest = "digest",
        /// SASL DIGEST-MD5 against the server's JAAS users (`DigestLoginModule`): the
        /// password never crosses the network; the identity is `sasl:user`.
        Sasl = "sasl",
        /// SASL GSSAPI (Kerberos): no password file; the process's Kerberos ticket
        /// (`KRB5CCNAME`, or a client keytab, `KRB5_CLIENT_KTNAME`) authenticates, and the
        /// identity is `sasl:<its principal>`. Needs the `gssapi` build.
        Kerberos = "kerberos",
    }
}

choice! {
    /// `log.format`.
    pub enum LogFormat ("log.format") {
        #[default]
        Text = "text",
        Json = "json",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn round_trips<T: FromStr<Err = UnknownWord> + fmt::Display + PartialEq + fmt::Debug>(
        words: &[&str],
    ) {
        for w in words {
            let v: T = w.parse().unwrap();
            assert_eq!(v.to_string(), *w);
        }
    }

    #[test]
    fn every_word_spells_its_value_both_ways() {
        round_trips::<BackendKind>(BackendKind::WORDS);
        round_trips::<Delivery>(Delivery::WORDS);
        round_trips::<BalanceMode>(BalanceMode::WORDS);
        round_trips::<LogFormat>(LogFormat::WORDS);
        round_trips::<ZkAuthScheme>(ZkAuthScheme::WORDS);
        assert_eq!(BackendKind::CpuShaNi.cpu_path(), Some("sha-ni"));
        assert_eq!(BackendKind::Cpu.cpu_path(), None);
        assert_eq!(BackendKind::Wgpu.cpu_path(), None);
    }

    #[test]
    fn a_word_not_taken_names_the_key_and_the_words() {
        let e = "gpu9".parse::<BackendKind>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown backend.kind value \"gpu9\"; choose one of: auto, cpu, cpu:scalar, \
             cpu:sha-ni, cpu:avx512, cpu:avx2, wgpu, opencl, fpga"
        );
        // Spelled exactly: no case folding, no dashes for underscores.
        assert!("JSON".parse::<LogFormat>().is_err());
        assert!("exactly-once".parse::<Delivery>().is_err());
    }

    #[test]
    fn the_file_refuses_a_word_naming_the_key_and_the_words() {
        for (text, key, words) in [
            (
                "[backend]\nkind = \"gpu9\"\n",
                "backend.kind",
                BackendKind::WORDS,
            ),
            (
                "[kafka]\ndelivery = \"twice\"\n",
                "kafka.delivery",
                Delivery::WORDS,
            ),
            (
                "[balance]\nmode = \"zk\"\n",
                "balance.mode",
                BalanceMode::WORDS,
            ),
            ("[log]\nformat = \"xml\"\n", "log.format", LogFormat::WORDS),
        ] {
            let e = crate::config::Config::parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
            assert!(e.contains(&words.join(", ")), "{e}");
        }
        let e = crate::config::Config::parse("[log]\nformat = 3\n").unwrap_err();
        assert!(e.to_string().contains("expected a string"), "{e}");
    }
}
