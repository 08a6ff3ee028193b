//! The engine task: one loop that feeds the protocol engine datagrams, timer
//! ticks, the user's commands and the store's answers, and after every
//! input drains its outputs in the order that keeps promises — records to
//! the store first, then datagrams to the network, then notes to the user.
//! So a message is never shown as sent, nor sent, before it is stored.
//!
//! The store works on a thread of its own ([`crate::store_thread`]): while
//! it writes a batch, the engine takes the next input, and what waits for
//! the batch stays in the engine's queue until the store confirms it.
//!
//! The loop sleeps until the next of: a datagram, a line from the user, the
//! store's answer, the engine's next deadline, or a stop request. Nothing
//! polls, so an idle node uses no CPU between heartbeats.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use p2pchat_core::chats::Chats;
use p2pchat_core::history::{Anchor, Event};
use p2pchat_core::{AppEvent, ChatId, Node, Output as Step, PeerId, RoomId, UnixMillis};
use p2pchat_host::shutdown::Shutdown;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::command::{Command, HELP};
use crate::repl::Input;
use crate::store_thread::{Done, StoreThread};
use crate::ui::{ChatView, MessageView, Note, Output, PeerView};

/// Largest datagram read from the socket (the engine drops oversized ones
/// and counts them).
const RECV_BUFFER: usize = 65_536;
/// Most datagrams taken in before the outputs are drained (and stored in
/// one transaction).
const BATCH: usize = 256;

/// The current time as the engine wants it.
pub fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether a line answers a question with yes.
fn is_yes(line: &str) -> bool {
    matches!(line.trim().to_lowercase().as_str(), "y" | "yes")
}

/// Whether the loop goes on.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

/// The engine, the store and the socket, driven together; the user's
/// chats as core's shared chat model ([`Chats`]) sees them.
pub struct Driver {
    engine: Node,
    store: StoreThread,
    socket: Arc<UdpSocket>,
    out: Output,
    chats: Chats,
    /// The engine's next deadline, from its last `Timeout` output.
    deadline: Option<UnixMillis>,
    send_failures: u64,
    /// A `/leave` waiting for the user's "yes".
    leaving: Option<RoomId>,
}

impl Driver {
    /// Ties the parts together. `engine` may hold restored rooms: they are
    /// shown as "rejoined" by the first [`Driver::run`] step.
    pub fn new(engine: Node, store: StoreThread, socket: UdpSocket, out: Output) -> Self {
        let chats = Chats::new(engine.peer_id(), engine.name());
        Driver {
            engine,
            store,
            socket: Arc::new(socket),
            out,
            chats,
            deadline: None,
            send_failures: 0,
            leaving: None,
        }
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.engine.peer_id()
    }

    /// Shows a note.
    pub fn show(&mut self, note: &Note) {
        self.out.show(note);
    }

