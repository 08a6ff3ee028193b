//! Reading the user's lines: with line editing and history (rustyline) when
//! stdin is a terminal, plain line reading when it is not (so scripts and
//! tests can drive the node through a pipe).
//!
//! Reading blocks, so it runs on a thread of its own and hands lines over
//! a bounded channel; the engine task never waits on the keyboard. Lines
//! that arrive together (a paste, a script's burst) cross the channel
//! together: one hand-over, and one wake-up of each side, per burst rather
//! than per line.

use std::io::{BufRead, BufReader, Read};

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
    /// Lines, in order, in the bursts they arrived in.
    pub lines: mpsc::Receiver<Vec<Input>>,
    /// The editor's printer, when the editor owns the terminal.
    pub printer: Option<Box<dyn rustyline::ExternalPrinter + Send>>,
}

/// Bursts queued between the reader thread and the engine.
const QUEUE: usize = 16;
/// Most lines in one burst.
pub const BURST: usize = 256;
/// The pipe reader's buffer: what one read from the pipe can bring in.
const PIPE_BUFFER: usize = 64 * 1024;
/// Longest line taken from a pipe (a message's text is at most 16 KiB).
const MAX_LINE: usize = 64 * 1024;

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
        .spawn(move || read_pipe(BufReader::with_capacity(PIPE_BUFFER, std::io::stdin()), &tx))
        .context("starting the stdin reader")?;
    Ok(Reader {
        lines,
        printer: None,
    })
}

/// Reads lines from a pipe until it ends; after each line, the lines
/// already in the buffer (complete, so reading them cannot block) join it
/// in one burst.
fn read_pipe<R: Read>(mut reader: BufReader<R>, tx: &mpsc::Sender<Vec<Input>>) {
    loop {
        let mut burst = Vec::new();
        let mut end = false;
        loop {
            match read_one(&mut reader) {
                Ok(Some(line)) => burst.push(Input::Line(line)),
                Ok(None) => end = true,
                Err(e) => {
                    tracing::warn!("reading stdin: {e}");
                    end = true;
                }
            }
            // Only lines already buffered join: taking them cannot block.
            if end || burst.len() >= BURST || !reader.buffer().contains(&b'\n') {
                break;
            }
        }
        if end {
            burst.push(Input::End);
        }
        if tx.blocking_send(burst).is_err() || end {
            return;
        }
    }
}

/// One line, as `BufRead::lines` gives it (without "\n" or "\r\n"), or
/// `None` at the end of the input. A line longer than [`MAX_LINE`] is cut
/// there (the rest of it is read and dropped): memory stays bounded
/// whatever comes down the pipe, and the command it starts is refused as
/// too long. A line that is not UTF-8 is an error, as with `lines`.
fn read_one(reader: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut bytes = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut bytes)?;
    if n == 0 {
        return Ok(None);
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    } else if n == MAX_LINE {
        reader.skip_until(b'\n')?;
        // The cut may fall inside a character: keep what is whole.
        let whole = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            Err(e) => e.valid_up_to(),
        };
        bytes.truncate(whole);
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn edit(mut editor: rustyline::DefaultEditor, tx: mpsc::Sender<Vec<Input>>) {
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
        if tx.blocking_send(vec![input]).is_err() || end {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bursts `read_pipe` hands over for `input`.
    fn bursts(input: &[u8], capacity: usize) -> Vec<Vec<String>> {
        let (tx, mut rx) = mpsc::channel(1024);
        read_pipe(BufReader::with_capacity(capacity, input), &tx);
        drop(tx);
        let mut out = Vec::new();
        while let Ok(burst) = rx.try_recv() {
            out.push(
                burst
                    .into_iter()
                    .map(|i| match i {
                        Input::Line(l) => l,
                        Input::End => "<end>".to_owned(),
                    })
                    .collect(),
            );
        }
        out
    }

    #[test]
    fn lines_that_arrive_together_are_handed_over_together() {
        // The end of the input is only known at the next read: it comes
        // on its own; so does a last line without its line end.
        let got = bursts(
            b"/help\r\n/peers\n/send_chat general hi\n/quit",
            PIPE_BUFFER,
        );
        assert_eq!(
            got,
            vec![
                vec!["/help", "/peers", "/send_chat general hi"],
                vec!["/quit"],
                vec!["<end>"]
            ]
        );
    }

    #[test]
    fn a_burst_holds_at_most_its_bound_and_nothing_is_lost() {
        let input: String = (0..BURST + 10).map(|i| format!("line {i}\n")).collect();
        let got = bursts(input.as_bytes(), PIPE_BUFFER);
        assert_eq!(got.len(), 3);
        assert_eq!((got[0].len(), got[1].len()), (BURST, 10));
        let all: Vec<String> = got.concat();
        let want: Vec<String> = (0..BURST + 10)
            .map(|i| format!("line {i}"))
            .chain(["<end>".to_owned()])
            .collect();
        assert_eq!(all, want);
    }

    #[test]
    fn a_line_split_across_reads_waits_for_its_end() {
        // A small buffer: lines straddle its refills, and each is still
        // whole and in order.
        let input: String = (0..50).map(|i| format!("message number {i}\n")).collect();
        let got: Vec<String> = bursts(input.as_bytes(), 16).concat();
        assert_eq!(got.len(), 51);
        assert_eq!(got[49], "message number 49");
    }

    #[test]
    fn an_endless_line_is_cut_and_the_next_one_is_whole() {
        let mut input = vec![b'x'; 3 * MAX_LINE];
        input.extend_from_slice("é\n/peers\n".as_bytes());
        let got = bursts(&input, PIPE_BUFFER).concat();
        assert_eq!(got.len(), 3, "the long line, /peers, the end");
        assert_eq!(got[0].len(), MAX_LINE);
        assert_eq!(got[1], "/peers");
        // Cut inside a two-byte character: the part that is whole stays.
        let mut input = vec![b'x'; MAX_LINE - 1];
        input.extend_from_slice("é tail\nnext\n".as_bytes());
        let got = bursts(&input, 16).concat();
        assert_eq!(got[0].len(), MAX_LINE - 1);
        assert_eq!(got[1], "next");
    }

    #[test]
    fn unreadable_input_ends_the_input() {
        assert_eq!(
            bursts(b"/peers\n\xff\xfe\n/help\n", PIPE_BUFFER).concat(),
            ["/peers", "<end>"]
        );
    }
}
