//! The endpoint's own cache of applications, kept by a watch (every replica serves the
//! endpoint, leader or not, so it cannot borrow the controller's cache).

use futures::{Future, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::utils::WatchStreamExt;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};

use crate::api::GitOpsApplication;

/// A store of applications and the future that keeps it current (run it until shutdown).
pub fn applications(
    client: &Client,
    namespace: Option<&str>,
) -> (Store<GitOpsApplication>, impl Future<Output = ()> + Send + 'static) {
    let api: Api<GitOpsApplication> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        // Field-manager bookkeeping is the bulk of a stored object and never read here.
        .modify(|app| app.meta_mut().managed_fields = None)
        .reflect(writer)
        .for_each(|_| async {});
    (reader, stream)
}
