//! The engine task: one loop that feeds the protocol engine datagrams, timer
//! ticks and the user's commands, and after every input drains its outputs
//! in the order that keeps promises — records to the store first, then
//! datagrams to the network, then notes to the user. So a message is never
//! shown as sent, nor sent, before it is stored.
//!
//! The loop sleeps until the next of: a datagram, a line from the user, the
//! engine's next deadline, or a stop request. Nothing polls, so an idle node
//! uses no CPU between heartbeats.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use p2pchat_core::history::Event;
use p2pchat_core::{AppEvent, ChatId, Node, PeerId, RoomId, UnixMillis};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::chats::Chats;
use crate::command::{Command, HELP};
use crate::repl::Input;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::ui::{ChatView, MessageView, Note, Output, PeerView};

/// Largest datagram read from the socket (the engine drops oversized ones
/// and counts them).
const RECV_BUFFER: usize = 65_536;
/// Most datagrams taken in before the outputs are drained (and stored in
/// one transaction).
const BATCH: usize = 256;
/// Names remembered per chat to tell same-named authors apart.
const MAX_NAMES_PER_CHAT: usize = 4_096;

/// The current time as the engine wants it.
pub fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether the loop goes on.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Quit,
}

/// The engine, the store and the socket, driven together.
pub struct Driver {
    engine: Node,
    store: Store,
    socket: Arc<UdpSocket>,
    out: Output,
    chats: Chats,
    /// Per chat: display name → peers that used it.
    names: HashMap<RoomId, HashMap<String, BTreeSet<PeerId>>>,
    /// Per chat: history length at the last "caught up" shown.
    caught_up_shown: HashMap<RoomId, usize>,
    restoring: bool,
    send_failures: u64,
}