    /// Runs until `/quit`, the end of input, or a stop signal; then says
    /// goodbye to every chat and unregisters from signaling.
    pub async fn run(
        &mut self,
        mut lines: mpsc::Receiver<Vec<Input>>,
        shutdown: &mut Shutdown,
    ) -> Result<()> {
        let socket = Arc::clone(&self.socket);
        let mut buf = vec![0u8; RECV_BUFFER];
        loop {
            self.flush().await?;
            let deadline = self.deadline;
            let sleep = tokio::time::sleep(delay_until(deadline));
            tokio::select! {
                r = shutdown.requested() => {
                    r?;
                    break;
                }
                burst = lines.recv() => {
                    // Lines typed (or piped) together come together (see
                    // `repl`), so a burst is stored in one transaction.
                    let burst = burst.unwrap_or_else(|| vec![Input::End]);
                    let mut stop = false;
                    for input in burst {
                        let quit = match input {
                            Input::Line(line) => self.command(&line) == Flow::Quit,
                            Input::End => true,
                        };
                        if quit {
                            stop = true;
                            break;
                        }
                    }
                    if stop {
                        break;
                    }
                }
                r = socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let now = now_ms();
                        // Take what else has arrived too: a burst (a
                        // catch-up) has its signatures checked in one batch
                        // and is stored in one transaction, instead of one
                        // of each per datagram.
                        let mut burst = vec![(from, buf.get(..n).unwrap_or_default().to_vec())];
                        while burst.len() < BATCH {
                            let Ok((n, from)) = socket.try_recv_from(&mut buf) else {
                                break;
                            };
                            burst.push((from, buf.get(..n).unwrap_or_default().to_vec()));
                        }
                        self.engine.handle_datagrams(
                            now,
                            burst.iter().map(|(from, bytes)| (*from, bytes.as_slice())),
                        );
                    }
                    Err(e) => {
                        // Transient (an ICMP error surfacing, say); never
                        // let a failing socket spin the loop.
                        tracing::debug!("udp receive: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                done = self.store.done() => self.store_done(done)?,
                () = sleep, if deadline.is_some() => {
                    self.engine.handle_timeout(now_ms());
                }
            }
        }
        self.engine.shutdown(now_ms());
        // Everything said and written before stopping reaches the disk
        // (and the goodbyes the network) before the node exits.
        self.flush().await?;
        while self.store.busy() {
            let done = self.store.done().await;
            self.store_done(done)?;
            self.flush().await?;
        }
        self.store.stop();
        let c = self.engine.counters();
        let by_reason: Vec<String> = c
            .nonzero()
            .map(|(reason, n)| format!("{}={n}", reason.name()))
            .collect();
        tracing::info!(
            datagrams = c.datagrams,
            dropped = c.dropped(),
            rate_limited = c.rate_limited,
            drops = %by_reason.join(" "),
            send_failures = self.send_failures,
            "engine stopped"
        );
        Ok(())
    }

    /// Does what the engine asks, in its order: batches to the store (and
    /// confirms them), datagrams to the network, notes to the user; until
    /// it says when to wake it next.
    async fn flush(&mut self) -> Result<()> {
        loop {
            match self.engine.poll_output() {
                Step::Persist(p) => self.store.write(p)?,
                Step::Read(r) => self.store.read(r)?,
                Step::Transmit(t) => {
                    if let Err(e) = self.socket.send_to(&t.bytes, t.to).await {
                        self.send_failures += 1;
                        tracing::debug!(to = %t.to, "udp send: {e}");
                    }
                }
                Step::Event(event) => self.event(event),
                Step::Timeout(deadline) => {
                    self.deadline = deadline;
                    return Ok(());
                }
            }
        }
    }

    /// Hands the store's answer to the engine; a failed write or read stops
    /// the node (nothing that waited for it is sent or shown).
    fn store_done(&mut self, done: Done) -> Result<()> {
        match done {
            Done::Stored(batch) => self.engine.stored(batch),
            Done::Read(id, tokens) => self.engine.read_done(id, tokens),
            Done::Failed(e) => return Err(e),
        }
        Ok(())
    }

    fn event(&mut self, event: AppEvent) {
        // The chat's name before the model takes the event (a chat left is
        // gone from it afterwards).
        let chat = self.chats.name(event_room(&event));
        let notable = self.chats.apply(&event);
        match event {
            AppEvent::RoomJoined {
                room,
                name,
                chat_id,
                created,
                restored,
                ..
            } => {
                let chat = name.as_str().to_owned();
                let room_hex = room.to_string();
                let note = if restored {
                    let history = self.engine.history(&room);
                    let messages = history.map_or(0, |h| h.len());
                    let names = history.into_iter().flat_map(|h| h.names());
                    let members = self
                        .engine
                        .members(&room)
                        .into_iter()
                        .flat_map(|m| m.iter());
                    self.chats.restored(&room, messages, names, members);
                    Note::ChatRestored {
                        chat,
                        room: room_hex,
                        chat_id,
                        messages: self.engine.history(&room).map_or(0, |h| h.len()),
                    }
                } else if created {
                    Note::ChatCreated {
                        chat,
                        room: room_hex,
                        chat_id,
                    }
                } else {
                    Note::ChatJoined {
                        chat,
                        room: room_hex,
                        chat_id,
                    }
                };
                self.show(&note);
            }
            AppEvent::RoomLeft { room } => self.show(&Note::ChatLeft {
                chat,
                room: room.to_string(),
            }),
            AppEvent::Invite { .. } => {}
            AppEvent::Message {
                room,
                event,
                late,
                own,
            } => {
                let view = self.message_view(&room, &event, late, own);
                self.show(&Note::Message(view));
            }
            AppEvent::Member { room, change } => self.show(&Note::Member {
                chat,
                room: room.to_string(),
                peer: change.peer.to_string(),
                name: change.name,
                from: change.from,
                to: change.to,
            }),
            AppEvent::Reshown { room } => {
                let messages = self.engine.history(&room).map_or(0, |h| h.len());
                self.chats.reshown(&room, messages);
            }
            AppEvent::Late { room, events } => {
                let history = self.engine.history(&room);
                let messages: Vec<MessageView> = events
                    .iter()
                    .filter_map(|id| history.and_then(|h| h.get(id)))
                    .map(|e| {
                        self.message_view(&room, &e, true, e.id.author == self.engine.peer_id())
                    })
                    .collect();
                self.show(&Note::Late {
                    chat,
                    room: room.to_string(),
                    messages,
                });
            }
            AppEvent::Equivocation { room, author, seq } => self.show(&Note::Equivocation {
                chat,
                room: room.to_string(),
                peer: author.to_string(),
                name: self
                    .chats
                    .get(&room)
                    .map_or_else(|| author.short(), |c| c.member_name(&author)),
                seq,
            }),
            AppEvent::CaughtUp { room, events } => {
                if notable {
                    self.show(&Note::CaughtUp {
                        chat,
                        room: room.to_string(),
                        messages: events,
                    });
                }
            }
        }
    }

    fn message_view(&self, room: &RoomId, event: &Event, late: bool, own: bool) -> MessageView {
        let chat = self.chats.get(room);
        let shown_name = chat.map_or_else(
            || event.name.clone(),
            |c| c.shown_name(&event.id.author, &event.name),
        );
        let delivery = chat.map(|c| c.delivery(&self.engine.peer_id(), &event.id));
        MessageView {
            chat: self.chats.name(room),
            room: room.to_string(),
            author: event.id.author.to_string(),
            name: event.name.clone(),
            shown_name,
            seq: event.id.seq,
            lamport: event.lamport,
            time: event.shown_time(),
            backdated: event.backdated(),
            claimed_time: event.backdated().then_some(event.time),
            text: event.body.shown().to_owned(),
            late,
            own,
            delivery: delivery.map(|d| d.code()),
            equivocator: chat.is_some_and(|c| c.equivocates(&event.id.author)),
        }
    }

    fn error(&mut self, message: impl ToString) {
        self.show(&Note::Error {
            message: message.to_string(),
        });
    }

    fn command(&mut self, line: &str) -> Flow {
        if let Some(room) = self.leaving.take() {
            if is_yes(line) {
                if let Err(e) = self.engine.leave_room(now_ms(), &room) {
                    self.error(e);
                }
                return Flow::Continue;
            }
            let chat = self.chats.get(&room).map(|c| c.name.clone());
            self.show(&Note::LeaveCancelled {
                chat: chat.unwrap_or_default(),
                room: room.to_string(),
            });
        }
        let command = match Command::parse(line) {
            Ok(c) => c,
            Err(e) => {
                self.error(e);
                return Flow::Continue;
            }
        };
        let now = now_ms();
        match command {
            Command::Empty => {}
            Command::Quit => return Flow::Quit,
            Command::Help => self.show(&Note::Help {
                text: HELP.to_owned(),
            }),
            Command::CreateChat(name) => {
                if let Err(e) = self.engine.create_room(now, &name) {
                    self.error(e);
                }
            }
            Command::JoinChat(text) => match text.parse::<ChatId>() {
                Err(e) => self.error(format!("that is not a valid Chat ID: {e}")),
                Ok(id) => {
                    if let Err(e) = self.engine.join_room(now, &id) {
                        self.error(e);
                    }
                }
            },
            Command::SendChat { chat, text } => match self.chats.resolve(Some(&chat)) {
                Ok(room) => self.say(now, room, &text),
                Err(e) => self.error(e),
            },
            Command::Say(text) => match self.chats.resolve(None) {
                Ok(room) => self.say(now, room, &text),
                Err(e) => self.error(e),
            },
            Command::Peers(chat) => self.peers(now, chat.as_deref()),
            Command::Chats => self.list_chats(),
            Command::History { chat, count } => match self.chats.resolve(chat.as_deref()) {
                Ok(room) => self.history(room, count),
                Err(e) => self.error(e),
            },
            Command::Invite(chat) => match self.chats.resolve(chat.as_deref()) {
                Ok(room) => {
                    if let Some(c) = self.chats.get(&room) {
                        let note = Note::Invite {
                            chat: c.name.clone(),
                            room: room.to_string(),
                            chat_id: c.chat_id.clone(),
                        };
                        self.show(&note);
                    }
                }
                Err(e) => self.error(e),
            },
            Command::Leave(chat) => match self.chats.resolve(Some(&chat)) {
                Ok(room) => {
                    let chat = self.chats.get(&room).map(|c| c.name.clone());
                    self.leaving = Some(room);
                    self.show(&Note::ConfirmLeave {
                        chat: chat.unwrap_or_default(),
                        room: room.to_string(),
                    });
                }
                Err(e) => self.error(e),
            },
        }
        Flow::Continue
    }

    fn say(&mut self, now: UnixMillis, room: RoomId, text: &str) {
        match self.engine.send_text(now, &room, text) {
            Ok(_) => self.chats.set_current(room),
            Err(e) => self.error(e),
        }
    }

    fn peers(&mut self, now: UnixMillis, chat: Option<&str>) {
        let rooms: Vec<RoomId> = match chat {
            Some(q) => match self.chats.resolve(Some(q)) {
                Ok(room) => vec![room],
                Err(e) => return self.error(e),
            },
            None => self.chats.iter().map(|c| c.id).collect(),
        };
        if rooms.is_empty() {
            return self.error("no chats yet: /create_chat <name> or /join_chat <Chat ID>");
        }
        for room in rooms {
            let members = self
                .engine
                .members(&room)
                .map(|m| {
                    m.iter()
                        .map(|m| PeerView {
                            peer: m.peer.to_string(),
                            name: m.name.clone(),
                            status: m.status,
                            addr: m.addr,
                            last_seen_ms_ago: m.last_heard.map(|t| now.saturating_sub(t)),
                            equivocated_at: self
                                .chats
                                .get(&room)
                                .and_then(|c| c.equivocators.get(&m.peer).copied()),
                        })
                        .collect()
                })
                .unwrap_or_default();
            self.show(&Note::Peers {
                chat: self.chats.name(&room),
                room: room.to_string(),
                members,
            });
        }
    }

    fn list_chats(&mut self) {
        let current = self.chats.current();
        let chats = self
            .chats
            .iter()
            .map(|c| {
                // The whole member table, counting members only hinted at.
                let table = self.engine.members(&c.id);
                let online = table.map_or(0, |m| {
                    m.iter()
                        .filter(|m| m.status == p2pchat_core::membership::Status::Online)
                        .count()
                });
                ChatView {
                    chat: c.name.clone(),
                    room: c.id.to_string(),
                    chat_id: c.chat_id.clone(),
                    messages: c.messages,
                    members: table.map_or(0, |m| m.len()),
                    online,
                    pending: c.pending(),
                    current: current == Some(c.id),
                }
            })
            .collect();
        self.show(&Note::Chats { chats });
    }

    fn history(&mut self, room: RoomId, count: usize) {
        let Some(history) = self.engine.history(&room) else {
            return self.error("not a member of that chat");
        };
        let total = history.len();
        let events = self.engine.page(&room, Anchor::Newest, count);
        let me = self.engine.peer_id();
        let messages = events
            .iter()
            .map(|(e, late)| self.message_view(&room, e, *late, e.id.author == me))
            .collect();
        self.show(&Note::History {
            chat: self.chats.name(&room),
            room: room.to_string(),
            total,
            messages,
        });
    }
}

/// The room an event is about.
fn event_room(event: &AppEvent) -> &RoomId {
    match event {
        AppEvent::RoomJoined { room, .. }
        | AppEvent::RoomLeft { room }
        | AppEvent::Invite { room, .. }
        | AppEvent::Message { room, .. }
        | AppEvent::Member { room, .. }
        | AppEvent::Equivocation { room, .. }
        | AppEvent::Late { room, .. }
        | AppEvent::Reshown { room }
        | AppEvent::CaughtUp { room, .. } => room,
    }
}

/// How long to sleep until the engine's deadline (a day when it has none:
/// the branch is disabled then anyway).
fn delay_until(deadline: Option<UnixMillis>) -> Duration {
    match deadline {
        Some(t) => Duration::from_millis(t.saturating_sub(now_ms())),
        None => Duration::from_secs(86_400),
    }
}

/// This node's addresses to advertise: the bound address, unless it is the
/// unspecified address (then peers learn it from signaling and traffic).
pub fn advertised(local: SocketAddr) -> Vec<SocketAddr> {
    if local.ip().is_unspecified() {
        Vec::new()
    } else {
        vec![local]
    }
}
