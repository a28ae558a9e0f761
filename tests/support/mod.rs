//! Shared test support: the real control plane (kubeconfig discovery), the real Git server, fixtures.
//!
//! Each test binary uses only some of these helpers.
#![allow(dead_code)]

pub mod apiserver_proxy;
pub mod cluster;
pub mod fixture;
pub mod git_repo;
pub mod git_server;
pub mod http;
pub mod operator;
pub mod realnode;
pub mod receiver;
pub mod restricted;
pub mod schemas;
pub mod ssh_server;
pub mod triggers;
