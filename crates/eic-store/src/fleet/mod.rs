//! The fleet: machines that enrolled themselves with a join token, and the
//! tokens. [`Fleet`] is the interface; the embedded backend keeps it in a
//! log in the data dir, the Redis backend shares it between nodes.
//!
//! Two kinds of write with two durabilities. An enrollment, a state the
//! machine reports (running, stopped), an operator's tag or removal and
//! every token change are durable before the call returns: losing one
//! would lose a machine or resurrect a spent token. A heartbeat that only
//! says "still here" is not: its last-seen time lives in memory (embedded)
//! or in a sorted set (Redis) and may be lost in a crash, which at worst
//! makes a machine look connection-lost until its next heartbeat.
//!
//! Reads are synchronous, from a local view, as [`crate::Settings`] are:
//! the request path never waits on a round trip to learn an instance's
//! state, and an implementation whose view is older than its bound fails
//! instead of answering from it.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::StoreError;

mod embedded;

pub use embedded::EmbeddedFleet;

/// A join token as stored: everything but its secret, of which only the
/// SHA-256 is kept (the secret is 256 random bits, so a plain hash is
/// enough; it is compared in constant time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinToken {
    /// 16 lowercase hex digits; public, how `list` and `revoke` name it.
    pub id: String,
    /// Hex of the SHA-256 of the token's secret part.
    pub secret_sha256: String,
    /// The account every machine joining with it belongs to.
    pub account: String,
    /// The zone its machines are placed in, unless the machine says.
    pub availability_zone: Option<String>,
    /// The VPC and subnet its machines are in, which Instance Connect
    /// Endpoints reach them by. Absent in records written before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// Tags every machine joining with it starts with.
    pub tags: BTreeMap<String, String>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    /// How many joins it allows, and how many it has had.
    pub uses: u32,
    pub used: u32,
    pub revoked: bool,
    /// Who created it (the command's OS user, or a principal's ARN).
    pub created_by: String,
}

/// Why a token was not redeemed. A wrong secret and an unknown id are one
/// answer, so a caller learns nothing about which ids exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Revoked,
    Expired,
    UsedUp,
}

impl TokenRefusal {
    pub fn reason(self) -> &'static str {
        match self {
            TokenRefusal::Unknown => "unknown",
            TokenRefusal::Revoked => "revoked",
            TokenRefusal::Expired => "expired",
            TokenRefusal::UsedUp => "used-up",
        }
    }
}

/// The lifecycle state of an enrolled instance, as stored. Connection-lost
/// is not a stored state: it is what a running instance is when its last
/// heartbeat is older than the bound, decided on every read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FleetState {
    Running,
    /// Reported by the machine's agent on a clean shutdown.
    Stopped,
    /// Removed by an operator: its keys are not served and its credential
    /// no longer works. Kept so it is shown, never silently gone.
    Terminated,
}

/// Where an instance can be reached, as its agent last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    pub private_ipv4: Option<Ipv4Addr>,
    pub public_ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// sshd's port on those addresses.
    pub ssh_port: u16,
}

/// Where a machine sits in EC2's terms: what DescribeInstances reports as
/// `vpcId` and `subnetId`, and what an endpoint's VPC is matched against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    pub vpc_id: String,
    pub subnet_id: String,
}

/// What a machine says about itself when it joins and on every heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineFacts {
    pub hostname: String,
    pub addresses: Addresses,
    /// sshd's host public keys, one `type base64` line each.
    pub host_keys: Vec<String>,
    /// e.g. `Debian GNU/Linux 13 (trixie)` (os-release's PRETTY_NAME).
    pub os: String,
    /// e.g. `6.12.0-1-amd64`.
    pub kernel: String,
}

/// One enrolled instance, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// `i-` and 17 lowercase hex digits, chosen by the server at first join.
    pub instance_id: String,
    pub account: String,
    /// The token it first joined with.
    pub token_id: String,
    pub availability_zone: String,
    pub instance_type: String,
    /// Its VPC and subnet, from its token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    pub facts: MachineFacts,
    pub tags: Tags,
    pub state: FleetState,
    /// First join: EC2's LaunchTime.
    pub enrolled_at_ms: u64,
    /// The last durable change.
    pub updated_at_ms: u64,
}

