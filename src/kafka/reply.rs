//! Verdict routing: a share message may name, in its `reply_to` header, the topic (and
//! partition) its verdicts go to, so that each stratum server reads the verdicts of its own
//! shares and no one else's.
//!
//! The node only writes where the config allows (the replies topic, or a topic named after
//! it and a dot), and only to a partition that exists: a producer cannot make it write into
//! the jobs topic, nor stall a partition on a verdict that can never be delivered. A route
//! it refuses sends the verdicts to the verdicts topic instead, with the reason in the
//! `reply_refused` header: the verdicts are never lost, and the stratum server that asked
//! gets its timeout.

use rdkafka::consumer::Consumer;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Share messages: where their verdicts go, `TOPIC` or `TOPIC:PARTITION` (Kafka topic names
/// cannot hold a colon).
pub const H_REPLY_TO: &str = "reply_to";
/// Verdict messages whose share message named a route the node refused: why.
pub const H_REPLY_REFUSED: &str = "reply_refused";

/// Where a share message's verdicts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub topic: String,
    /// None: librdkafka's partitioner places the message by its key.
    pub partition: Option<i32>,
}

impl Route {
    /// Reads a `reply_to` header value.
    pub fn parse(v: &[u8]) -> Result<Route, String> {
        let s = std::str::from_utf8(v).map_err(|_| "reply_to is not UTF-8".to_string())?;
        let (topic, partition) = match s.split_once(':') {
            Some((t, p)) => {
                let p: i32 = p
                    .parse()
                    .ok()
                    .filter(|p| *p >= 0)
                    .ok_or_else(|| format!("reply_to partition {p:?} is not a number ≥ 0"))?;
                (t, Some(p))
            }
            None => (s, None),
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if topic.is_empty() || topic.len() > 249 || !topic.chars().all(valid) {
            return Err(format!(
                "reply_to topic {topic:?} is not a Kafka topic name"
            ));
        }
        Ok(Route {
            topic: topic.to_string(),
            partition,
        })
    }

    /// The `reply_to` header value of this route.
    pub fn header_value(&self) -> String {
        match self.partition {
            Some(p) => format!("{}:{p}", self.topic),
            None => self.topic.clone(),
        }
    }
}

/// How long a topic's partition count is trusted: a topic made or grown meanwhile is seen
/// within this time.
const KNOWN_FOR: Duration = Duration::from_secs(30);
/// How long a topic found missing stays so before the broker is asked again (each question
/// takes a round trip, and a producer naming a missing topic on every message would
/// otherwise cost one per message).
const MISSING_FOR: Duration = Duration::from_secs(5);
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// A topic's partition count, or why it cannot be written; and when the broker said so.
type Known = (Result<i32, String>, Instant);

/// The routes a node accepts, with the partition counts of the reply topics it has seen.
pub struct Routes {
    replies: String,
    /// Topic → (partition count, or why it cannot be written; when it was asked).
    known: Mutex<HashMap<String, Known>>,
}

impl Routes {
    /// Routes to `replies` (kafka.topics.replies) or to topics named `replies.…`.
    pub fn new(replies: &str) -> Routes {
        Routes {
            replies: replies.to_string(),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the config lets share messages route verdicts to `topic`.
    pub fn allowed(&self, topic: &str) -> bool {
        topic == self.replies
            || topic
                .strip_prefix(self.replies.as_str())
                .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1)
    }

    /// The route if the node may and can write there, else why not. Asks the broker (through
    /// `client`, which must not create topics) for a topic it has not seen lately: blocking,
    /// so call it off the async runtime.
    pub fn check<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
        &self,
        route: Route,
        client: &C,
    ) -> Result<Route, String> {
        if !self.allowed(&route.topic) {
            return Err(format!(
                "reply_to topic {:?} is neither {:?} nor named {:?}",
                route.topic,
                self.replies,
                format!("{}.…", self.replies)
            ));
        }
        let partitions = self.partitions(&route.topic, client)?;
        match route.partition {
            Some(p) if p >= partitions => Err(format!(
                "reply_to partition {p} does not exist ({} has {partitions})",
                route.topic
            )),
            _ => Ok(route),
        }
    }

    fn partitions<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
        &self,
        topic: &str,
        client: &C,
    ) -> Result<i32, String> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((r, at)) = known.get(topic) {
            let fresh = if r.is_ok() { KNOWN_FOR } else { MISSING_FOR };
            if at.elapsed() < fresh {
                return r.clone();
            }
        }
        let r = ask_partitions(topic, client);
        // Bounded: a producer naming ever new allowed topics would grow the map otherwise.
        if known.len() >= 4096 {
            known.retain(|_, (_, at)| at.elapsed() < KNOWN_FOR);
        }
        known.insert(topic.to_string(), (r.clone(), Instant::now()));
        r
    }
}

fn ask_partitions<C: Consumer<X>, X: rdkafka::consumer::ConsumerContext>(
    topic: &str,
    client: &C,
) -> Result<i32, String> {
    let md = client
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|e| format!("metadata of reply topic {topic:?}: {e}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| format!("reply topic {topic:?} does not exist"))?;
    if let Some(e) = t.error() {
        let e = rdkafka::types::RDKafkaErrorCode::from(e);
        return Err(format!("reply topic {topic:?}: {e}"));
    }
    match t.partitions().len() {
        0 => Err(format!("reply topic {topic:?} does not exist")),
        n => Ok(n as i32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_topic_and_partition() {
        let r = Route::parse(b"sharecheck.replies:3").unwrap();
        assert_eq!(r.topic, "sharecheck.replies");
        assert_eq!(r.partition, Some(3));
        assert_eq!(r.header_value(), "sharecheck.replies:3");
        let r = Route::parse(b"sharecheck.replies.gw-1").unwrap();
        assert_eq!(r.partition, None);
        assert_eq!(Route::parse(r.header_value().as_bytes()).unwrap(), r);
        for bad in [
            &b""[..],
            b":1",
            b"a:-1",
            b"a:x",
            b"a:1:2",
            b"a b",
            b"a/b",
            b"\xff",
        ] {
            assert!(Route::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_the_replies_topic_and_its_children_are_allowed() {
        let r = Routes::new("sharecheck.replies");
        assert!(r.allowed("sharecheck.replies"));
        assert!(r.allowed("sharecheck.replies.gw1"));
        for no in [
            "sharecheck.replies.",
            "sharecheck.repliesX",
            "sharecheck.jobs",
            "sharecheck.verdicts",
            "other",
        ] {
            assert!(!r.allowed(no), "{no}");
        }
    }
}
