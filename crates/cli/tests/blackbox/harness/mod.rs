//! Black-box test harness: runs the real `once` binary on a random loopback port with its own
//! data directory, and talks HTTP to it. Split by concern: the server process, the API
//! helpers, network faults, and payloads and files.

mod api;
mod faults;
mod files;
mod server;

pub use api::*;
pub use faults::*;
pub use files::*;
pub use server::*;
