//! Command-line arguments of `p2pchat-node`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use p2pchat_core::quota::Quota;
use p2pchat_core::signaling::ServerSpec;
use p2pchat_core::UserName;

/// Where the browser relay listens unless told otherwise.
pub const DEFAULT_RELAY: &str = "127.0.0.1:9000";

/// A serverless, end-to-end encrypted group chat peer.
#[derive(Debug, Parser)]
#[command(
    name = "p2pchat-node",
    version,
    about,
    after_help = "Type /help in the running node for its commands."
)]
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

    /// Signaling server address (repeat for several); `ADDR=KEY` pins the
    /// key the server prints when it starts with `--key-file`: its answers
    /// are then taken only signed by that key.
    #[arg(
        long = "signal",
        value_name = "ADDR[=KEY]",
        default_value = "127.0.0.1:5555"
    )]
    pub signal: Vec<ServerSpec>,

    /// Directory of the durable store (identity, chats, history).
    /// Default: a per-user data directory keyed by username, e.g.
    /// ~/.local/share/p2pchat/<username>.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Loopback address of the WebSocket relay for browser peers
    /// (default 127.0.0.1:9000; port 0 picks a free one).
    #[arg(long, value_name = "ADDR", conflicts_with = "no_relay")]
    pub relay: Option<SocketAddr>,

    /// Run without the browser relay.
    #[arg(long)]
    pub no_relay: bool,

    /// Another web origin allowed to use the relay, exactly as the browser
    /// sends it (repeatable), e.g. http://127.0.0.1:3000. The page `trunk
    /// serve` serves (http://127.0.0.1:8080, http://localhost:8080) is
    /// always allowed; pages anywhere else are refused.
    #[arg(long = "relay-origin", value_name = "ORIGIN")]
    pub relay_origins: Vec<String>,

    /// Print one JSON object per line for every event, for scripts.
    #[arg(long)]
    pub json: bool,

    /// The per-author quota of chats this node creates, as
    /// EVENTS_PER_S:BURST_EVENTS:BYTES_PER_S:BURST_BYTES:TOTAL_BYTES
    /// (default 20:200:65536:2097152:268435456: 20 messages a second with
    /// bursts of 200, 64 KiB a second with bursts of 2 MiB, 256 MiB per
    /// author). It travels in the chat's Chat ID, so every member holds
    /// the same one; chats joined keep the quota their Chat ID says.
    #[arg(long, value_name = "QUOTA")]
    pub room_quota: Option<Quota>,

    /// Messages of each chat kept in memory: the newest (and each
    /// author's last); older ones are read back from the store when they
    /// are needed, so memory does not grow with a chat's length.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub history_window: u32,
}

/// Where the relay should listen, and whether that was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayChoice {
    /// No relay.
    Off,
    /// The default address: if it is taken (say, by a second node on this
    /// machine), the node runs without a relay and says so.
    Default(SocketAddr),
    /// An address given with `--relay`: failing to bind it is an error.
    Explicit(SocketAddr),
}

impl Args {
    /// Checks what clap cannot: the username is a usable display name, the
    /// relay address is on loopback.
    pub fn validate(&self) -> Result<()> {
        self.user_name()?;
        if let Some(relay) = self.relay {
            if !relay.ip().is_loopback() {
                bail!(
                    "--relay {relay}: the relay listens on loopback only (127.0.0.1 or [::1]); \
                     browsers reach it through `trunk serve` on the same machine"
                );
            }
        }
        Ok(())
    }

    /// The username as a display name (core's one rule for names).
    pub fn user_name(&self) -> Result<UserName> {
        UserName::new(&self.username).map_err(|e| anyhow!("--username {:?}: {e}", self.username))
    }

    /// The relay to run.
    pub fn relay_choice(&self) -> RelayChoice {
        match (self.no_relay, self.relay) {
            (true, _) => RelayChoice::Off,
            (false, Some(addr)) => RelayChoice::Explicit(addr),
            (false, None) => match DEFAULT_RELAY.parse() {
                Ok(addr) => RelayChoice::Default(addr),
                Err(_) => RelayChoice::Off,
            },
        }
    }

    /// The data directory: `--data-dir`, or the per-user default.
    pub fn data_dir(&self) -> Result<PathBuf> {
        if let Some(dir) = &self.data_dir {
            return Ok(dir.clone());
        }
        let base = dirs::data_local_dir()
            .context("no per-user data directory on this system (HOME unset?); pass --data-dir")?;
        Ok(base.join("p2pchat").join(&self.username))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args> {
        let mut all = vec!["p2pchat-node"];
        all.extend_from_slice(args);
        let args = Args::try_parse_from(all)?;
        args.validate()?;
        Ok(args)
    }

    #[test]
    fn defaults_match_the_seed() {
        let a = parse(&["--username", "alice"]).unwrap();
        assert_eq!(a.port, 5000);
        assert_eq!(a.host.to_string(), "127.0.0.1");
        assert_eq!(a.signal, vec!["127.0.0.1:5555".parse().unwrap()]);
        assert_eq!(
            a.relay_choice(),
            RelayChoice::Default(DEFAULT_RELAY.parse().unwrap())
        );
        assert!(!a.json);
    }

    #[test]
    fn bad_arguments_are_refused_with_reasons() {
        let err = |args: &[&str]| parse(args).unwrap_err().to_string();
        assert!(err(&[]).contains("--username"));
        assert!(err(&["--username", "a b"]).contains("spaces"));
        assert!(err(&["--username", ""]).contains("empty"));
        assert!(err(&["--username", &"x".repeat(33)]).contains("at most 32"));
        assert!(err(&["--username", "a", "--port", "70000"]).contains("70000"));
        assert!(err(&["--username", "a", "--relay", "0.0.0.0:9000"]).contains("loopback"));
        assert!(
            err(&["--username", "a", "--relay", "127.0.0.1:1", "--no-relay"])
                .contains("cannot be used with")
        );
        assert!(err(&["--username", "a", "--signal", "nowhere"]).contains("nowhere"));
        assert!(err(&["--username", "a", "--signal", "127.0.0.1:5555=beef"]).contains("beef"));
    }

    #[test]
    fn a_signaling_server_may_come_with_its_key() {
        let key = "ab".repeat(32);
        let a = parse(&["--username", "a", "--signal", "10.0.0.1:5555"]).unwrap();
        assert_eq!(a.signal[0].key, None);
        let pinned = format!("10.0.0.2:5555={key}");
        let a = parse(&["--username", "a", "--signal", &pinned]);
        // Any 32 bytes is not necessarily a public key: the parse says so
        // clearly, or takes it.
        match a {
            Ok(a) => assert_eq!(a.signal[0].to_string(), pinned),
            Err(e) => assert!(e.to_string().contains(&key), "{e}"),
        }
    }

    #[test]
    fn relay_choices() {
        let a = parse(&["--username", "a", "--no-relay"]).unwrap();
        assert_eq!(a.relay_choice(), RelayChoice::Off);
        let a = parse(&["--username", "a", "--relay", "127.0.0.1:0"]).unwrap();
        assert_eq!(
            a.relay_choice(),
            RelayChoice::Explicit("127.0.0.1:0".parse().unwrap())
        );
    }
}
