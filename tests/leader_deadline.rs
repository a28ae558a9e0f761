//! Leader overlap (issue 14, item 11): a leader whose Lease calls stall steps down at its
//! deadline — the send time of its last accepted renewal plus the renew deadline — while its
//! round is still in flight, and another candidate takes the Lease only after that.
//!
//! The first candidate talks to the real API server through a proxy that can stall Lease
//! calls ([`support::apiserver_proxy`]); the second talks to it directly.

mod support;

use std::time::{Duration, Instant};

use tugboat::leader::{ElectionConfig, start};

use support::apiserver_proxy::ApiProxy;
use support::cluster::TestNamespace;

/// Scheduling slack on the step-down: the timer, the wake-up of the watching task.
const SLACK: Duration = Duration::from_millis(300);

/// The defaults scaled down (lease 10 s, deadline 7 s, renew 2 s, request 2 s): a stalled
/// round takes up to twice the request timeout, longer than the deadline leaves.
fn config(namespace: &str, identity: &str) -> ElectionConfig {
    ElectionConfig {
        lease_duration: Duration::from_secs(4),
        renew_deadline: Duration::from_millis(2500),
        renew_interval: Duration::from_millis(500),
        retry_interval: Duration::from_millis(200),
        request_timeout: Duration::from_secs(2),
        ..ElectionConfig::new(namespace, "tugboat", identity)
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

#[tokio::test]
async fn a_leader_whose_lease_calls_stall_steps_down_at_its_deadline_before_anyone_takes_over() {
    let Some(client) = support::cluster::client().await else { return };
    let ns = TestNamespace::create(&client, "leader-deadline").await;
    let proxy = ApiProxy::start(client.clone()).await;
    let first_config = config(&ns.name, "first");
    let (mut first, _first_election) = start(proxy.client(), first_config.clone());
    let leads = tokio::time::timeout(Duration::from_secs(20), first.acquired()).await;
    assert!(leads.expect("the first candidate leads within 20 s"), "the first candidate leads");
    let (mut second, second_election) = start(client.clone(), config(&ns.name, "second"));
    // A few renewals through the proxy; the second candidate follows meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!second.is_leader(), "the second candidate follows while the first renews");

    let stalled = Instant::now();
    proxy.stall_leases(true);
    let (first_watch, second_watch) = (first.clone(), second.clone());
    let lost = async {
        first.lost().await;
        Instant::now()
    };
    let acquired = async {
        assert!(second.acquired().await, "the second candidate leads");
        Instant::now()
    };
    // Sampled every 5 ms until the second leads: does the first still say it leads then?
    let overlap = async {
        loop {
            if second_watch.is_leader() {
                return first_watch.is_leader().then(Instant::now);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let all = async { tokio::join!(lost, acquired, overlap) };
    let (lost, acquired, overlap) =
        tokio::time::timeout(Duration::from_secs(30), all).await.expect("a step-down and a takeover within 30 s");

    let writes = proxy.accepted_lease_writes();
    let last = writes.iter().copied().filter(|at| *at < stalled).max().expect("renewals before the stall");
    assert!(writes.iter().all(|at| *at < stalled), "no Lease write passed the stall");
    let deadline = last + first_config.renew_deadline;
    let expiry = last + first_config.lease_duration;
    eprintln!(
        "last accepted renewal {} ms before the stall; the first stepped down {} ms after it \
         (deadline {} ms, lease {} ms); the second acquired {} ms after it; overlap: {}",
        ms(stalled.duration_since(last)),
        ms(lost.duration_since(last)),
        ms(first_config.renew_deadline),
        ms(first_config.lease_duration),
        ms(acquired.duration_since(last)),
        overlap.map_or_else(|| "none".to_owned(), |at| format!("{} ms after the renewal", ms(at.duration_since(last)))),
    );
    assert!(
        lost <= deadline + SLACK,
        "the leader stepped down {} ms after its last renewal, past its {} ms deadline",
        ms(lost.duration_since(last)),
        ms(first_config.renew_deadline)
    );
    assert!(lost < expiry, "the leader stepped down before its Lease could be taken over");
    assert!(!first_watch.is_leader(), "a stepped-down leader says so");
    assert_eq!(overlap, None, "both candidates said they lead at once");
    assert!(acquired > lost, "the second candidate took over only after the first stepped down");
    second_election.release().await;
    drop(proxy);
}