impl Driver {
    /// Ties the parts together. `engine` may hold restored rooms: their
    /// notes are shown as "rejoined" by the first [`Driver::run`] step.
    pub fn new(engine: Node, store: Store, socket: UdpSocket, out: Output) -> Self {
        Driver {
            engine,
            store,
            socket: Arc::new(socket),
            out,
            chats: Chats::default(),
            names: HashMap::new(),
            caught_up_shown: HashMap::new(),
            restoring: true,
            send_failures: 0,
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
        mut lines: mpsc::Receiver<Input>,
        shutdown: &mut Shutdown,
    ) -> Result<()> {
        self.flush().await?;
        self.restoring = false;
        let socket = Arc::clone(&self.socket);
        let mut buf = vec![0u8; RECV_BUFFER];
        loop {
            self.flush().await?;
            let deadline = self.engine.poll_timeout();
            let sleep = tokio::time::sleep(delay_until(deadline));
            tokio::select! {
                r = shutdown.requested() => {
                    r?;
                    break;
                }
                input = lines.recv() => {
                    // Lines already typed (or piped) are taken together, so
                    // a burst is stored in one transaction.
                    let mut next = input;
                    let mut taken = 0;
                    let stop = loop {
                        match next {
                            Some(Input::Line(line)) => {
                                if self.command(&line) == Flow::Quit {
                                    break true;
                                }
                                taken += 1;
                                if taken >= BATCH {
                                    break false;
                                }
                                match lines.try_recv() {
                                    Ok(more) => next = Some(more),
                                    Err(_) => break false,
                                }
                            }
                            Some(Input::End) | None => break true,
                        }
                    };
                    if stop {
                        break;
                    }
                }
                r = socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let now = now_ms();
                        let bytes = buf.get(..n).unwrap_or_default();
                        self.engine.handle_datagram(now, from, bytes);
                        // Take what else has arrived before flushing, so a
                        // burst (a catch-up) is stored in one transaction
                        // instead of one per datagram.
                        for _ in 1..BATCH {
                            let Ok((n, from)) = socket.try_recv_from(&mut buf) else {
                                break;
                            };
                            let bytes = buf.get(..n).unwrap_or_default();
                            self.engine.handle_datagram(now, from, bytes);
                        }
                    }
                    Err(e) => {
                        // Transient (an ICMP error surfacing, say); never
                        // let a failing socket spin the loop.
                        tracing::debug!("udp receive: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                () = sleep, if deadline.is_some() => {
                    self.engine.handle_timeout(now_ms());
                }
            }
        }
        self.engine.shutdown(now_ms());
        self.flush().await?;
        let c = self.engine.counters();
        tracing::info!(
            datagrams = c.datagrams,
            dropped = c.dropped(),
            send_failures = self.send_failures,
            "engine stopped"
        );
        Ok(())
    }

    /// Records to the store, datagrams to the network, notes to the user.
    async fn flush(&mut self) -> Result<()> {
        let mut batch = Vec::new();
        while let Some(record) = self.engine.poll_record() {
            batch.push(record);
        }
        if !batch.is_empty() {
            let store = &mut self.store;
            tokio::task::block_in_place(|| store.apply(&batch)).context(
                "cannot write to the store; stopping so that nothing unsaved is shown or sent",
            )?;
        }
        while let Some(t) = self.engine.poll_transmit() {
            if let Err(e) = self.socket.send_to(&t.bytes, t.to).await {
                self.send_failures += 1;
                tracing::debug!(to = %t.to, "udp send: {e}");
            }
        }
        while let Some(event) = self.engine.poll_event() {
            self.event(event);
        }
        Ok(())
    }

    fn chat_name(&self, room: &RoomId) -> String {
        self.chats
            .name(room)
            .map_or_else(|| room.to_string(), str::to_owned)
    }

    fn event(&mut self, event: AppEvent) {
        match event {
            AppEvent::RoomJoined {
                room,
                name,
                chat_id,
                created,
            } => {
                let chat = name.as_str().to_owned();
                self.chats.add(room, &chat, &chat_id);
                self.note_name(room, self.engine.name().to_owned(), self.engine.peer_id());
                let room_hex = room.to_string();
                let note = if self.restoring {
                    let messages = self.engine.history(&room).map_or(0, |h| h.len());
                    let authors: Vec<(String, PeerId)> = self
                        .engine
                        .history(&room)
                        .into_iter()
                        .flat_map(|h| h.iter())
                        .map(|e| (e.name.clone(), e.id.author))
                        .collect();
                    for (n, p) in authors {
                        self.note_name(room, n, p);
                    }
                    Note::ChatRestored {
                        chat,
                        room: room_hex,
                        chat_id,
                        messages,
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
            AppEvent::RoomLeft { room } => {
                let chat = self.chat_name(&room);
                self.chats.remove(&room);
                self.names.remove(&room);
                self.caught_up_shown.remove(&room);
                self.show(&Note::ChatLeft {
                    chat,
                    room: room.to_string(),
                });
            }
            AppEvent::Message {
                room,
                event,
                late,
                own,
            } => {
                self.note_name(room, event.name.clone(), event.id.author);
                let view = self.message_view(&room, &event, late, own);
                self.show(&Note::Message(view));
            }
            AppEvent::Member { room, change } => {
                if let Some(name) = &change.name {
                    self.note_name(room, name.clone(), change.peer);
                }
                self.show(&Note::Member {
                    chat: self.chat_name(&room),
                    room: room.to_string(),
                    peer: change.peer.to_string(),
                    name: change.name,
                    from: change.from,
                    to: change.to,
                });
            }
            AppEvent::CaughtUp { room, events } => {
                // Shown once per new state, not at every repaired gap.
                if self.caught_up_shown.get(&room) != Some(&events) {
                    self.caught_up_shown.insert(room, events);
                    self.show(&Note::CaughtUp {
                        chat: self.chat_name(&room),
                        room: room.to_string(),
                        messages: events,
                    });
                }
            }
        }
    }

    fn note_name(&mut self, room: RoomId, name: String, peer: PeerId) {
        let names = self.names.entry(room).or_default();
        if names.len() >= MAX_NAMES_PER_CHAT && !names.contains_key(&name) {
            return;
        }
        let peers = names.entry(name).or_default();
        if peers.len() < MAX_NAMES_PER_CHAT {
            peers.insert(peer);
        }
    }

    /// `alice`, or `alice#1a2b3c4d` when another peer in the chat is also
    /// called alice.
    fn shown_name(&self, room: &RoomId, name: &str, peer: &PeerId) -> String {
        let clash = self
            .names
            .get(room)
            .and_then(|n| n.get(name))
            .is_some_and(|peers| peers.iter().any(|p| p != peer));
        if clash {
            format!("{name}#{}", peer.short())
        } else {
            name.to_owned()
        }
    }

    fn message_view(&self, room: &RoomId, event: &Event, late: bool, own: bool) -> MessageView {
        let text = event.body.shown().to_owned();
        MessageView {
            chat: self.chat_name(room),
            room: room.to_string(),
            author: event.id.author.to_string(),
            name: event.name.clone(),
            shown_name: self.shown_name(room, &event.name, &event.id.author),
            seq: event.id.seq,
            lamport: event.lamport,
            time: event.time,
            text,
            late,
            own,
        }
    }

    fn error(&mut self, message: impl ToString) {
        self.show(&Note::Error {
            message: message.to_string(),
        });
    }

    fn command(&mut self, line: &str) -> Flow {
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
                Ok(id) => match self.engine.join_room(now, &id) {
                    Ok(room) => {
                        let name = id.name().as_str().to_owned();
                        self.chats.remember(room, &name, &text);
                    }
                    Err(e) => self.error(e),
                },
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
                    if let Some(id) = self.engine.invite(&room) {
                        let chat_id = id.to_string();
                        let chat = self.chat_name(&room);
                        self.chats.remember(room, &chat, &chat_id);
                        self.show(&Note::Invite {
                            chat,
                            room: room.to_string(),
                            chat_id,
                        });
                    }
                }
                Err(e) => self.error(e),
            },
            Command::Leave(chat) => match self.chats.resolve(Some(&chat)) {
                Ok(room) => {
                    if let Err(e) = self.engine.leave_room(now, &room) {
                        self.error(e);
                    }
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
            None => self.engine.rooms().map(|(id, _)| id).collect(),
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
                        })
                        .collect()
                })
                .unwrap_or_default();
            self.show(&Note::Peers {
                chat: self.chat_name(&room),
                room: room.to_string(),
                members,
            });
        }
    }

    fn list_chats(&mut self) {
        let current = self.chats.current();
        let rooms: Vec<RoomId> = self.engine.rooms().map(|(id, _)| id).collect();
        let mut chats = Vec::new();
        for room in rooms {
            let chat = self.chat_name(&room);
            let chat_id = self
                .engine
                .invite(&room)
                .map(|id| id.to_string())
                .unwrap_or_default();
            self.chats.remember(room, &chat, &chat_id);
            let (members, online) = self.engine.members(&room).map_or((0, 0), |m| {
                (
                    m.len(),
                    m.iter()
                        .filter(|m| m.status == p2pchat_core::membership::Status::Online)
                        .count(),
                )
            });
            chats.push(ChatView {
                chat,
                room: room.to_string(),
                chat_id,
                messages: self.engine.history(&room).map_or(0, |h| h.len()),
                members,
                online,
                current: current == Some(room),
            });
        }
        self.show(&Note::Chats { chats });
    }

    fn history(&mut self, room: RoomId, count: usize) {
        let Some(history) = self.engine.history(&room) else {
            return self.error("not a member of that chat");
        };
        let total = history.len();
        let mut events: Vec<Arc<Event>> = history.iter().rev().take(count).cloned().collect();
        events.reverse();
        let messages = events
            .iter()
            .map(|e| self.message_view(&room, e, false, e.id.author == self.engine.peer_id()))
            .collect();
        self.show(&Note::History {
            chat: self.chat_name(&room),
            room: room.to_string(),
            total,
            messages,
        });
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
