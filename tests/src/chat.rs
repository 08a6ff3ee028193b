//! Real `p2pchat-signaling` and `p2pchat-node` processes on loopback,
//! driven through the node's `--json` interface: one JSON object per line
//! on stdout for every event, commands written to stdin.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::process::{binary, Process, Stream};

/// Longest wait for anything that involves the network.
pub const WAIT: Duration = Duration::from_secs(60);

/// A running signaling server.
pub struct Signaling {
    /// The process.
    pub process: Process,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Signaling {
    /// Starts a server on a free loopback port.
    pub fn start() -> Result<Signaling> {
        let bin = binary("p2pchat-signaling")?;
        let mut process = Process::start(&bin, &["--listen", "127.0.0.1:0"])?;
        let line = process.expect_stdout("listening on", WAIT)?;
        let addr = line
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .parse()
            .with_context(|| format!("signaling address in {line:?}"))?;
        Ok(Signaling { process, addr })
    }
}

/// A running node.
pub struct ChatNode {
    /// The process.
    pub process: Process,
    /// Its username.
    pub name: String,
    /// Its peer id (hex).
    pub peer: String,
    /// Its UDP address.
    pub udp: SocketAddr,
    /// Its relay address, if it runs one.
    pub relay: Option<SocketAddr>,
    /// The `ready` event.
    pub ready: Value,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl ChatNode {
    /// Starts `p2pchat-node --json` on a free loopback port with its store
    /// in `data_dir`, registered with `signal`. `extra` arguments come last
    /// (the relay is off unless `extra` asks for one).
    pub fn start(
        name: &str,
        data_dir: &Path,
        signal: &[SocketAddr],
        extra: &[&str],
    ) -> Result<ChatNode> {
        let bin = binary("p2pchat-node")?;
        let dir = data_dir.display().to_string();
        let mut args: Vec<String> = vec![
            "--json".into(),
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            "0".into(),
            "--username".into(),
            name.into(),
            "--data-dir".into(),
            dir,
        ];
        for s in signal {
            args.push("--signal".into());
            args.push(s.to_string());
        }
        if !extra.contains(&"--relay") {
            args.push("--no-relay".into());
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut process = Process::start(&bin, &args)?;
        let ready = next_event(&mut process, WAIT, "ready", |v| v["event"] == "ready")?;
        let udp = ready["udp"]
            .as_str()
            .ok_or_else(|| anyhow!("ready without udp: {ready}"))?
            .parse()?;
        let relay = match ready["relay"].as_str() {
            Some(r) => Some(r.parse()?),
            None => None,
        };
        let peer = ready["peer"].as_str().unwrap_or_default().to_owned();
        Ok(ChatNode {
            process,
            name: name.to_owned(),
            peer,
            udp,
            relay,
            ready,
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// Writes a command line.
    pub fn send(&mut self, line: &str) -> Result<()> {
        self.process.send_line(line)
    }

    /// Waits for the next event that satisfies `pred` (earlier ones are
    /// skipped, and kept in the transcript).
    pub fn event(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        next_event(&mut self.process, WAIT, what, pred)
    }

    /// Waits for an `error` event and returns its message.
    pub fn error(&mut self) -> Result<String> {
        let v = self.event("an error", |v| v["event"] == "error")?;
        Ok(v["message"].as_str().unwrap_or_default().to_owned())
    }

    /// `/create_chat name`; returns the Chat ID.
    pub fn create_chat(&mut self, chat: &str) -> Result<String> {
        self.send(&format!("/create_chat {chat}"))?;
        let v = self.event("chat_created", |v| {
            v["event"] == "chat_created" && v["chat"] == chat
        })?;
        chat_id_of(&v)
    }

    /// `/join_chat id`; waits until joined.
    pub fn join_chat(&mut self, chat_id: &str) -> Result<()> {
        self.send(&format!("/join_chat {chat_id}"))?;
        self.event("chat_joined", |v| v["event"] == "chat_joined")?;
        Ok(())
    }

    /// `/send_chat chat text`; waits until it is stored and shown as sent.
    pub fn say(&mut self, chat: &str, text: &str) -> Result<Value> {
        self.send(&format!("/send_chat {chat} {text}"))?;
        self.event(&format!("own message {text:?}"), |v| {
            v["event"] == "message" && v["own"] == true && v["text"] == text
        })
    }

    /// Waits for a message with this text.
    pub fn expect_message(&mut self, text: &str) -> Result<Value> {
        self.event(&format!("message {text:?}"), |v| {
            v["event"] == "message" && v["text"] == text
        })
    }

    /// Waits until every one of `peers` has been seen online, in any order
    /// (events are consumed as they are read, so waiting for them one by
    /// one could skip past the second while waiting for the first).
    pub fn expect_online(&mut self, peers: &[&str]) -> Result<()> {
        let mut left: BTreeSet<String> = peers.iter().map(|p| (*p).to_owned()).collect();
        while !left.is_empty() {
            let v = self.event(&format!("{left:?} online"), |v| {
                v["event"] == "member"
                    && v["to"] == "online"
                    && v["peer"].as_str().is_some_and(|p| left.contains(p))
            })?;
            if let Some(p) = v["peer"].as_str() {
                left.remove(p);
            }
        }
        Ok(())
    }

    /// The chat's whole history, in the order the node shows it.
    pub fn history(&mut self, chat: &str) -> Result<Vec<Value>> {
        self.send(&format!("/history {chat} 10000"))?;
        let v = self.event("history", |v| v["event"] == "history" && v["chat"] == chat)?;
        Ok(v["messages"].as_array().cloned().unwrap_or_default())
    }

    /// Polls `/history` until it holds `n` messages (bounded by [`WAIT`]).
    pub fn wait_history(&mut self, chat: &str, n: usize) -> Result<Vec<Value>> {
        let deadline = Instant::now() + WAIT;
        loop {
            let h = self.history(chat)?;
            if h.len() >= n {
                return Ok(h);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{}: {chat} has {} of {n} messages after {WAIT:?}\n{}",
                    self.name,
                    h.len(),
                    self.process.transcript()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `/quit`, then waits for a clean exit.
    pub fn quit(&mut self) -> Result<()> {
        self.send("/quit")?;
        let status = self.process.wait_exit(WAIT)?;
        if !status.success() {
            bail!(
                "{} exited with {status}\n{}",
                self.name,
                self.process.transcript()
            );
        }
        Ok(())
    }

    /// Kills the node at once (SIGKILL): no goodbye, no flush.
    pub fn kill(&mut self) -> Result<()> {
        let status = std::process::Command::new("kill")
            .args(["-KILL", &self.process.pid().to_string()])
            .status()
            .context("running kill -KILL")?;
        if !status.success() {
            bail!("kill -KILL {} failed", self.process.pid());
        }
        self.process.wait_exit(WAIT)?;
        Ok(())
    }
}

/// `(author, seq)` of each message, the identity of a history's order.
pub fn order(history: &[Value]) -> Vec<(String, u64)> {
    history
        .iter()
        .map(|m| {
            (
                m["author"].as_str().unwrap_or_default().to_owned(),
                m["seq"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// Texts of a history, in order.
pub fn texts(history: &[Value]) -> Vec<String> {
    history
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn chat_id_of(v: &Value) -> Result<String> {
    v["chat_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no chat_id in {v}"))
}

/// The next stdout JSON line satisfying `pred`.
pub fn next_event(
    process: &mut Process,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let line = process.expect_line(Stream::Stdout, timeout, what, |line| {
        serde_json::from_str::<Value>(line).is_ok_and(|v| pred(&v))
    })?;
    Ok(serde_json::from_str(&line)?)
}
