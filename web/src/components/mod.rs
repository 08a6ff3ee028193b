//! What the user sees, one small component per thing on screen.

mod connection_banner;
mod header;
mod welcome;

pub use connection_banner::ConnectionBanner;
pub use header::Header;
pub use welcome::Welcome;
