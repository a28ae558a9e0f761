//! One watch per kind, shared by everything that reads it: every replica keeps the store
//! (the trigger endpoint looks objects up in it), and the leader's controllers subscribe to
//! the same events instead of opening a second watch (`Controller::for_shared_stream`).
//!
//! Events reach subscribers through a bounded broadcast channel that never makes the watch
//! wait: a follower has no subscriber at all, and a subscriber that falls behind is handed
//! every object in the store once instead of the events it missed (a controller only needs
//! to know what to look at, and looks at the store's current copy anyway).

use std::collections::VecDeque;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

/// Events a subscriber may fall behind by before it is handed the whole store instead.
const BUFFER: usize = 1024;

/// A kind's store, and its changes for subscribers.
pub struct SharedWatch<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    pub store: Store<K>,
    changes: broadcast::Sender<ObjectRef<K>>,
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
        let (store, writer) = reflector::store();
        let (changes, _) = broadcast::channel(BUFFER);
        let (sender, listed) = (changes.clone(), store.clone());
        let watch = watcher(api, watcher::Config::default())
            .default_backoff()
            // Field-manager bookkeeping is the bulk of a stored object and never read here.
            .modify(|object| object.meta_mut().managed_fields = None)
            .reflect(writer)
            .for_each(move |event| {
                match event {
                    // Sending fails only when nobody subscribed (a follower): nothing to do.
                    Ok(watcher::Event::Apply(object)) => drop(sender.send(ObjectRef::from_obj(&object))),
                    // A (re)list: everything it found, since changes may have been missed.
                    Ok(watcher::Event::InitDone) => {
                        tracing::trace!(kind = what, objects = listed.len(), "watch listed");
                        for object in listed.state() {
                            drop(sender.send(ObjectRef::from_obj(object.as_ref())));
                        }
                    }
                    Ok(watcher::Event::Init) => tracing::trace!(kind = what, "watch listing"),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, kind = what, "watch failed; retrying"),
                }
                std::future::ready(())
            });
        tokio::spawn(async move {
            tokio::select! {
                () = watch => {},
                () = shutdown => {},
            }
        });
        Self { store, changes }
    }

    /// Every object in the store, then each changed one (its current copy in the store), for
    /// a controller (`Controller::for_shared_stream`). The first list may also come again as
    /// changes (when it completes after the subscription): a predicate filter, or the
    /// controller's own bookkeeping, makes that a no-op.
    pub fn subscribe(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        // Subscribed before the store is read, so no change between the two is missed.
        let changes = self.changes.subscribe();
        let state = (changes, self.store.clone(), VecDeque::from(self.store.state()));
        futures::stream::unfold(state, |(mut changes, store, mut backlog)| async move {
            loop {
                if let Some(object) = backlog.pop_front() {
                    return Some((object, (changes, store, backlog)));
                }
                match changes.recv().await {
                    Ok(changed) => {
                        // Gone since (deleted): nothing to reconcile.
                        if let Some(object) = store.get(&changed) {
                            return Some((object, (changes, store, backlog)));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "a subscriber fell behind: handing it every object once");
                        backlog.extend(store.state());
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn config_map(name: &str) -> ConfigMap {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": "team"}})).expect("object")
    }

    #[tokio::test]
    async fn a_subscriber_gets_the_store_then_changes_skips_the_deleted_and_catches_up_after_falling_behind() {
        let (store, mut writer) = reflector::store();
        let (changes, _) = broadcast::channel(BUFFER);
        writer.apply_watcher_event(&watcher::Event::Apply(config_map("early")));
        let watch = SharedWatch { store, changes };
        let mut subscriber = std::pin::pin!(watch.subscribe());
        let first = subscriber.next().await.and_then(|o| o.metadata.name.clone());
        assert_eq!(first.as_deref(), Some("early"), "what the store held at the subscription comes first");
        for name in ["a", "b"] {
            writer.apply_watcher_event(&watcher::Event::Apply(config_map(name)));
        }
        let sent = |name: &str| watch.changes.send(ObjectRef::from_obj(&config_map(name))).expect("a subscriber");
        sent("gone"); // never stored: skipped
        sent("a");
        assert_eq!(subscriber.next().await.map(|o| o.metadata.name.clone().unwrap_or_default()).as_deref(), Some("a"));
        for _ in 0..BUFFER + 5 {
            sent("b");
        }
        let mut names: Vec<String> = Vec::new();
        for _ in 0..3 {
            names.push(subscriber.next().await.and_then(|o| o.metadata.name.clone()).unwrap_or_default());
        }
        names.sort();
        assert_eq!(names, ["a", "b", "early"], "fell behind: every stored object once");
    }
}
