//! Leader election with a `coordination.k8s.io/v1` Lease: one replica runs the writing
//! controllers, every replica serves the trigger endpoint.
//!
//! Why a small implementation rather than a crate: the one crate that fits kube 5 keeps
//! reporting "leader" while it cannot reach the API server, so a partitioned replica would not
//! step down. Here the rules of client-go's `leaderelection` are followed:
//!
//! - Expiry is judged by the *local* clock from the moment this replica last saw the Lease
//!   change (its `resourceVersion`), never by comparing `renewTime` with our clock, so clock
//!   skew between nodes cannot make two leaders.
//! - Every write carries the `resourceVersion` it was decided on (optimistic concurrency): of
//!   two candidates taking over an expired Lease, exactly one succeeds.
//! - The leader renews every [`ElectionConfig::renew_interval`]; if it has not renewed for
//!   [`ElectionConfig::renew_deadline`] (shorter than the Lease duration) it gives up before a
//!   follower may take over. The operator then exits non-zero and is restarted as a follower.
//!
//! [`decide`] is the pure decision; [`start`] runs it against the API server.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

/// Timing and naming of the election. The defaults replace a killed leader within about 12 s.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    pub namespace: String,
    pub lease_name: String,
    /// This replica's name in `spec.holderIdentity` (the pod name in a cluster).
    pub identity: String,
    /// How long a Lease that stopped changing stays valid (`spec.leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// How often the leader renews.
    pub renew_interval: Duration,
    /// How often a follower looks whether the Lease expired.
    pub retry_interval: Duration,
    /// A leader that could not renew for this long steps down; shorter than `lease_duration`
    /// so it has stopped before anyone else may start.
    pub renew_deadline: Duration,
    /// Bound on one API call, so a hung API server cannot stall the election loop.
    pub request_timeout: Duration,
}

impl ElectionConfig {
    pub fn new(namespace: impl Into<String>, lease_name: impl Into<String>, identity: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            lease_name: lease_name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(10),
            renew_interval: Duration::from_secs(2),
            retry_interval: Duration::from_secs(1),
            renew_deadline: Duration::from_secs(7),
            request_timeout: Duration::from_secs(2),
        }
    }
}

/// This replica's identity: `POD_NAME` when set (the chart sets it from the downward API),
/// else the host name with a random suffix, so two processes on one host never share one.
pub fn default_identity() -> String {
    if let Some(name) = std::env::var("POD_NAME").ok().filter(|n| !n.is_empty()) {
        return name;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tugboat".to_owned());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}

/// What to do with the Lease as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// No Lease yet: create it holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Free or expired: take it over.
    Acquire,
    /// Someone else holds a valid Lease.
    Follow { holder: String },
}

/// The pure decision. `unchanged_for` is how long (by our clock) the Lease has had the
/// resourceVersion we see now; `default_duration` applies when the Lease names none.
pub fn decide(lease: Option<&LeaseSpec>, me: &str, unchanged_for: Duration, default_duration: Duration) -> Step {
    let Some(spec) = lease else { return Step::Create };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Step::Renew,
        None | Some("") => Step::Acquire,
        Some(holder) => {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(default_duration, Duration::from_secs);
            if unchanged_for >= duration { Step::Acquire } else { Step::Follow { holder: holder.to_owned() } }
        }
    }
}

/// Whether this replica leads; cheap to clone, shared with everything that writes.
///
/// Controllers wait for [`Leadership::acquired`] before starting; the operator watches
/// [`Leadership::lost`] and exits when it resolves.
#[derive(Clone, Debug)]
pub struct Leadership {
    rx: watch::Receiver<State>,
    /// Keeps the channel open when no election runs ([`Leadership::always`]).
    _always: Option<std::sync::Arc<watch::Sender<State>>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Candidate,
    Leader,
    /// Held, then lost: final.
    Lost,
}

