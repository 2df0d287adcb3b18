//! The coordinator a node runs in `balance.mode = "zookeeper"`.
//!
//! Per ZooKeeper session it registers the member znode, joins the election (the standard
//! recipe: ephemeral sequential znodes, each watching its predecessor), and then
//! - as leader: recomputes the assignment ([`super::assign`]) whenever the members or the
//!   partition count change and writes it with a new generation;
//! - as every node: follows the assignment. A partition is released first (the node drains
//!   and commits it, then the owner znode is deleted) and acquired only by creating its owner
//!   znode, waiting on a watch while the previous owner still holds it.
//!
//! Fencing. Another node can only take a partition after its owner znode is gone, and an
//! ephemeral znode of a live process goes only when its session expires. So a node that may
//! have lost its session stops all its partitions before that can happen: on `Expired`, and
//! when it has been disconnected for half the session timeout (the client notices a dead
//! connection after a quarter of it, so at most three quarters of the timeout have passed
//! since the server last heard from it). A separate task watches the session state for
//! this, so a coordinator busy waiting on a drain cannot delay it. After a fence the session
//! is abandoned and a new one joins from scratch.

use super::assign::{assign, Weighted};
use super::auth::{self, ZkAuth};
use super::{Assignment, Command, Member, Paths};
use anyhow::Context;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use zookeeper_client::{Client, CreateMode, Error as ZkError, SessionState};

pub use super::PartitionSource;

/// What the coordinator needs.
pub struct Options {
    pub connect: String,
    /// The group's credentials; None leaves the znodes world-writable.
    pub auth: Option<ZkAuth>,
    pub group: String,
    pub session_timeout: Duration,
    pub member: Member,
    pub partitions: PartitionSource,
    /// How often the leader re-reads the partition count (and every node retries anything
    /// that failed).
    pub poll: Duration,
    /// Kept up to date with the session, the leadership and the members seen.
    pub status: Arc<super::GroupStatus>,
}

/// Connects to ZooKeeper with the group's session settings, authenticated with `auth`'s
/// identity and over TLS with its TLS settings (`cluster status` too). A session that does
/// not come within the session timeout (and 5 s) is an error that says why when the client
/// library told (a TLS handshake's error, a server that closed the connection, a SASL login
/// it could not start).
pub async fn connect(
    addr: &str,
    session_timeout: Duration,
    auth: Option<&ZkAuth>,
) -> anyhow::Result<Client> {
    let limit = session_timeout + Duration::from_secs(5);
    let mut connector = Client::connector()
        .with_session_timeout(session_timeout)
        .with_connection_timeout(session_timeout / 4);
    if let Some(a) = auth {
        connector = a.present(connector);
    }
    let tls = auth.and_then(ZkAuth::tls);
    let over = if tls.is_some() { " over TLS" } else { "" };
    let attempt = async move {
        match tls {
            Some(t) => connector.with_tls(t.options()).secure_connect(addr).await,
            None => connector.connect(addr).await,
        }
    };
    // The library's log of this attempt is heard, not printed: a failure says why in one
    // line instead of a line per retry.
    let (r, heard) = super::tls::hearing(tokio::time::timeout(limit, attempt)).await;
    let e = match r {
        Ok(Ok(c)) => return Ok(c),
        // Neither a timeout nor a lost connection: the reason is in the error.
        Ok(Err(e))
            if !matches!(
                e,
                ZkError::Timeout | ZkError::NoHosts | ZkError::ConnectionLoss
            ) =>
        {
            // The TLS settings are turned into rustls' only here: a key that is not the
            // certificate's shows now.
            let files = if tls.is_some() && e.to_string().contains("private key") {
                " (balance.zookeeper_cert_file and zookeeper_key_file)"
            } else {
                ""
            };
            let why = auth::hint(&e);
            return Err(anyhow::Error::new(e).context(format!(
                "cannot connect to ZooKeeper at {addr}{over}{files}{why}"
            )));
        }
        Ok(Err(ZkError::Timeout)) => format!(
            "cannot connect to ZooKeeper at {addr}{over}: no session within {session_timeout:?}"
        ),
        Ok(Err(e)) => format!("cannot connect to ZooKeeper at {addr}{over}: {e}"),
        Err(_) => format!("no ZooKeeper session at {addr}{over} within {limit:?}"),
    };
    let why = match heard {
        Some(raw) => Some(super::tls::explain(&raw, tls)),
        None => super::tls::diagnose(addr, auth).await,
    };
    match why {
        Some(why) => anyhow::bail!("{e}: {why}"),
        None => anyhow::bail!("{e}"),
    }
}

