//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Rendezvous server for p2pchat peers: matches peers of a room by an
/// opaque tag derived from the room key, and learns nothing else (no room
/// id, key, name, username or message ever reaches it).
#[derive(Debug, Parser)]
#[command(name = "p2pchat-signaling", version, about)]
pub struct Args {
    /// UDP address to listen on.
    #[arg(long, default_value = "0.0.0.0:5555")]
    pub listen: SocketAddr,

    /// Sign every answer with the key in this file (64 hex digits; made,
    /// readable by its owner only, if missing). The public key is printed
    /// at start: nodes started with `--signal ADDR=KEY` take answers from
    /// this server only with its signature.
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,

    /// Seconds between stats lines in the log.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub stats_every: u64,

    /// Most rendezvous tags (rooms) held at once.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_tags: u64,

    /// Most entries (peers) under one tag (a lookup pages through at most
    /// 1,024).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_per_tag: u64,

    /// Most entries in all.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_entries: u64,

    /// Most entries registered from one source IP, in all (a NAT shares
    /// one IP among its users).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_per_source: u64,

    /// Most entries registered from one source IP under one tag.
    #[arg(long = "max-per-source-tag", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_per_source_per_tag: u64,

    /// Datagrams per second one source address may send on average.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub rate: u64,

    /// Datagrams one source address may send at once.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub burst: u64,
}
