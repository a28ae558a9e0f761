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
//! - The leader renews every [`ElectionConfig::renew_interval`].
//!
//! **The guarantee: a leader never acts past its deadline.** The deadline is the instant the
//! last successful write of the Lease was *sent* plus [`ElectionConfig::renew_deadline`]
//! ([`deadline`]); the send time is the safe base because the Lease others see may have been
//! written at any moment between send and answer, and nobody may take it over before that
//! write plus the Lease duration. At the deadline this replica steps down whatever is in
//! flight: a round runs under a timer that ends at the deadline, [`Leadership::is_leader`]
//! turns false by the clock alone, and [`Leadership::lost`] resolves then even if the election
//! task is stalled. The deadline is shorter than the Lease duration
//! ([`ElectionConfig::validate`]), so the leader has stopped before a follower may start.
//! The operator then exits non-zero and is restarted as a follower.
//! (`tests/leader_deadline.rs` stalls the Lease calls of a real API server to check it.)
//!
//! [`decide`] and [`deadline`] are the pure decisions; [`start`] runs them against the API server.

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

    /// The Lease duration as other replicas apply it: `spec.leaseDurationSeconds` holds whole seconds.
    fn written_duration(&self) -> Duration {
        Duration::from_secs(self.lease_duration.as_secs())
    }

    /// Checks the timing the guarantee rests on: above all, a renew deadline shorter than the
    /// Lease duration, else another replica could take over while this one still leads.
    ///
    /// # Errors
    /// Names the first setting that breaks it.
    pub fn validate(&self) -> Result<(), InvalidElection> {
        let lease = self.written_duration();
        let fail = |message: String| Err(InvalidElection(message));
        if lease.is_zero() {
            return fail(format!(
                "the lease duration ({:?}) must be at least 1s (the Lease holds whole seconds)",
                self.lease_duration
            ));
        }
        if self.renew_deadline.is_zero() || self.renew_deadline >= lease {
            return fail(format!(
                "the renew deadline ({:?}) must be above zero and shorter than the lease duration ({lease:?}), \
                 else another replica may take over while this one still leads",
                self.renew_deadline
            ));
        }
        if self.renew_interval.is_zero() || self.renew_interval >= self.renew_deadline {
            return fail(format!(
                "the renew interval ({:?}) must be above zero and shorter than the renew deadline ({:?})",
                self.renew_interval, self.renew_deadline
            ));
        }
        if self.retry_interval.is_zero() || self.request_timeout.is_zero() {
            return fail("the retry interval and the request timeout must be above zero".to_owned());
        }
        Ok(())
    }

    /// A copy that passes [`ElectionConfig::validate`], changing only what breaks it: for a
    /// caller of [`start`] that did not validate, the guarantee still holds.
    #[must_use]
    pub fn clamped(mut self) -> Self {
        self.lease_duration = self.written_duration().max(Duration::from_secs(1));
        let lease = self.written_duration();
        if self.renew_deadline.is_zero() || self.renew_deadline >= lease {
            self.renew_deadline = lease * 2 / 3;
        }
        if self.renew_interval.is_zero() || self.renew_interval >= self.renew_deadline {
            self.renew_interval = self.renew_deadline / 3;
        }
        if self.retry_interval.is_zero() {
            self.retry_interval = self.renew_interval;
        }
        if self.request_timeout.is_zero() {
            self.request_timeout = self.renew_interval;
        }
        self
    }
}

/// Leader election timing that would let two replicas lead at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid leader election timing: {0}")]
pub struct InvalidElection(String);

/// The instant a leader must have stopped acting, when its last successful Lease write was
/// sent at `sent`. Nobody may take the Lease over before `sent + lease_duration`, later.
pub fn deadline(sent: Instant, config: &ElectionConfig) -> Instant {
    // An absurd deadline that overflows the clock: step down at once rather than never.
    sent.checked_add(config.renew_deadline).unwrap_or(sent)
}

