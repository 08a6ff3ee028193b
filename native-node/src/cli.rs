//! Command-line arguments of `p2pchat-node`.

use std::net::{IpAddr, SocketAddr};

use anyhow::{bail, Result};
use clap::Parser;

/// Longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 32;

/// A serverless, end-to-end encrypted group chat peer.
#[derive(Debug, Parser)]
#[command(name = "p2pchat-node", version, about)]
pub struct Args {
    /// IP address to bind the UDP socket to.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// UDP port to bind (0 picks a free one).
    #[arg(long, default_value_t = 5000)]
    pub port: u16,

    /// Display name shown to other members.
    #[arg(long)]
    pub username: String,

    /// Signaling server address (repeat for several).
    #[arg(long = "signal", value_name = "ADDR", default_value = "127.0.0.1:5555")]
    pub signal: Vec<SocketAddr>,
}

impl Args {
    /// Checks what clap cannot: the username is a usable display name.
    pub fn validate(&self) -> Result<()> {
        let name = &self.username;
        if name.trim().is_empty() {
            bail!("--username cannot be empty");
        }
        if name.chars().count() > MAX_USERNAME_CHARS {
            bail!("--username is at most {MAX_USERNAME_CHARS} characters");
        }
        if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            bail!("--username cannot contain spaces or control characters");
        }
        Ok(())
    }
}
