//! End-to-end tests of the real binaries on loopback.

use std::net::UdpSocket;
use std::time::Duration;

use anyhow::Result;
use p2pchat_tests::process::Stream;
use p2pchat_tests::{binary, Process};

const WAIT: Duration = Duration::from_secs(30);

fn start_signaling() -> Result<(Process, String)> {
    let bin = binary("p2pchat-signaling")?;
    let mut sig = Process::start(&bin, &["--listen", "127.0.0.1:0"])?;
    let line = sig.expect_stdout("listening on", WAIT)?;
    let addr = line
        .rsplit(' ')
        .next()
        .map(str::to_owned)
        .unwrap_or_default();
    Ok((sig, addr))
}

/// A node with its store in a fresh temporary directory (kept alive by the
/// returned guard) and no browser relay.
fn start_node(signal: &str, username: &str) -> Result<(Process, tempfile::TempDir)> {
    let bin = binary("p2pchat-node")?;
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().display().to_string();
    let node = Process::start(
        &bin,
        &[
            "--data-dir",
            &data_dir,
            "--no-relay",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--username",
            username,
            "--signal",
            signal,
        ],
    )?;
    Ok((node, dir))
}

#[test]
fn signaling_reports_its_port_and_stops_on_sigterm() -> Result<()> {
    let (mut sig, addr) = start_signaling()?;
    let addr: std::net::SocketAddr = addr.parse()?;
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0, "the real port is reported, not :0");
    // A stray datagram does not disturb it.
    let probe = UdpSocket::bind("127.0.0.1:0")?;
    probe.send_to(b"\xff garbage", addr)?;
    sig.terminate()?;
    let status = sig.wait_exit(WAIT)?;
    assert!(
        status.success(),
        "clean exit on SIGTERM: {status}\n{}",
        sig.transcript()
    );
    Ok(())
}

#[test]
fn node_prints_its_banner_answers_help_and_quits() -> Result<()> {
    let (_sig, signal) = start_signaling()?;
    let (mut node, _dir) = start_node(&signal, "alice")?;
    let user = node.expect_stdout("user ", WAIT)?;
    assert!(user.contains("alice (peer "), "{user}");
    let udp = node.expect_stdout("udp ", WAIT)?;
    let addr: std::net::SocketAddr = udp.split_whitespace().last().unwrap_or("").parse()?;
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    let sig_line = node.expect_stdout("signal ", WAIT)?;
    assert!(sig_line.ends_with(&signal), "{sig_line}");
    node.expect_stdout("Type /help", WAIT)?;

    node.send_line("/help")?;
    node.expect_stdout("/quit", WAIT)?;
    node.send_line("/no_such_command")?;
    let err = node.expect_stdout("error:", WAIT)?;
    assert!(
        err.contains("unknown command") && err.contains("/no_such_command"),
        "{err}"
    );

    // The Chat ID is printed on a line of its own, ready to copy.
    node.send_line("/create_chat general")?;
    let id_line = node.expect_stdout("p2pchat:", WAIT)?;
    assert!(id_line.starts_with("p2pchat:"), "{id_line:?}");
    id_line.parse::<p2pchat_core::ChatId>()?;

    // A line without a slash goes to the current chat and prints as
    // `[room] HH:MM:SS (LC n) name: text`.
    node.send_line("hello there")?;
    let line = node.expect_stdout("hello there", WAIT)?;
    let rest = line
        .strip_prefix("[general] ")
        .ok_or_else(|| anyhow::anyhow!("{line:?}"))?;
    let (clock, rest) = rest.split_at(8);
    assert!(
        clock.len() == 8
            && clock.chars().enumerate().all(|(i, c)| if i == 2 || i == 5 {
                c == ':'
            } else {
                c.is_ascii_digit()
            }),
        "{line:?}"
    );
    assert_eq!(rest, " (LC 1) alice: hello there", "{line:?}");

    node.send_line("/quit")?;
    node.expect_stdout("bye", WAIT)?;
    let status = node.wait_exit(WAIT)?;
    assert!(status.success(), "{status}\n{}", node.transcript());
    Ok(())
}

#[test]
fn node_stops_cleanly_on_sigterm_and_on_end_of_input() -> Result<()> {
    let (_sig, signal) = start_signaling()?;

    let (mut node, _dir) = start_node(&signal, "bob")?;
    node.expect_stdout("Type /help", WAIT)?;
    node.terminate()?;
    node.expect_stdout("bye", WAIT)?;
    assert!(node.wait_exit(WAIT)?.success(), "{}", node.transcript());

    let (mut node, _dir) = start_node(&signal, "carol")?;
    node.expect_stdout("Type /help", WAIT)?;
    node.close_stdin();
    node.expect_stdout("bye", WAIT)?;
    assert!(node.wait_exit(WAIT)?.success(), "{}", node.transcript());
    Ok(())
}

/// Runs the node with `args`, expects it to fail, returns its stderr.
fn node_fails_with(args: &[&str]) -> Result<String> {
    let bin = binary("p2pchat-node")?;
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().display().to_string();
    let mut all = vec!["--data-dir", &data_dir, "--no-relay"];
    all.extend_from_slice(args);
    let mut node = Process::start(&bin, &all)?;
    let status = node.wait_exit(WAIT)?;
    assert!(
        !status.success(),
        "{args:?} should fail\n{}",
        node.transcript()
    );
    Ok(node.seen(Stream::Stderr).join("\n"))
}

#[test]
fn bad_command_lines_are_clear_errors() -> Result<()> {
    let err = node_fails_with(&["--port", "70000", "--username", "a"])?;
    assert!(err.contains("--port") && err.contains("70000"), "{err}");

    let err = node_fails_with(&["--port", "0"])?;
    assert!(err.contains("--username"), "{err}");

    let err = node_fails_with(&["--port", "0", "--username", ""])?;
    assert!(err.contains("cannot be empty"), "{err}");

    let err = node_fails_with(&["--port", "0", "--username", "two words"])?;
    assert!(err.contains("spaces"), "{err}");

    let err = node_fails_with(&["--host", "not-an-ip", "--port", "0", "--username", "a"])?;
    assert!(err.contains("--host"), "{err}");

    let err = node_fails_with(&["--port", "0", "--username", "a", "--signal", "nowhere"])?;
    assert!(err.contains("--signal"), "{err}");

    // The port is taken: say so, and suggest --port.
    let taken = UdpSocket::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port().to_string();
    let err = node_fails_with(&["--port", &port, "--username", "a"])?;
    assert!(
        err.contains("cannot bind UDP") && err.contains("--port"),
        "{err}"
    );
    Ok(())
}
