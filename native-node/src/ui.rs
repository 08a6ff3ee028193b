//! What the node tells the user, as text for people or JSON for scripts.
//!
//! Every output is a [`Note`]. In the default mode it is rendered as lines
//! of text (messages as `[room] HH:MM:SS (LC n) alice: text`); with
//! `--json` as one JSON object per line with an `"event"` field. When the
//! line editor owns the terminal, notes go through its printer so they
//! appear above the prompt instead of inside what the user is typing.

use std::io::Write;
use std::net::SocketAddr;

use chrono::{Local, TimeZone};
use p2pchat_core::membership::Status;
use serde::Serialize;

/// One message, as shown in the timeline and in `/history`.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    /// The chat's name.
    pub chat: String,
    /// The room id (hex).
    pub room: String,
    /// The author's peer id (hex).
    pub author: String,
    /// The author's display name.
    pub name: String,
    /// The name as shown: with a short id suffix when two authors share it.
    pub shown_name: String,
    /// The author's sequence number.
    pub seq: u64,
    /// Lamport time.
    pub lamport: u64,
    /// When it was written, ms since the Unix epoch: the author's clock,
    /// never before the messages it follows (see `p2pchat_core::history`).
    pub time: u64,
    /// The author's clock is well before the messages this one follows.
    pub backdated: bool,
    /// What the author's clock said, when backdated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_time: Option<u64>,
    /// The text (or a placeholder for a kind this version cannot show).
    pub text: String,
    /// Placed before a message shown earlier.
    pub late: bool,
    /// Written by this node.
    pub own: bool,
    /// Where it stands: `pending`, `sent` (own messages) or `received`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<&'static str>,
    /// Its author was proven to equivocate in this chat.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub equivocator: bool,
}

/// A member of a chat, for `/peers`.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    /// Peer id (hex).
    pub peer: String,
    /// Display name, if known.
    pub name: Option<String>,
    /// online, suspect or offline.
    pub status: Status,
    /// Last address heard from.
    pub addr: Option<SocketAddr>,
    /// Milliseconds since it was last heard from, if ever.
    pub last_seen_ms_ago: Option<u64>,
    /// The sequence number it was proven to use for two different
    /// messages, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equivocated_at: Option<u64>,
}

/// A chat, for `/chats`.
#[derive(Debug, Clone, Serialize)]
pub struct ChatView {
    /// Name.
    pub chat: String,
    /// Room id (hex).
    pub room: String,
    /// Chat ID to share.
    pub chat_id: String,
    /// Messages in history.
    pub messages: usize,
    /// Members known (not counting this node).
    pub members: usize,
    /// Members online.
    pub online: usize,
    /// Own messages stored but not yet sent to anyone (nobody was online).
    pub pending: usize,
    /// Lines without a slash go here.
    pub current: bool,
}

/// Everything the node reports.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Note {
    /// The node is up.
    Ready {
        version: String,
        peer: String,
        name: String,
        udp: SocketAddr,
        relay: Option<SocketAddr>,
        /// Signaling servers, `addr` or `addr=key` when the key is pinned.
        signal: Vec<String>,
        data_dir: String,
        chats: usize,
        messages: usize,
    },
    /// A chat was created here.
    ChatCreated {
        chat: String,
        room: String,
        chat_id: String,
    },
    /// A chat was joined.
    ChatJoined {
        chat: String,
        room: String,
        chat_id: String,
    },
    /// A stored chat was rejoined at start.
    ChatRestored {
        chat: String,
        room: String,
        chat_id: String,
        messages: usize,
    },
    /// `/leave` asks before erasing the chat.
    ConfirmLeave { chat: String, room: String },
    /// The user did not confirm `/leave`: the chat stays.
    LeaveCancelled { chat: String, room: String },
    /// A chat was left.
    ChatLeft { chat: String, room: String },
    /// A message was delivered (own messages: after they are stored).
    Message(MessageView),
    /// A member appeared or changed status.
    Member {
        chat: String,
        room: String,
        peer: String,
        name: Option<String>,
        from: Option<Status>,
        to: Status,
    },
    /// Messages shown earlier turned out to be late: messages written well
    /// after each, without knowing it, sort after it.
    Late {
        chat: String,
        room: String,
        messages: Vec<MessageView>,
    },
    /// A member was proven to have signed two different messages under
    /// one number (`seq`), shown to different members.
    Equivocation {
        chat: String,
        room: String,
        peer: String,
        name: String,
        seq: u64,
    },
    /// Everything a member had announced is here.
    CaughtUp {
        chat: String,
        room: String,
        messages: usize,
    },
    /// `/peers` for one chat.
    Peers {
        chat: String,
        room: String,
        members: Vec<PeerView>,
    },
    /// `/chats`.
    Chats { chats: Vec<ChatView> },
    /// `/history`.
    History {
        chat: String,
        room: String,
        total: usize,
        messages: Vec<MessageView>,
    },
    /// `/invite`.
    Invite {
        chat: String,
        room: String,
        chat_id: String,
    },
    /// `/help`.
    Help { text: String },
    /// Something went wrong with what the user asked.
    Error { message: String },
    /// The node is stopping.
    Bye,
}