/// Whether a leader with this deadline must have stepped down by `now` (the deadline itself included).
pub fn must_step_down(now: Instant, deadline: Instant) -> bool {
    now >= deadline
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
    /// Leading until `until` ([`deadline`]); `None`: without election, for good.
    Leader {
        until: Option<Instant>,
    },
    /// Held, then lost: final.
    Lost,
}

impl State {
    /// Leading at `now`: the deadline is judged here too, so a stalled election task cannot
    /// make a replica lead past it.
    fn leads_at(self, now: Instant) -> bool {
        matches!(self, State::Leader { until } if until.is_none_or(|until| !must_step_down(now, until)))
    }
}

impl Leadership {
    /// Leader from the start: for `--leader-election=false` (one replica).
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(State::Leader { until: None });
        Self { rx, _always: Some(std::sync::Arc::new(tx)) }
    }

    pub fn is_leader(&self) -> bool {
        self.rx.borrow().leads_at(Instant::now())
    }

    /// Resolves with `true` once this replica leads, or `false` if the election ended first.
    pub async fn acquired(&mut self) -> bool {
        match self.rx.wait_for(|s| *s != State::Candidate).await {
            Ok(state) => state.leads_at(Instant::now()),
            Err(_) => false,
        }
    }

    /// Resolves when leadership that was held is lost (never, while it is held or never held):
    /// at the latest at the deadline of the last renewal, whatever the election task does.
    pub async fn lost(&mut self) {
        loop {
            let state = *self.rx.borrow_and_update();
            let changed = match state {
                State::Lost => return,
                State::Leader { until: Some(until) } => {
                    if must_step_down(Instant::now(), until) {
                        // Said here too: the election task may not get to say it before the
                        // process exits on this.
                        tracing::error!("could not renew the leader lease in time: stepping down");
                        return;
                    }
                    tokio::select! {
                        // Woken at the deadline: the loop looks whether a renewal moved it.
                        () = tokio::time::sleep_until(until.into()) => continue,
                        changed = self.rx.changed() => changed,
                    }
                }
                State::Leader { until: None } | State::Candidate => self.rx.changed().await,
            };
            if changed.is_err() {
                // The election ended without a word (aborted on shutdown): its last state is final.
                match *self.rx.borrow() {
                    State::Lost => return,
                    State::Leader { until: Some(until) } => {
                        tokio::time::sleep_until(until.into()).await;
                        return;
                    }
                    State::Leader { until: None } | State::Candidate => std::future::pending::<()>().await,
                }
            }
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
///
/// A configuration that fails [`ElectionConfig::validate`] is [clamped](ElectionConfig::clamped)
/// with an error in the log; callers should validate first.
pub fn start(client: Client, config: ElectionConfig) -> (Leadership, Election) {
    let config = match config.validate() {
        Ok(()) => config,
        Err(error) => {
            let config = config.clamped();
            tracing::error!(%error, renew_deadline = ?config.renew_deadline, renew_interval = ?config.renew_interval, lease_duration = ?config.lease_duration, "leader election: using safe timing instead");
            config
        }
    };
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

/// Runs `work`, but when `until` is set no longer than that: `None` if the deadline came first.
async fn before<F: std::future::Future>(until: Option<Instant>, work: F) -> Option<F::Output> {
    match until {
        Some(until) => tokio::time::timeout_at(until.into(), work).await.ok(),
        None => Some(work.await),
    }
}

fn step_down(tx: &watch::Sender<State>, config: &ElectionConfig) {
    tracing::error!(deadline = ?config.renew_deadline, "could not renew the leader lease in time: stepping down");
    tx.send_replace(State::Lost);
}

async fn campaign(api: Api<Lease>, config: ElectionConfig, tx: watch::Sender<State>) {
    let mut observed = Observed { resource_version: None, since: Instant::now() };
    let mut last_holder: Option<String> = None;
    // While leading: the deadline of the last successful write. A round in flight and the pause
    // between rounds both end there, so no answer can keep this replica leading past it.
    let mut until: Option<Instant> = None;
    loop {
        let attempt = tokio::time::timeout(config.request_timeout * 2, round(&api, &config, &mut observed));
        let Some(outcome) = before(until, attempt).await else { return step_down(&tx, &config) };
        match outcome {
            Ok(Ok(Round::Holding { sent })) => {
                let next = deadline(sent, &config);
                if must_step_down(Instant::now(), next) {
                    // The answer came so late that the Lease may be someone else's already.
                    if until.is_some() {
                        return step_down(&tx, &config);
                    }
                    tracing::warn!(lease = %config.lease_name, "leader election: the write answered after the renew deadline; not leading on it");
                } else {
                    if until.is_none() {
                        tracing::info!(identity = %config.identity, lease = %config.lease_name, namespace = %config.namespace, "became the leader: starting the controllers");
                    }
                    until = Some(next);
                    tx.send_replace(State::Leader { until });
                }
            }
            Ok(Ok(Round::Conflict)) => tracing::debug!("leader election: another replica wrote the lease first"),
            Ok(Ok(Round::Following(holder))) => {
                if until.is_some() {
                    tracing::error!(%holder, "another replica holds the leader lease");
                    tx.send_replace(State::Lost);
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
        let pause = if until.is_some() { config.renew_interval } else { config.retry_interval };
        if before(until, tokio::time::sleep(pause)).await.is_none() {
            return step_down(&tx, &config);
        }
    }
}

/// How one round ended.
enum Round {
    /// We hold the Lease: the write that says so was sent at `sent`.
    Holding { sent: Instant },
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
    // Before the write goes out: the Lease others see is at least this recent, never older.
    let sent = Instant::now();
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
        Ok(()) => Ok(Round::Holding { sent }),
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

    fn quick() -> ElectionConfig {
        ElectionConfig {
            lease_duration: Duration::from_secs(4),
            renew_deadline: Duration::from_millis(1000),
            renew_interval: Duration::from_millis(200),
            retry_interval: Duration::from_millis(100),
            request_timeout: Duration::from_millis(600),
            ..ElectionConfig::new("ns", "tugboat", "a")
        }
    }

    #[test]
    fn the_deadline_counts_from_the_send_time_and_ends_before_the_lease() {
        let config = ElectionConfig::new("ns", "tugboat", "a");
        let sent = Instant::now();
        let at = deadline(sent, &config);
        assert_eq!(at, sent + config.renew_deadline);
        assert!(at < sent + config.lease_duration, "stopped before anyone may take over");
        assert!(!must_step_down(at - Duration::from_millis(1), at));
        assert!(must_step_down(at, at), "the deadline itself is past");
        assert!(must_step_down(at + Duration::from_millis(1), at));
    }

    #[test]
    fn timing_that_could_make_two_leaders_is_refused_and_clamped() {
        assert_eq!(ElectionConfig::new("ns", "tugboat", "a").validate(), Ok(()));
        assert_eq!(quick().validate(), Ok(()));
        let deadline_too_long = ElectionConfig { renew_deadline: Duration::from_secs(10), ..quick() };
        let error = deadline_too_long.validate().expect_err("deadline = lease duration");
        assert!(error.to_string().contains("shorter than the lease duration"), "{error}");
        // The Lease holds whole seconds: 4.5 s is written as 4, which a 4.2 s deadline exceeds.
        let fractional = ElectionConfig {
            lease_duration: Duration::from_millis(4500),
            renew_deadline: Duration::from_millis(4200),
            ..quick()
        };
        assert!(fractional.validate().is_err());
        let interval_too_long = ElectionConfig { renew_interval: Duration::from_secs(2), ..quick() };
        assert!(interval_too_long.validate().is_err());
        let zero = ElectionConfig { lease_duration: Duration::ZERO, request_timeout: Duration::ZERO, ..quick() };
        for bad in [deadline_too_long, fractional, interval_too_long, zero] {
            let clamped = bad.clone().clamped();
            assert_eq!(clamped.validate(), Ok(()), "{bad:?} -> {clamped:?}");
        }
        let good = quick();
        assert_eq!(format!("{:?}", good.clone().clamped()), format!("{good:?}"), "valid timing is kept");
    }

    #[tokio::test]
    async fn leadership_ends_at_the_deadline_even_if_nobody_says_so() {
        let until = Instant::now() + Duration::from_millis(150);
        let (tx, rx) = watch::channel(State::Leader { until: Some(until) });
        let mut leadership = Leadership { rx, _always: None };
        assert!(leadership.is_leader());
        assert!(leadership.acquired().await);
        tokio::time::timeout(Duration::from_secs(2), leadership.lost()).await.expect("lost at the deadline");
        let late = Instant::now().duration_since(until);
        assert!(late < Duration::from_millis(300), "lost {late:?} after the deadline");
        assert!(!leadership.is_leader());
        // A renewal before the deadline moves it.
        let until = Instant::now() + Duration::from_millis(100);
        tx.send_replace(State::Leader { until: Some(until) });
        let renewed = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.send_replace(State::Leader { until: Some(until + Duration::from_millis(200)) });
        };
        let ((), ()) = tokio::join!(leadership.lost(), renewed);
        assert!(Instant::now() >= until + Duration::from_millis(200), "the renewed deadline counts");
    }

    /// A mock API server: GET answers the Lease as last written (404 before), POST and PUT
    /// store it; once `stall` is set, nothing is answered. Returns when each write arrived.
    fn lease_server(
        stall: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> (Client, std::sync::Arc<std::sync::Mutex<Vec<Instant>>>) {
        use http::{Request, Response, StatusCode};
        use kube::client::Body;
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let writes: std::sync::Arc<std::sync::Mutex<Vec<Instant>>> = std::sync::Arc::default();
        let log = writes.clone();
        tokio::spawn(async move {
            let mut stored: Option<serde_json::Value> = None;
            let mut held = Vec::new();
            let mut version = 0u32;
            while let Some((request, reply)) = handle.next_request().await {
                let arrived = Instant::now();
                if stall.load(std::sync::atomic::Ordering::SeqCst) {
                    held.push(reply);
                    continue;
                }
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let (status, answer) = if parts.method == http::Method::GET {
                    match &stored {
                        Some(lease) => (StatusCode::OK, lease.clone()),
                        None => (
                            StatusCode::NOT_FOUND,
                            serde_json::json!({"kind": "Status", "code": 404, "reason": "NotFound"}),
                        ),
                    }
                } else {
                    let mut lease: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                    version += 1;
                    lease["metadata"]["resourceVersion"] = serde_json::json!(version.to_string());
                    stored = Some(lease.clone());
                    log.lock().unwrap_or_else(|e| e.into_inner()).push(arrived);
                    (StatusCode::OK, lease)
                };
                let body = Body::from(serde_json::to_vec(&answer).unwrap_or_default());
                reply.send_response(Response::builder().status(status).body(body).expect("response"));
            }
        });
        (Client::new(service, "ns"), writes)
    }

    #[tokio::test]
    async fn a_leader_whose_lease_calls_stall_steps_down_at_its_deadline() {
        let stall = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (client, writes) = lease_server(stall.clone());
        let config = quick();
        let (mut leadership, _election) = start(client, config.clone());
        assert!(tokio::time::timeout(Duration::from_secs(5), leadership.acquired()).await.expect("leads"));
        tokio::time::sleep(Duration::from_millis(500)).await;
        stall.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(10), leadership.lost()).await.expect("steps down");
        let lost = Instant::now();
        let last = *writes.lock().expect("writes").last().expect("a write");
        let after = lost.duration_since(last);
        // The mock saw the write a little after it was sent: the deadline is at most this late.
        assert!(
            after <= config.renew_deadline + Duration::from_millis(300),
            "stepped down {after:?} after the last renewal"
        );
        assert!(!leadership.is_leader());
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