/// An enrolled instance's tags: a sorted list rather than a map, because a
/// machine has a handful and a `BTreeMap`'s first node alone is about 540
/// bytes, a quarter of what an instance may cost in a large fleet. In JSON
/// it is an object, as a map is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<(String, String)>);

impl Tags {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).ok().map(|i| self.0[i].1.as_str())
    }

    /// Sets `key` to `value`, replacing what it had.
    pub fn insert(&mut self, key: String, value: String) {
        match self.position(&key) {
            Ok(i) => self.0[i].1 = value,
            Err(i) => self.0.insert(i, (key, value)),
        }
    }

    pub fn remove(&mut self, key: &str) {
        if let Ok(i) = self.position(key) {
            self.0.remove(i);
        }
    }

    /// In key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.0.iter().cloned().collect()
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(key))
    }
}

impl PartialEq<BTreeMap<String, String>> for Tags {
    fn eq(&self, map: &BTreeMap<String, String>) -> bool {
        self.len() == map.len()
            && self
                .iter()
                .zip(map)
                .all(|((k, v), (mk, mv))| k == mk && v == mv)
    }
}

impl From<BTreeMap<String, String>> for Tags {
    fn from(map: BTreeMap<String, String>) -> Tags {
        Tags(map.into_iter().collect())
    }
}

impl Extend<(String, String)> for Tags {
    fn extend<I: IntoIterator<Item = (String, String)>>(&mut self, tags: I) {
        for (key, value) in tags {
            self.insert(key, value);
        }
        self.0.shrink_to_fit();
    }
}

impl Serialize for Tags {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Tags, D::Error> {
        BTreeMap::<String, String>::deserialize(deserializer).map(Tags::from)
    }
}

/// An enrolled instance in a backend's view: the stored record and the
/// time of its last heartbeat, which heartbeats move without a write.
#[derive(Debug)]
pub struct Enrolled {
    pub enrollment: Enrollment,
    last_seen_ms: AtomicU64,
}

impl Enrolled {
    pub fn new(enrollment: Enrollment, last_seen_ms: u64) -> Arc<Enrolled> {
        Arc::new(Enrolled {
            enrollment,
            last_seen_ms: AtomicU64::new(last_seen_ms),
        })
    }

    pub fn last_seen_ms(&self) -> u64 {
        self.last_seen_ms.load(Ordering::Relaxed)
    }

    /// Moves the last-seen time forward (never back: heartbeats handled out
    /// of order on two threads keep the later one).
    pub fn seen(&self, at_ms: u64) {
        self.last_seen_ms.fetch_max(at_ms, Ordering::Relaxed);
    }

    /// [`Enrolled::seen`], returning the last-seen time before it: what a
    /// heartbeat reports as the previous one's time.
    pub fn heartbeat(&self, at_ms: u64) -> u64 {
        self.last_seen_ms.fetch_max(at_ms, Ordering::Relaxed)
    }

    /// Sets the last-seen time to what a process that saw the heartbeats
    /// recorded, earlier or not (a command reading the server's snapshot).
    pub fn restore_last_seen(&self, at_ms: u64) {
        self.last_seen_ms.store(at_ms, Ordering::Relaxed);
    }
}

/// A durable change an operator makes to an enrolled instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceChange {
    /// Sets these tags (others are kept).
    Tag(BTreeMap<String, String>),
    /// Removes these tag keys.
    Untag(Vec<String>),
    /// Terminated: see [`FleetState::Terminated`].
    Terminate,
}

impl InstanceChange {
    /// `enrollment` as this change leaves it at `at`; every backend applies
    /// changes through here, so they agree on what a change means.
    pub fn applied_to(&self, enrollment: &Enrollment, at: u64) -> Enrollment {
        let mut after = enrollment.clone();
        match self {
            InstanceChange::Tag(tags) => after
                .tags
                .extend(tags.iter().map(|(k, v)| (k.clone(), v.clone()))),
            InstanceChange::Untag(keys) => {
                for key in keys {
                    after.tags.remove(key);
                }
            }
            InstanceChange::Terminate => after.state = FleetState::Terminated,
        }
        after.updated_at_ms = at;
        after
    }
}