/// Where notes go.
pub struct Output {
    json: bool,
    printer: Option<Box<dyn rustyline::ExternalPrinter + Send>>,
}

impl Output {
    /// Text or JSON on stdout; through `printer` when the editor is active.
    pub fn new(json: bool, printer: Option<Box<dyn rustyline::ExternalPrinter + Send>>) -> Self {
        Output { json, printer }
    }

    /// Shows a note.
    pub fn show(&mut self, note: &Note) {
        let text = if self.json {
            match serde_json::to_string(note) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("cannot encode a note as JSON: {e}");
                    return;
                }
            }
        } else {
            render(note)
        };
        if let Some(printer) = &mut self.printer {
            if printer.print(format!("{text}\n")).is_ok() {
                return;
            }
        }
        let mut out = std::io::stdout().lock();
        // A closed stdout (the reader went away) is not a reason to stop
        // chatting or to lose data: the store has it already.
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// `HH:MM:SS` in local time.
pub fn clock(ms: u64) -> String {
    local(ms, "%H:%M:%S").unwrap_or_else(|| "??:??:??".to_owned())
}

/// `ms` since the Unix epoch in local time, as `format` says.
fn local(ms: u64, format: &str) -> Option<String> {
    let ms = i64::try_from(ms).ok()?;
    let t = Local.timestamp_millis_opt(ms).single()?;
    Some(t.format(format).to_string())
}

fn render_message(m: &MessageView) -> String {
    let mut lines = m.text.split('\n');
    let first = lines.next().unwrap_or_default();
    let mut out = format!(
        "[{}] {} (LC {}) {}: {first}",
        m.chat,
        clock(m.time),
        m.lamport,
        m.shown_name
    );
    for line in lines {
        out.push_str("\n    ");
        out.push_str(line);
    }
    if m.late {
        out.push_str("   (late: placed before newer messages that did not know it)");
    }
    if m.equivocator {
        out.push_str("   (from a member who equivocated: others may have been told otherwise)");
    }
    if let Some(claimed) = m.claimed_time {
        out.push_str(&format!(
            "   (backdated: its author's clock said {})",
            date_and_clock(claimed)
        ));
    }
    out
}

/// A date and time for people, in local time.
fn date_and_clock(ms: u64) -> String {
    local(ms, "%Y-%m-%d %H:%M:%S").unwrap_or_else(|| "an impossible time".to_owned())
}

fn who(name: &Option<String>, peer: &str) -> String {
    let short: String = peer.chars().take(8).collect();
    match name {
        Some(n) => format!("{n} ({short})"),
        None => format!("peer {short}"),
    }
}

fn ago(ms: Option<u64>) -> String {
    match ms {
        None => "never heard from".to_owned(),
        Some(ms) if ms < 2_000 => "seen just now".to_owned(),
        Some(ms) if ms < 120_000 => format!("seen {} s ago", ms / 1000),
        Some(ms) if ms < 7_200_000 => format!("seen {} min ago", ms / 60_000),
        Some(ms) => format!("seen {} h ago", ms / 3_600_000),
    }
}

