//! The `once` service: configuration, start-up, the HTTP layer, the share service and the
//! reaper. The binary (`crates/cli`) calls [`serve`], [`reap_once`] and [`keys`].

pub mod acme;
pub mod config;
pub mod connections;
pub mod email;
pub mod http;
pub mod keys;
pub mod reaper;
pub mod service;
mod startup;
mod telemetry;
pub mod tls;
pub mod webhooks;

pub use startup::{migrate, reap_once, serve};