/// A running coordinator; [`Coordinator::close`] ends it.
pub struct Coordinator {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Coordinator {
    /// Connects (an unreachable ensemble is an error here, at start), then runs in the
    /// background, reconnecting after a lost session, and sends [`Command`]s to the node.
    pub async fn start(
        opts: Options,
        cmds: mpsc::UnboundedSender<Command>,
    ) -> anyhow::Result<Coordinator> {
        let first = connect(&opts.connect, opts.session_timeout, opts.auth.as_ref())
            .await
            .map_err(|e| {
                // A server that refused the credentials is up and rightly named.
                if matches!(e.downcast_ref::<ZkError>(), Some(ZkError::AuthFailed)) {
                    return e;
                }
                e.context("is ZooKeeper up (scripts/zookeeper.sh up) and balance.zookeeper right?")
            })?;
        tracing::info!(
            zookeeper = %opts.connect, group = %opts.group, node = %opts.member.node_id,
            capacity = opts.member.capacity, session = %first.session_id(),
            "joined ZooKeeper"
        );
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(opts, first, cmds, stop_rx));
        Ok(Coordinator { stop, task })
    }

    /// Leaves the group: deletes this node's owner, member and election znodes and closes the
    /// session. Call it after the node has committed its offsets: the owner znodes are what
    /// keeps other nodes off the partitions until then.
    pub async fn close(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The one way Start and StopAll reach the node. The lock orders them: once the session is
/// fenced, no Start sent by a coordinator pass that has not noticed yet can follow StopAll.
struct Gate {
    fenced: Mutex<bool>,
    cmds: mpsc::UnboundedSender<Command>,
}

impl Gate {
    fn start(&self, p: i32) -> bool {
        let f = self.fenced.lock().unwrap_or_else(|e| e.into_inner());
        !*f && self.cmds.send(Command::Start(p)).is_ok()
    }

    fn fence(&self) {
        let mut f = self.fenced.lock().unwrap_or_else(|e| e.into_inner());
        if !*f {
            *f = true;
            let _ = self.cmds.send(Command::StopAll);
        }
    }
}

async fn run(
    opts: Options,
    first: Client,
    cmds: mpsc::UnboundedSender<Command>,
    mut stop: watch::Receiver<bool>,
) {
    let mut client = Some(first);
    loop {
        let c = match client.take() {
            Some(c) => c,
            None => {
                let r = tokio::select! {
                    r = connect(&opts.connect, opts.session_timeout, opts.auth.as_ref()) => r,
                    _ = stop.changed() => return,
                };
                match r {
                    Ok(c) => {
                        tracing::info!(session = %c.session_id(), "new ZooKeeper session");
                        c
                    }
                    Err(e) => {
                        tracing::warn!("{e:#}; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = stop.changed() => return,
                        }
                        continue;
                    }
                }
            }
        };
        let gate = Arc::new(Gate {
            fenced: Mutex::new(false),
            cmds: cmds.clone(),
        });
        let (lost_tx, mut lost_rx) = mpsc::unbounded_channel::<String>();
        let monitor = tokio::spawn(monitor(
            c.clone(),
            opts.session_timeout / 2,
            gate.clone(),
            lost_tx,
            opts.status.clone(),
        ));
        let mut s = Session::new(&opts, c, gate.clone(), cmds.clone());
        opts.status.connected.store(true, Ordering::Relaxed);
        let end = tokio::select! {
            r = s.run(&mut stop) => r,
            reason = lost_rx.recv() => Err(anyhow::anyhow!(reason.unwrap_or_default())),
        };
        monitor.abort();
        opts.status.connected.store(false, Ordering::Relaxed);
        opts.status.leader.store(false, Ordering::Relaxed);
        opts.status.members.store(0, Ordering::Relaxed);
        match end {
            Ok(()) => {
                s.leave().await;
                return;
            }
            Err(e) => {
                // Whatever went wrong, this session's ownerships can no longer be trusted.
                gate.fence();
                tracing::warn!(
                    "ZooKeeper session abandoned ({e:#}); all partitions stopped, rejoining"
                );
                drop(s);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// Watches the session state; fences on expiry or on a disconnection longer than `bound`.
async fn monitor(
    c: Client,
    bound: Duration,
    gate: Arc<Gate>,
    lost: mpsc::UnboundedSender<String>,
    status: Arc<super::GroupStatus>,
) {
    let mut w = c.state_watcher();
    let mut state = w.state();
    loop {
        status.connected.store(
            matches!(
                state,
                SessionState::SyncConnected | SessionState::ConnectedReadOnly
            ),
            Ordering::Relaxed,
        );
        let reason = match state {
            SessionState::Disconnected => {
                tracing::warn!("disconnected from ZooKeeper; partitions kept for up to {bound:?}");
                match tokio::time::timeout(bound, w.changed()).await {
                    Ok(s) => {
                        state = s;
                        if matches!(
                            s,
                            SessionState::SyncConnected | SessionState::ConnectedReadOnly
                        ) {
                            tracing::info!("reconnected to ZooKeeper, same session");
                        }
                        continue;
                    }
                    Err(_) => format!("disconnected from ZooKeeper for {bound:?}"),
                }
            }
            SessionState::Expired => "ZooKeeper session expired".to_string(),
            SessionState::AuthFailed => "ZooKeeper authentication failed".to_string(),
            SessionState::Closed => "ZooKeeper session closed".to_string(),
            SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                state = w.changed().await;
                continue;
            }
        };
        // Stop validating first, then tell the coordinator.
        gate.fence();
        tracing::warn!("{reason}: all partitions stopped");
        let _ = lost.send(reason);
        return;
    }
}

/// Watch events, each arriving once per armed watch.
#[derive(Debug)]
enum Event {
    Assignment,
    Members,
    Election,
    OwnerFreed(i32),
}

struct Session<'a> {
    opts: &'a Options,
    paths: Paths,
    c: Client,
    gate: Arc<Gate>,
    cmds: mpsc::UnboundedSender<Command>,
    me: String,
    /// Partitions this session owns (owner znode created, Start sent).
    owned: BTreeSet<i32>,
    /// This session's election znode (name under election/).
    election: Option<String>,
    leader: bool,
    partitions: Vec<i32>,
    /// Which watches are armed, so a periodic pass does not pile up watchers.
    watching_assignment: bool,
    watching_members: bool,
    watching_owner: BTreeSet<i32>,
    events: mpsc::UnboundedSender<Event>,
    events_rx: Option<mpsc::UnboundedReceiver<Event>>,
}

fn persistent(a: Option<&ZkAuth>) -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(auth::acls(a))
}

fn ephemeral(a: Option<&ZkAuth>) -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Ephemeral.with_acls(auth::acls(a))
}

/// The sequence number at the end of an election znode's name.
fn sequence(name: &str) -> Option<i64> {
    name.rsplit('_').next()?.parse().ok()
}

impl<'a> Session<'a> {
    fn new(
        opts: &'a Options,
        c: Client,
        gate: Arc<Gate>,
        cmds: mpsc::UnboundedSender<Command>,
    ) -> Session<'a> {
        let (events, events_rx) = mpsc::unbounded_channel();
        Session {
            opts,
            paths: Paths::new(&opts.group),
            c,
            gate,
            cmds,
            me: opts.member.node_id.clone(),
            owned: BTreeSet::new(),
            election: None,
            leader: false,
            partitions: Vec::new(),
            watching_assignment: false,
            watching_members: false,
            watching_owner: BTreeSet::new(),
            events,
            events_rx: Some(events_rx),
        }
    }

    /// Runs until `stop` (Ok) or until the session fails (Err).
    async fn run(&mut self, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut events = self.events_rx.take().expect("run once per session");
        let dirs = [
            self.paths.root.clone(),
            self.paths.members(),
            self.paths.election(),
            self.paths.owners(),
        ];
        auth::ensure_parent(&self.c, super::PARENT, self.opts.auth.as_ref()).await?;
        for dir in &dirs[1..] {
            self.c
                .mkdir(dir, &persistent(self.opts.auth.as_ref()))
                .await
                .map_err(|e| anyhow::anyhow!("cannot create {dir}: {e}{}", auth::hint(&e)))?;
        }
        auth::warn_if_open(&self.c, &dirs, self.opts.auth.as_ref()).await;
        auth::warn_if_clear(&self.opts.connect, self.opts.auth.as_ref());
        self.register(stop).await?;
        if *stop.borrow() {
            return Ok(());
        }
        let (_, seq) = self
            .c
            .create(
                &format!("{}/n_", self.paths.election()),
                self.me.as_bytes(),
                &CreateMode::EphemeralSequential.with_acls(auth::acls(self.opts.auth.as_ref())),
            )
            .await
            .context("cannot join the leader election")?;
        self.election = Some(format!("n_{seq}"));
        self.partitions = self.read_partitions().await;
        let mut tick = tokio::time::interval(self.opts.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.elect().await?;
        loop {
            if self.leader {
                self.lead().await?;
            }
            self.follow().await?;
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                ev = events.recv() => match ev {
                    Some(Event::Assignment) => self.watching_assignment = false,
                    Some(Event::Members) => self.watching_members = false,
                    Some(Event::Election) => self.elect().await?,
                    Some(Event::OwnerFreed(p)) => {
                        self.watching_owner.remove(&p);
                    }
                    None => {}
                },
                _ = tick.tick() => {
                    if self.leader {
                        self.partitions = self.read_partitions().await;
                    }
                }
            }
        }
    }

    /// Creates the member znode, waiting for one left by this node's previous session (a
    /// restart within the session timeout) to expire.
    async fn register(&mut self, stop: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let path = self.paths.member(&self.me);
        let data = serde_json::to_vec(&self.opts.member)?;
        let mut warned = false;
        loop {
            match self
                .c
                .create(&path, &data, &ephemeral(self.opts.auth.as_ref()))
                .await
            {
                Ok(_) => return Ok(()),
                Err(ZkError::NodeExists) => {
                    let (stat, w) = self.c.check_and_watch_stat(&path).await?;
                    let Some(stat) = stat else { continue };
                    if stat.ephemeral_owner == self.c.session_id().0 {
                        return Ok(());
                    }
                    if !warned {
                        tracing::warn!(
                            "{path} exists (another process with node id {:?}, or this node's \
                             previous session); waiting for it to go",
                            self.me
                        );
                        warned = true;
                    }
                    tokio::select! {
                        _ = w.changed() => {}
                        _ = stop.changed() => return Ok(()),
                    }
                }
                Err(e) => anyhow::bail!("cannot create {path}: {e}{}", auth::hint(&e)),
            }
        }
    }

    /// Leader election: lowest sequence leads; the others watch their predecessor.
    async fn elect(&mut self) -> anyhow::Result<()> {
        let mine = self.election.clone().unwrap_or_default();
        loop {
            let mut kids = self.c.list_children(&self.paths.election()).await?;
            kids.sort_by_key(|k| sequence(k).unwrap_or(i64::MAX));
            let Some(i) = kids.iter().position(|k| *k == mine) else {
                anyhow::bail!("this node's election znode {mine} is gone");
            };
            if i == 0 {
                if !self.leader {
                    tracing::info!(node = %self.me, "elected leader");
                }
                self.leader = true;
                self.opts.status.leader.store(true, Ordering::Relaxed);
                self.watching_members = false;
                return Ok(());
            }
            self.leader = false;
            self.opts.status.leader.store(false, Ordering::Relaxed);
            self.opts.status.members.store(0, Ordering::Relaxed);
            let pred = format!("{}/{}", self.paths.election(), kids[i - 1]);
            let (stat, w) = self.c.check_and_watch_stat(&pred).await?;
            if stat.is_none() {
                continue;
            }
            let tx = self.events.clone();
            tokio::spawn(async move {
                w.changed().await;
                let _ = tx.send(Event::Election);
            });
            return Ok(());
        }
    }

    async fn read_partitions(&self) -> Vec<i32> {
        let f = self.opts.partitions.clone();
        match tokio::task::spawn_blocking(move || f()).await {
            Ok(Ok(mut p)) => {
                p.sort_unstable();
                p
            }
            Ok(Err(e)) => {
                tracing::warn!("cannot read the shares topic's partitions: {e:#}");
                self.partitions.clone()
            }
            Err(e) => {
                tracing::warn!("cannot read the shares topic's partitions: {e}");
                self.partitions.clone()
            }
        }
    }

    /// The current assignment and its znode version (None: no assignment yet).
    async fn read_assignment(&self, watch: bool) -> anyhow::Result<(Assignment, Option<i32>)> {
        let path = self.paths.assignment();
        let got = if watch {
            match self.c.get_and_watch_data(&path).await {
                Ok((d, s, w)) => {
                    let tx = self.events.clone();
                    tokio::spawn(async move {
                        w.changed().await;
                        let _ = tx.send(Event::Assignment);
                    });
                    Some((d, s))
                }
                Err(ZkError::NoNode) => {
                    // Watch for its creation instead.
                    let (stat, w) = self.c.check_and_watch_stat(&path).await?;
                    let tx = self.events.clone();
                    tokio::spawn(async move {
                        w.changed().await;
                        let _ = tx.send(Event::Assignment);
                    });
                    if stat.is_some() {
                        // Created meanwhile: the watch fires on its next change; read now.
                        Some(self.c.get_data(&path).await?)
                    } else {
                        None
                    }
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            match self.c.get_data(&path).await {
                Ok(x) => Some(x),
                Err(ZkError::NoNode) => None,
                Err(e) => return Err(e.into()),
            }
        };
        match got {
            None => Ok((Assignment::default(), None)),
            Some((d, s)) => match serde_json::from_slice::<Assignment>(&d) {
                Ok(a) => Ok((a, Some(s.version))),
                Err(e) => {
                    tracing::warn!("{path} holds no valid assignment ({e}); it will be rewritten");
                    Ok((Assignment::default(), Some(s.version)))
                }
            },
        }
    }

    /// Leader: members and partitions → assignment, written when it changed.
    async fn lead(&mut self) -> anyhow::Result<()> {
        let dir = self.paths.members();
        let ids = if self.watching_members {
            self.c.list_children(&dir).await?
        } else {
            let (ids, w) = self.c.list_and_watch_children(&dir).await?;
            self.watching_members = true;
            let tx = self.events.clone();
            tokio::spawn(async move {
                w.changed().await;
                let _ = tx.send(Event::Members);
            });
            ids
        };
        let mut members = Vec::new();
        for id in ids {
            match self.c.get_data(&self.paths.member(&id)).await {
                Ok((d, _)) => match serde_json::from_slice::<Member>(&d) {
                    Ok(m) => members.push(Weighted {
                        id: id.clone(),
                        capacity: m.capacity,
                    }),
                    Err(e) => tracing::warn!("member {id}: unreadable data ({e}); left out"),
                },
                // Left between the listing and now.
                Err(ZkError::NoNode) => {}
                Err(e) => return Err(e.into()),
            }
        }
        members.sort_by(|a, b| a.id.cmp(&b.id));
        self.opts
            .status
            .members
            .store(members.len(), Ordering::Relaxed);
        let (cur, version) = self.read_assignment(false).await?;
        let owners = assign(&self.partitions, &members, &cur.owners);
        let capacities: BTreeMap<String, f64> =
            members.iter().map(|m| (m.id.clone(), m.capacity)).collect();
        if version.is_some()
            && owners == cur.owners
            && cur.partitions == self.partitions.len()
            && capacities == cur.capacities
        {
            return Ok(());
        }
        let next = Assignment {
            generation: cur.generation + 1,
            partitions: self.partitions.len(),
            owners,
            capacities,
            leader: self.me.clone(),
        };
        let data = serde_json::to_vec(&next)?;
        let path = self.paths.assignment();
        let r = match version {
            Some(v) => self.c.set_data(&path, &data, Some(v)).await.map(|_| ()),
            None => self
                .c
                .create(&path, &data, &persistent(self.opts.auth.as_ref()))
                .await
                .map(|_| ()),
        };
        match r {
            Ok(()) => {
                let counts = super::assign::counts(&next.owners);
                tracing::info!(
                    generation = next.generation,
                    partitions = next.partitions,
                    ?counts,
                    "assignment written"
                );
                Ok(())
            }
            // Someone else wrote meanwhile (a previous leader not yet gone): read again on
            // the next pass.
            Err(ZkError::BadVersion | ZkError::NodeExists) => Ok(()),
            Err(e) => Err(e).context("cannot write the assignment"),
        }
    }

    /// Every node: release what is no longer ours, then acquire what is.
    async fn follow(&mut self) -> anyhow::Result<()> {
        let watch = !self.watching_assignment;
        let (a, _) = self.read_assignment(watch).await?;
        self.watching_assignment = true;
        let want: BTreeSet<i32> = a.of(&self.me).into_iter().collect();
        let drop: Vec<i32> = self.owned.difference(&want).copied().collect();
        for p in drop {
            self.release(p).await?;
        }
        let take: Vec<i32> = want.difference(&self.owned).copied().collect();
        for p in take {
            self.acquire(p).await?;
        }
        Ok(())
    }

    async fn release(&mut self, p: i32) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Command::Release(p, tx)).is_ok() {
            // The node answers once the partition is drained and committed (or it gave up
            // waiting); a node that is shutting down drops the request.
            let _ = rx.await;
        }
        match self.c.delete(&self.paths.owner(p), None).await {
            Ok(()) | Err(ZkError::NoNode) => {}
            Err(e) => return Err(e).with_context(|| format!("cannot release partition {p}")),
        }
        self.owned.remove(&p);
        tracing::info!(partition = p, "partition released");
        Ok(())
    }

    async fn acquire(&mut self, p: i32) -> anyhow::Result<()> {
        let path = self.paths.owner(p);
        loop {
            match self
                .c
                .create(
                    &path,
                    self.me.as_bytes(),
                    &ephemeral(self.opts.auth.as_ref()),
                )
                .await
            {
                Ok(_) => break,
                Err(ZkError::NodeExists) => {
                    if self.watching_owner.contains(&p) {
                        return Ok(());
                    }
                    let (stat, w) = self.c.check_and_watch_stat(&path).await?;
                    let Some(stat) = stat else { continue };
                    if stat.ephemeral_owner == self.c.session_id().0 {
                        // Created by this session (a create retried after a lost reply).
                        break;
                    }
                    self.watching_owner.insert(p);
                    let tx = self.events.clone();
                    tokio::spawn(async move {
                        w.changed().await;
                        let _ = tx.send(Event::OwnerFreed(p));
                    });
                    tracing::info!(
                        partition = p,
                        "waiting for the previous owner to release it"
                    );
                    return Ok(());
                }
                Err(e) => return Err(e).with_context(|| format!("cannot create {path}")),
            }
        }
        if !self.gate.start(p) {
            anyhow::bail!("fenced while acquiring partition {p}");
        }
        self.owned.insert(p);
        tracing::info!(partition = p, "partition acquired");
        Ok(())
    }

    /// Graceful exit: owner znodes first, then membership; the session closes when the
    /// client is dropped.
    async fn leave(&mut self) {
        for p in std::mem::take(&mut self.owned) {
            let _ = self.c.delete(&self.paths.owner(p), None).await;
        }
        if let Some(e) = self.election.take() {
            let _ = self
                .c
                .delete(&format!("{}/{e}", self.paths.election()), None)
                .await;
        }
        let _ = self.c.delete(&self.paths.member(&self.me), None).await;
        tracing::info!("left the ZooKeeper group");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn election_sequence_numbers() {
        assert_eq!(sequence("n_0000000012"), Some(12));
        assert_eq!(sequence("n_x"), None);
    }

    #[test]
    fn a_fenced_gate_sends_no_start() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let g = Gate {
            fenced: Mutex::new(false),
            cmds: tx,
        };
        assert!(g.start(1));
        g.fence();
        g.fence();
        assert!(!g.start(2));
        assert!(matches!(rx.try_recv(), Ok(Command::Start(1))));
        assert!(matches!(rx.try_recv(), Ok(Command::StopAll)));
        assert!(rx.try_recv().is_err());
    }
}
