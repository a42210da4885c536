//! Black-box test harness: runs the real `once` binary on a random loopback port with its own
//! data directory, and talks HTTP to it. Split by concern: the server process, the API
//! helpers, network faults, a body-limiting proxy, and payloads and files.

mod api;
mod faults;
mod files;
mod proxy;
mod server;

pub use api::*;
pub use faults::*;
pub use files::*;
pub use proxy::*;
pub use server::*;