impl Leadership {
    /// Leader from the start: for `--leader-election=false` (one replica).
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(State::Leader);
        Self { rx, _always: Some(std::sync::Arc::new(tx)) }
    }

    pub fn is_leader(&self) -> bool {
        *self.rx.borrow() == State::Leader
    }

    /// Resolves with `true` once this replica leads, or `false` if the election ended first.
    pub async fn acquired(&mut self) -> bool {
        matches!(self.rx.wait_for(|s| *s != State::Candidate).await.map(|s| *s), Ok(State::Leader))
    }

    /// Resolves when leadership that was held is lost (never, while it is held or never held).
    pub async fn lost(&mut self) {
        if self.rx.wait_for(|s| *s == State::Lost).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A running election; [`Election::release`] hands the Lease over on a clean shutdown.
pub struct Election {
    api: Api<Lease>,
    config: ElectionConfig,
    task: tokio::task::JoinHandle<()>,
}

/// Starts campaigning in the background and returns the handle others gate on.
pub fn start(client: Client, config: ElectionConfig) -> (Leadership, Election) {
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    let (tx, rx) = watch::channel(State::Candidate);
    let task = tokio::spawn(campaign(api.clone(), config.clone(), tx));
    (Leadership { rx, _always: None }, Election { api, config, task })
}

impl Election {
    /// Stops campaigning and, if we hold the Lease, marks it free so a follower takes over at once.
    pub async fn release(self) {
        self.task.abort();
        let release = async {
            let mut lease = self.api.get(&self.config.lease_name).await?;
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
            self.api.replace(&self.config.lease_name, &PostParams::default(), &lease).await.map(drop)
        };
        match tokio::time::timeout(self.config.request_timeout, release).await {
            Ok(Ok(())) => tracing::info!(lease = %self.config.lease_name, "released the leader lease"),
            Ok(Err(error)) => tracing::warn!(%error, "cannot release the leader lease; it expires by itself"),
            Err(_) => tracing::warn!("releasing the leader lease timed out; it expires by itself"),
        }
    }
}

/// What the loop remembers between rounds: which Lease version it saw, since when.
struct Observed {
    resource_version: Option<String>,
    since: Instant,
}

async fn campaign(api: Api<Lease>, config: ElectionConfig, tx: watch::Sender<State>) {
    let mut observed = Observed { resource_version: None, since: Instant::now() };
    let mut last_renewal: Option<Instant> = None;
    let mut last_holder: Option<String> = None;
    loop {
        let round = tokio::time::timeout(config.request_timeout * 2, round(&api, &config, &mut observed)).await;
        let leading = *tx.borrow() == State::Leader;
        match round {
            Ok(Ok(Round::Holding)) => {
                last_renewal = Some(Instant::now());
                if !leading {
                    tracing::info!(identity = %config.identity, lease = %config.lease_name, namespace = %config.namespace, "became the leader: starting the controllers");
                    let _ = tx.send(State::Leader);
                }
            }
            Ok(Ok(Round::Conflict)) => tracing::debug!("leader election: another replica wrote the lease first"),
            Ok(Ok(Round::Following(holder))) => {
                if leading {
                    tracing::error!(%holder, "another replica holds the leader lease");
                    let _ = tx.send(State::Lost);
                    return;
                }
                if last_holder.as_deref() != Some(holder.as_str()) {
                    tracing::info!(%holder, identity = %config.identity, "following the leader");
                    last_holder = Some(holder);
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, lease = %config.lease_name, "leader election: API call failed"),
            Err(_) => tracing::warn!(lease = %config.lease_name, "leader election: API call timed out"),
        }
        if *tx.borrow() == State::Leader && last_renewal.is_none_or(|at| at.elapsed() >= config.renew_deadline) {
            tracing::error!(deadline = ?config.renew_deadline, "could not renew the leader lease in time: stepping down");
            let _ = tx.send(State::Lost);
            return;
        }
        let pause = if *tx.borrow() == State::Leader { config.renew_interval } else { config.retry_interval };
        tokio::time::sleep(pause).await;
    }
}

/// How one round ended.
enum Round {
    /// We hold the Lease, renewed just now.
    Holding,
    /// Someone else holds a valid Lease.
    Following(String),
    /// Another replica wrote the Lease between our read and our write: decide again next round.
    Conflict,
}

/// One round: read, decide, write.
async fn round(api: &Api<Lease>, config: &ElectionConfig, observed: &mut Observed) -> Result<Round, kube::Error> {
    let current = api.get_opt(&config.lease_name).await?;
    let version = current.as_ref().and_then(|l| l.resource_version());
    if version != observed.resource_version {
        observed.resource_version = version;
        observed.since = Instant::now();
    }
    let spec = current.as_ref().and_then(|l| l.spec.as_ref());
    let step = decide(spec, &config.identity, observed.since.elapsed(), config.lease_duration);
    let now = MicroTime(jiff::Timestamp::now());
    let duration_seconds = i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let result = match (step, current) {
        (Step::Follow { holder }, _) => return Ok(Round::Following(holder)),
        (Step::Create, _) | (_, None) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.lease_name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(config.identity.clone()),
                    lease_duration_seconds: Some(duration_seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await.map(drop)
        }
        (step, Some(mut lease)) => {
            let spec = lease.spec.get_or_insert_with(Default::default);
            if step == Step::Acquire {
                spec.holder_identity = Some(config.identity.clone());
                spec.acquire_time = Some(now.clone());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            }
            spec.lease_duration_seconds = Some(duration_seconds);
            spec.renew_time = Some(now);
            // `lease` still carries the resourceVersion it was read with: a concurrent write wins.
            api.replace(&config.lease_name, &PostParams::default(), &lease).await.map(drop)
        }
    };
    match result {
        Ok(()) => Ok(Round::Holding),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Round::Conflict),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN: Duration = Duration::from_secs(10);

    fn held_by(holder: Option<&str>, seconds: Option<i32>) -> LeaseSpec {
        LeaseSpec { holder_identity: holder.map(str::to_owned), lease_duration_seconds: seconds, ..Default::default() }
    }

    #[test]
    fn no_lease_is_created() {
        assert_eq!(decide(None, "a", Duration::ZERO, TEN), Step::Create);
    }

    #[test]
    fn our_own_lease_is_renewed_even_when_it_looks_expired() {
        let spec = held_by(Some("a"), Some(10));
        assert_eq!(decide(Some(&spec), "a", Duration::from_secs(60), TEN), Step::Renew);
    }

    #[test]
    fn a_free_lease_is_taken() {
        assert_eq!(decide(Some(&held_by(None, Some(10))), "a", Duration::ZERO, TEN), Step::Acquire);
        assert_eq!(decide(Some(&held_by(Some(""), None)), "a", Duration::ZERO, TEN), Step::Acquire);
    }

    #[test]
    fn another_holder_is_followed_until_its_lease_stops_changing_for_its_duration() {
        let spec = held_by(Some("b"), Some(10));
        assert_eq!(decide(Some(&spec), "a", Duration::from_secs(9), TEN), Step::Follow { holder: "b".into() });
        assert_eq!(decide(Some(&spec), "a", Duration::from_secs(10), TEN), Step::Acquire);
    }

    #[test]
    fn the_lease_duration_in_the_object_wins_over_ours() {
        let spec = held_by(Some("b"), Some(30));
        assert_eq!(decide(Some(&spec), "a", Duration::from_secs(20), TEN), Step::Follow { holder: "b".into() });
        let released = held_by(Some("b"), Some(1));
        assert_eq!(decide(Some(&released), "a", Duration::from_secs(1), TEN), Step::Acquire);
        let nonsense = held_by(Some("b"), Some(-5));
        assert_eq!(decide(Some(&nonsense), "a", Duration::from_secs(9), TEN), Step::Follow { holder: "b".into() });
    }

    #[test]
    fn the_leader_gives_up_before_anyone_may_take_over() {
        let config = ElectionConfig::new("ns", "tugboat", "a");
        assert!(config.renew_deadline < config.lease_duration);
        assert!(config.renew_interval * 3 <= config.renew_deadline);
        // A killed leader: followers see the last change at most `retry_interval` late and
        // take over at most `retry_interval` after expiry — within the 15 s the issue asks.
        assert!(config.lease_duration + config.retry_interval * 2 <= Duration::from_secs(15));
    }

    #[tokio::test]
    async fn always_leads_and_never_loses() {
        let mut leadership = Leadership::always();
        assert!(leadership.is_leader());
        assert!(leadership.acquired().await);
        let lost = tokio::time::timeout(Duration::from_millis(50), leadership.lost()).await;
        assert!(lost.is_err(), "an operator without election never loses leadership");
    }
}
