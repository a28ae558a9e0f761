//! One watch per kind, shared by everything that reads it: every replica keeps the store
//! (the trigger endpoint looks objects up in it), and the leader's controllers subscribe to
//! the same events instead of opening a second watch (`reflector::store_shared`,
//! `Controller::for_shared_stream`).

use std::fmt::Debug;
use std::hash::Hash;

use futures::StreamExt;
use kube::runtime::reflector::{self, ReflectHandle, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// Events a subscriber may fall behind by before the watch waits for it.
const BUFFER: usize = 1024;

/// A kind's store and a handle to subscribe to its events.
pub struct SharedWatch<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    pub store: Store<K>,
    /// Kept drained by a task of its own, so the watch never waits for a subscriber that has
    /// not started (a follower's controllers); [`SharedWatch::subscribe`] clones it.
    handle: ReflectHandle<K>,
}

impl<K> SharedWatch<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Starts watching `api` until `shutdown` resolves; `what` names the kind in logs.
    pub fn start(
        api: Api<K>,
        what: &'static str,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Self {
        let (store, writer) = reflector::store_shared(BUFFER);
        let Some(handle) = writer.subscribe() else { unreachable!("a shared store always has a dispatcher") };
        let watch = watcher(api, watcher::Config::default())
            .default_backoff()
            // Field-manager bookkeeping is the bulk of a stored object and never read here.
            .modify(|object| object.meta_mut().managed_fields = None)
            .reflect_shared(writer)
            .for_each(move |event| async move {
                if let Err(error) = event {
                    tracing::warn!(%error, kind = what, "watch failed; retrying");
                }
            });
        tokio::spawn(async move {
            tokio::select! {
                () = watch => {},
                () = shutdown => {},
            }
        });
        tokio::spawn(handle.clone().for_each(|_| async {}));
        Self { store, handle }
    }

    /// The kind's events from now on, for a controller (`Controller::for_shared_stream`).
    pub fn subscribe(&self) -> ReflectHandle<K> {
        self.handle.clone()
    }

    /// Resolves once the store holds the first full list: reconciling every object then
    /// (`Controller::reconcile_all_on`) covers those that existed before a subscription.
    pub fn listed(&self) -> impl futures::Stream<Item = ()> + Send + 'static {
        let store = self.store.clone();
        futures::stream::once(async move {
            let _ = store.wait_until_ready().await;
        })
    }
}