/// What a heartbeat changed, so the caller can audit transitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// No enrolled instance has this id.
    Unknown,
    /// The instance is terminated; the heartbeat changed nothing.
    Terminated,
    /// Recorded. `previous` is the stored state before it, `last_seen_ms`
    /// the previous heartbeat's time (0 for none since the view began).
    Recorded {
        previous: FleetState,
        last_seen_ms: u64,
    },
}

/// Enrolled instances and join tokens, shared by every server role.
#[async_trait::async_trait]
pub trait Fleet: Send + Sync + 'static {
    /// Stores a new token (its id is new).
    async fn create_token(&self, token: JoinToken) -> Result<(), StoreError>;

    /// Every token, spent, expired and revoked ones included, by id.
    async fn tokens(&self) -> Result<Vec<JoinToken>, StoreError>;

    /// Revokes token `id`; false when there is no such token.
    async fn revoke_token(&self, id: &str) -> Result<bool, StoreError>;

    /// Atomically checks token `id` against `secret_sha256` (hex) and
    /// `now_ms` and, if it is good, counts one use and returns it as it is
    /// after that use. Two concurrent redemptions of a one-use token never
    /// both succeed, on any node.
    async fn redeem_token(
        &self,
        id: &str,
        secret_sha256: &str,
        now_ms: u64,
    ) -> Result<Result<JoinToken, TokenRefusal>, StoreError>;

    /// Inserts or replaces the enrollment of `enrollment.instance_id`;
    /// durable before it returns. The instance counts as seen at `now_ms`.
    async fn enroll(&self, enrollment: Enrollment, now_ms: u64) -> Result<(), StoreError>;

    /// Records a heartbeat at `now_ms`: `state` (running or stopped) and
    /// `facts` are written durably only when they differ from the stored
    /// ones; otherwise only the last-seen time moves.
    async fn heartbeat(
        &self,
        instance_id: &str,
        state: FleetState,
        facts: &MachineFacts,
        now_ms: u64,
    ) -> Result<HeartbeatOutcome, StoreError>;

    /// Applies an operator's change; false when no instance has this id.
    async fn change(
        &self,
        instance_id: &str,
        change: InstanceChange,
        now_ms: u64,
    ) -> Result<bool, StoreError>;

    /// The enrolled instance `instance_id`, from the local view.
    fn enrolled(&self, instance_id: &str) -> Result<Option<Arc<Enrolled>>, StoreError>;

    /// Every enrolled instance, from the local view, in no order.
    fn all_enrolled(&self) -> Result<Vec<Arc<Enrolled>>, StoreError>;

    /// Whether the caller is the one to record that `instance_id`, last
    /// seen at `last_seen_ms`, lost its connection: of every node sharing
    /// the store, one gets true for each (instance, last seen), so the
    /// transition is audited once, not once per node.
    async fn claim_connection_lost(
        &self,
        instance_id: &str,
        last_seen_ms: u64,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_keep_key_order_and_serialize_as_an_object() {
        let mut tags = Tags::from(BTreeMap::from([("b".to_owned(), "2".to_owned())]));
        tags.extend([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "3".to_owned()),
        ]);
        tags.insert("c".into(), "4".into());
        tags.remove("a");
        assert_eq!(tags.iter().collect::<Vec<_>>(), [("b", "3"), ("c", "4")]);
        assert_eq!(tags.get("b"), Some("3"));
        assert_eq!(tags.get("a"), None);
        let json = serde_json::to_string(&tags).unwrap();
        assert_eq!(json, r#"{"b":"3","c":"4"}"#);
        assert_eq!(serde_json::from_str::<Tags>(&json).unwrap(), tags);
    }

    #[test]
    fn last_seen_only_moves_forward() {
        let enrolled = Enrolled::new(
            Enrollment {
                network: None,
                instance_id: "i-0123456789abcdef0".into(),
                account: "111122223333".into(),
                token_id: "0123456789abcdef".into(),
                availability_zone: "us-east-1a".into(),
                instance_type: "t3.micro".into(),
                facts: MachineFacts::default(),
                tags: Tags::default(),
                state: FleetState::Running,
                enrolled_at_ms: 1,
                updated_at_ms: 1,
            },
            10,
        );
        enrolled.seen(30);
        enrolled.seen(20);
        assert_eq!(enrolled.last_seen_ms(), 30);
    }
}
