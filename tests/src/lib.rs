//! Harness for p2pchat's end-to-end tests: start the real binaries, talk to
//! them over stdin/stdout, and make sure every process dies with the test.
//!
//! Every wait is bounded by a deadline; every child is killed on drop.

pub mod browser;
pub mod chat;
pub mod process;
pub mod static_server;

pub use chat::{ChatNode, Signaling};
pub use process::{binary, Process};
pub use static_server::StaticServer;
