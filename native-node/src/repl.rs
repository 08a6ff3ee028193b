//! The command loop: reads lines from stdin and answers them.

use anyhow::{Context, Result};
use std::io::BufRead;

use tokio::sync::mpsc;

const HELP: &str = "\
Commands:
  /help   show this help
  /quit   leave p2pchat";

/// What one input line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Quit,
    Empty,
    Unknown(String),
}

impl Command {
    pub fn parse(line: &str) -> Command {
        let line = line.trim();
        let word = line.split_whitespace().next().unwrap_or("");
        match word {
            "" => Command::Empty,
            "/help" => Command::Help,
            "/quit" => Command::Quit,
            other => Command::Unknown(other.to_owned()),
        }
    }
}

/// Runs until `/quit` or end of input.
///
/// Lines are read on a plain thread and handed over a channel: a blocking
/// read of stdin must not hold up the runtime's shutdown.
pub async fn run() -> Result<()> {
    let (tx, mut rx) = mpsc::channel::<std::io::Result<String>>(16);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        })
        .context("starting the stdin reader")?;
    while let Some(line) = rx.recv().await {
        let line = line.context("reading stdin")?;
        match Command::parse(&line) {
            Command::Empty => {}
            Command::Help => println!("{HELP}"),
            Command::Quit => return Ok(()),
            Command::Unknown(word) => {
                println!("error: unknown command {word:?}; type /help for the list")
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Command;

    #[test]
    fn parses_commands_and_rejects_others() {
        assert_eq!(Command::parse("/help"), Command::Help);
        assert_eq!(Command::parse("  /quit  "), Command::Quit);
        assert_eq!(Command::parse(""), Command::Empty);
        assert_eq!(Command::parse("   "), Command::Empty);
        assert_eq!(Command::parse("/nope x"), Command::Unknown("/nope".into()));
        assert_eq!(Command::parse("/HELP"), Command::Unknown("/HELP".into()));
    }
}