/// A note as text for people.
pub fn render(note: &Note) -> String {
    match note {
        Note::Ready {
            version,
            peer,
            name,
            udp,
            relay,
            signal,
            data_dir,
            chats,
            messages,
        } => {
            let mut s = format!(
                "p2pchat node {version}\n  user    {name} (peer {})\n  udp     {udp}\n",
                peer.chars().take(8).collect::<String>()
            );
            match relay {
                Some(r) => s.push_str(&format!("  relay   ws://{r} (for the web UI)\n")),
                None => s.push_str("  relay   off\n"),
            }
            for server in signal {
                s.push_str(&format!("  signal  {server}\n"));
            }
            s.push_str(&format!(
                "  store   {data_dir} ({chats} chats, {messages} messages)\nType /help for commands."
            ));
            s
        }
        Note::ChatCreated { chat, chat_id, .. } => format!(
            "created chat {chat}; share this Chat ID to invite people (whoever has it can read the chat):\n{chat_id}"
        ),
        Note::ChatJoined { chat, .. } => {
            format!("joined chat {chat}; catching up with its members… (messages without a slash now go to {chat})")
        }
        Note::ChatRestored {
            chat, messages, ..
        } => format!("[{chat}] rejoined: {messages} messages stored (/history {chat} to see them)"),
        Note::ConfirmLeave { chat, .. } => format!(
            "leave {chat}? Its messages, members and Chat ID are erased from this machine for good \
             (the other members keep theirs). Type yes to leave, anything else to stay."
        ),
        Note::LeaveCancelled { chat, .. } => format!("still in {chat}: nothing was erased"),
        Note::ChatLeft { chat, .. } => {
            format!("left chat {chat}; its messages and Chat ID are erased here")
        }
        Note::Message(m) => render_message(m),
        Note::Member {
            chat,
            peer,
            name,
            from,
            to,
            ..
        } => {
            let who = who(name, peer);
            let what = match (from, to) {
                (None, Status::Online) => "joined (online)".to_owned(),
                (None, s) => format!("is a member ({})", s.as_str()),
                (Some(_), Status::Online) => "is online".to_owned(),
                (Some(_), Status::Suspect) => "is not answering (suspect)".to_owned(),
                (Some(_), Status::Offline) => "is offline".to_owned(),
            };
            format!("[{chat}] {who} {what}")
        }
        Note::Late { chat, messages, .. } => {
            let mut s = format!(
                "[{chat}] {} shown earlier turned out late: written before newer messages that did \
                 not know {}:",
                match messages.len() {
                    1 => "a message".to_owned(),
                    n => format!("{n} messages"),
                },
                if messages.len() == 1 { "it" } else { "them" },
            );
            for m in messages {
                s.push_str("\n  ");
                s.push_str(&render_message(m));
            }
            s
        }
        Note::Equivocation {
            chat,
            peer,
            name,
            seq,
            ..
        } => format!(
            "[{chat}] warning: {} signed two different messages as its message {seq} and showed \
             them to different members. Its messages from that one on are hidden, on every \
             member alike (/history shows the chat as everyone now sees it); it is marked in \
             /peers.",
            who(&Some(name.clone()), peer)
        ),
        Note::CaughtUp { chat, messages, .. } => {
            format!("[{chat}] caught up: {messages} messages in history")
        }
        Note::Peers { chat, members, .. } => {
            if members.is_empty() {
                return format!("[{chat}] no other members known yet");
            }
            let mut s = format!("[{chat}] {} members:", members.len());
            for m in members {
                s.push_str(&format!(
                    "\n  {:<8} {}  {}{}",
                    m.status.as_str(),
                    who(&m.name, &m.peer),
                    ago(m.last_seen_ms_ago),
                    m.addr.map(|a| format!("  at {a}")).unwrap_or_default()
                ));
                if let Some(seq) = m.equivocated_at {
                    s.push_str(&format!(
                        "  EQUIVOCATED (two different messages signed as its message {seq})"
                    ));
                }
            }
            s
        }
        Note::Chats { chats } => {
            if chats.is_empty() {
                return "no chats yet: /create_chat <name> or /join_chat <Chat ID>".to_owned();
            }
            let mut s = String::from("your chats:");
            for c in chats {
                let pending = match c.pending {
                    0 => String::new(),
                    n => format!(", {n} of yours waiting for someone to come online"),
                };
                s.push_str(&format!(
                    "\n{} {}  {} messages, {}/{} members online{pending}\n    {}",
                    if c.current { "*" } else { " " },
                    c.chat,
                    c.messages,
                    c.online,
                    c.members,
                    c.chat_id
                ));
            }
            s
        }
        Note::History {
            chat,
            total,
            messages,
            ..
        } => {
            let mut s = format!(
                "[{chat}] last {} of {total} messages:",
                messages.len()
            );
            for m in messages {
                s.push('\n');
                s.push_str(&render_message(m));
            }
            s
        }
        Note::Invite { chat, chat_id, .. } => format!("Chat ID of {chat}:\n{chat_id}"),
        Note::Help { text } => text.clone(),
        Note::Error { message } => format!("error: {message}"),
        Note::Bye => "bye".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str, late: bool) -> MessageView {
        MessageView {
            chat: "general".into(),
            room: "00".into(),
            author: "ab".repeat(32),
            name: "alice".into(),
            shown_name: "alice".into(),
            seq: 1,
            lamport: 7,
            time: 1_700_000_000_000,
            backdated: false,
            claimed_time: None,
            text: text.into(),
            late,
            own: false,
            delivery: None,
            equivocator: false,
        }
    }

    #[test]
    fn messages_render_in_the_seed_format() {
        let line = render(&Note::Message(message("hi there", false)));
        let t = clock(1_700_000_000_000);
        assert_eq!(line, format!("[general] {t} (LC 7) alice: hi there"));
        assert_eq!(t.len(), 8);
        assert_eq!(t.matches(':').count(), 2);
        let multi = render(&Note::Message(message("a\nb", true)));
        assert!(multi.contains("alice: a\n    b"), "{multi}");
        assert!(multi.contains("late"), "{multi}");
        let mut backdated = message("first!", false);
        backdated.claimed_time = Some(961_070_400_000); // 2000-06-15 12:00 UTC
        let line = render(&Note::Message(backdated));
        assert!(
            line.contains("(backdated: its author's clock said 2000-06-15 "),
            "{line}"
        );
    }

    #[test]
    fn notes_are_tagged_json() {
        let v: serde_json::Value = serde_json::from_str(
            &serde_json::to_string(&Note::Message(message("x", false))).unwrap(),
        )
        .unwrap();
        assert_eq!(v["event"], "message");
        assert_eq!(v["text"], "x");
        assert_eq!(v["lamport"], 7);
        let v = serde_json::to_value(Note::Error {
            message: "nope".into(),
        })
        .unwrap();
        assert_eq!(v["event"], "error");
        let v = serde_json::to_value(Note::Member {
            chat: "g".into(),
            room: "r".into(),
            peer: "p".into(),
            name: None,
            from: Some(Status::Online),
            to: Status::Suspect,
        })
        .unwrap();
        assert_eq!(v["to"], "suspect");
        assert_eq!(v["from"], "online");
    }

    #[test]
    fn chats_say_how_many_own_messages_wait() {
        let chat = |pending| ChatView {
            chat: "general".into(),
            room: "00".into(),
            chat_id: "p2pchat:x".into(),
            messages: 3,
            members: 1,
            online: 0,
            pending,
            current: true,
        };
        let waiting = render(&Note::Chats {
            chats: vec![chat(2)],
        });
        assert!(
            waiting.contains("* general  3 messages, 0/1 members online, 2 of yours waiting"),
            "{waiting}"
        );
        let none = render(&Note::Chats {
            chats: vec![chat(0)],
        });
        assert!(!none.contains("waiting"), "{none}");
    }

    #[test]
    fn absurd_times_do_not_panic() {
        assert_eq!(clock(u64::MAX), "??:??:??");
        assert_eq!(clock(i64::MAX as u64), "??:??:??");
    }
}
