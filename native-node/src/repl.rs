//! Reading the user's lines: with line editing and history (rustyline) when
//! stdin is a terminal, plain line reading when it is not (so scripts and
//! tests can drive the node through a pipe).
//!
//! Reading blocks, so it runs on a thread of its own and hands lines over
//! a bounded channel; the engine task never waits on the keyboard.

use std::io::BufRead;

use anyhow::{Context, Result};
use rustyline::error::ReadlineError;
use tokio::sync::mpsc;

use crate::command::Command;

/// What the keyboard (or the pipe) produced.
#[derive(Debug)]
pub enum Input {
    /// One line, without its line ending.
    Line(String),
    /// End of input (Ctrl-D, or the pipe closed) or Ctrl-C in the editor.
    End,
}

/// A running reader.
pub struct Reader {
    /// Lines, in order.
    pub lines: mpsc::Receiver<Input>,
    /// The editor's printer, when the editor owns the terminal.
    pub printer: Option<Box<dyn rustyline::ExternalPrinter + Send>>,
}

/// Lines queued between the reader thread and the engine.
const QUEUE: usize = 256;

/// Starts reading: with the line editor when `interactive`.
pub fn start(interactive: bool) -> Result<Reader> {
    let (tx, lines) = mpsc::channel(QUEUE);
    if interactive {
        let mut editor = rustyline::DefaultEditor::new().context("starting the line editor")?;
        let printer = editor
            .create_external_printer()
            .context("starting the line editor's printer")?;
        std::thread::Builder::new()
            .name("editor".into())
            .spawn(move || edit(editor, tx))
            .context("starting the line editor thread")?;
        return Ok(Reader {
            lines,
            printer: Some(Box::new(printer)),
        });
    }
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let input = match line {
                    Ok(l) => Input::Line(l),
                    Err(e) => {
                        tracing::warn!("reading stdin: {e}");
                        Input::End
                    }
                };
                let end = matches!(input, Input::End);
                if tx.blocking_send(input).is_err() || end {
                    return;
                }
            }
            let _ = tx.blocking_send(Input::End);
        })
        .context("starting the stdin reader")?;
    Ok(Reader {
        lines,
        printer: None,
    })
}

fn edit(mut editor: rustyline::DefaultEditor, tx: mpsc::Sender<Input>) {
    loop {
        let input = match editor.readline("> ") {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                Input::Line(line)
            }
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => Input::End,
            Err(e) => {
                tracing::warn!("line editor: {e}");
                Input::End
            }
        };
        // After /quit, do not start another read: the process is about to
        // exit, and it must not leave the terminal in the editor's raw mode.
        let end = match &input {
            Input::End => true,
            Input::Line(l) => Command::parse(l) == Ok(Command::Quit),
        };
        if tx.blocking_send(input).is_err() || end {
            return;
        }
    }
}
