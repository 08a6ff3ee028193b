//! A child process under test: stdout/stderr read line by line in the
//! background, every wait bounded, killed when dropped.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A running child process.
pub struct Process {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<(Stream, String)>,
    /// Everything read so far, for error messages.
    seen: Vec<(Stream, String)>,
}

impl Process {
    /// Starts `program` with `args`, stdin/stdout/stderr piped.
    pub fn start(program: &Path, args: &[&str]) -> Result<Process> {
        Self::start_with_env(program, args, &[])
    }

    /// Like [`Process::start`], with extra environment variables (which
    /// override `RUST_LOG` too).
    pub fn start_with_env(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Process> {
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.display().to_string());
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .envs(env.iter().copied())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let (tx, lines) = channel();
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send((Stream::Stdout, line)).is_err() {
                        break;
                    }
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if tx.send((Stream::Stderr, line)).is_err() {
                        break;
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        Ok(Process {
            name,
            child,
            stdin,
            lines,
            seen: Vec::new(),
        })
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one line to the child's stdin.
    pub fn send_line(&mut self, line: &str) -> Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("{}: stdin already closed", self.name))?;
        writeln!(stdin, "{line}").with_context(|| format!("{}: writing stdin", self.name))?;
        stdin
            .flush()
            .with_context(|| format!("{}: flushing stdin", self.name))
    }

    /// Closes stdin (end of input for the child).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits up to `timeout` for a line on `stream` that satisfies `pred`,
    /// and returns it.
    pub fn expect_line(
        &mut self,
        stream: Stream,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((s, line)) => {
                    self.seen.push((s, line.clone()));
                    if s == stream && pred(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "{}: no {what} within {timeout:?}\n{}",
                        self.name,
                        self.transcript()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("{}: exited before {what}\n{}", self.name, self.transcript())
                }
            }
        }
    }

    /// Shorthand: a stdout line containing `needle`.
    pub fn expect_stdout(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        self.expect_line(
            Stream::Stdout,
            timeout,
            &format!("stdout line with {needle:?}"),
            |l| l.contains(needle),
        )
    }

    /// Waits up to `timeout` for the process to exit; kills it if it does not.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for child")? {
                self.drain();
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.drain();
                bail!(
                    "{}: did not exit within {timeout:?}\n{}",
                    self.name,
                    self.transcript()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM (the polite stop a service manager sends).
    pub fn terminate(&self) -> Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("running kill -TERM")?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid());
        }
        Ok(())
    }

    /// All lines read so far, for assertions and failure messages.
    pub fn transcript(&self) -> String {
        self.seen
            .iter()
            .map(|(s, l)| {
                format!(
                    "  [{}] {l}",
                    if *s == Stream::Stdout { "out" } else { "err" }
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Lines read so far from one stream.
    pub fn seen(&self, stream: Stream) -> Vec<String> {
        self.seen
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, l)| l.clone())
            .collect()
    }

    fn drain(&mut self) {
        // The reader threads end at EOF; give them a moment to hand over
        // the last lines.
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Ok(item) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(item);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The path of a workspace binary, built first (once per test process) so
/// tests never run a stale one.
///
/// It builds *all* workspace binaries, exactly as `scripts/test.sh` does
/// before the tests: a narrower `cargo build -p …` would resolve features
/// differently and recompile half the dependency tree. When they are already
/// built this is a no-op of about a second.
pub fn binary(name: &str) -> Result<PathBuf> {
    static BUILT: OnceLock<Mutex<bool>> = OnceLock::new();
    let profile_dir = profile_dir()?;
    let built = BUILT.get_or_init(|| Mutex::new(false));
    let mut built = built
        .lock()
        .map_err(|_| anyhow!("binary build lock poisoned"))?;
    if !*built {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "--workspace", "--bins"])
            .current_dir(workspace_root());
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().context("building the workspace binaries")?;
        if !status.success() {
            bail!("cargo build --workspace --bins failed");
        }
        *built = true;
    }
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.exists() {
        bail!("{} was not built", path.display());
    }
    Ok(path)
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// `target/<profile>`: test binaries live in `target/<profile>/deps`.
fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test binary")?;
    let deps = exe.parent().context("test binary has no directory")?;
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().context("deps has no parent")?
    } else {
        deps
    };
    Ok(dir.to_path_buf())
}
