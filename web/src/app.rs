//! The root component: holds the state and lays out the screen.
//!
//! The state is one [`Model`] in a reducer; the [`Peer`] turns the network,
//! timers and storage into actions on it, and [`Commands`] carry the user's
//! intents back to the peer.

use p2pchat_core::signaling::ServerSpec;
use std::cell::RefCell;
use std::rc::Rc;

use p2pchat_core::history::Anchor;
use p2pchat_core::RoomId;
use yew::prelude::*;

use crate::components::{
    ConnectionBanner, ErrorList, Header, MemberList, Onboarding, OtherTab, RoomView, Sidebar,
    Welcome,
};
use crate::peer::{Endpoints, Peer, PeerHandle};
use crate::state::{relay_url, Action, Model};

impl Reducible for Model {
    type Action = Action;
    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut next = Rc::unwrap_or_clone(self);
        next.apply(action);
        Rc::new(next)
    }
}

/// What the user can ask for, handed to components.
#[derive(Clone)]
pub struct Commands {
    peer: Rc<RefCell<Option<PeerHandle>>>,
    dispatch: UseReducerDispatcher<Model>,
}

impl PartialEq for Commands {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.peer, &other.peer)
    }
}

impl Commands {
    /// Commands with no peer behind them (a component under test).
    #[cfg(test)]
    pub(crate) fn detached(dispatch: UseReducerDispatcher<Model>) -> Commands {
        Commands {
            peer: Rc::new(RefCell::new(None)),
            dispatch,
        }
    }

    fn with_peer<T>(&self, f: impl FnOnce(&mut Peer) -> T) -> Option<T> {
        let handle = self.peer.borrow().clone()?;
        let mut peer = handle.borrow_mut();
        Some(f(&mut peer))
    }

    /// Picks the user's name (first visit).
    pub fn start(&self, name: String) {
        self.with_peer(|p| p.create_profile(&name));
    }

    /// Creates a room.
    pub fn create(&self, name: String) {
        self.with_peer(|p| p.create_room(&name));
    }

    /// Joins a room.
    pub fn join(&self, chat_id: String) {
        self.with_peer(|p| p.join_room(&chat_id));
    }

    /// Sends a message; whether the engine took it.
    pub fn send(&self, room: RoomId, text: String) -> bool {
        self.with_peer(|p| p.send(room, &text)).unwrap_or(false)
    }

    /// Leaves a room.
    pub fn leave(&self, room: RoomId) {
        self.with_peer(|p| p.leave(room));
    }

    /// Loads more of a room's history into its timeline.
    pub fn page(&self, room: RoomId, anchor: Anchor) {
        self.with_peer(|p| p.page(room, anchor));
    }

    /// Shows a room.
    pub fn select(&self, room: RoomId) {
        self.dispatch.dispatch(Action::Select(room));
    }

    /// Runs p2pchat in this tab instead of the other one.
    pub fn take_over(&self) {
        self.with_peer(|p| p.take_over());
    }

    /// Dismisses an error.
    pub fn dismiss(&self, id: u64) {
        self.dispatch.dispatch(Action::Dismiss(id));
    }

    /// Reports an error from the UI itself.
    pub fn error(&self, message: String) {
        self.dispatch.dispatch(Action::Error(message));
    }
}

/// Relay and signaling addresses from the page's URL: `?relay=ws://…` and
/// `?signal=host:port` or `?signal=host:port=KEY` to pin the server's key
/// (repeatable); by default the page's own `/relay` and the local node's
/// default signaling server.
fn endpoints() -> Endpoints {
    let location = web_sys::window().map(|w| w.location());
    let protocol = location
        .as_ref()
        .and_then(|l| l.protocol().ok())
        .unwrap_or_default();
    let host = location
        .as_ref()
        .and_then(|l| l.host().ok())
        .unwrap_or_default();
    let search = location
        .as_ref()
        .and_then(|l| l.search().ok())
        .unwrap_or_default();
    let params = web_sys::UrlSearchParams::new_with_str(&search).ok();
    let relay = params.as_ref().and_then(|p| p.get("relay"));
    let mut signaling: Vec<ServerSpec> = params
        .as_ref()
        .map(|p| {
            p.get_all("signal")
                .iter()
                .filter_map(|v| v.as_string())
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    if signaling.is_empty() {
        signaling.extend("127.0.0.1:5555".parse::<ServerSpec>().ok());
    }
    Endpoints {
        relay_url: relay_url(&protocol, &host, relay.as_deref()),
        signaling,
    }
}

#[function_component(App)]
pub fn app() -> Html {
    let model = use_reducer(Model::default);
    let holder = use_state(|| Rc::new(RefCell::new(None::<PeerHandle>)));
    {
        let dispatcher = model.dispatcher();
        let holder = (*holder).clone();
        use_effect_with((), move |_| {
            let dispatch = Callback::from(move |a: Action| dispatcher.dispatch(a));
            let handle = Peer::start(dispatch, endpoints());
            *holder.borrow_mut() = Some(handle);
            || ()
        });
    }
    let commands = Commands {
        peer: (*holder).clone(),
        dispatch: model.dispatcher(),
    };

    let body = if !model.ready {
        html! { <main class="loading">{ "Loading…" }</main> }
    } else if model.elsewhere {
        html! { <OtherTab commands={commands.clone()} /> }
    } else if model.me.is_none() {
        html! { <Onboarding commands={commands.clone()} /> }
    } else {
        let room = model.selected_room();
        let me = model.me.as_ref().map(|(_, p)| *p);
        html! {
            <div class="layout">
                <Sidebar model={model.clone()} commands={commands.clone()} />
                {
                    match (room.clone(), me) {
                        (Some(room), Some(me)) => html! {
                            <RoomView room={room} me={me} commands={commands.clone()} />
                        },
                        _ => html! { <Welcome /> },
                    }
                }
                {
                    match room {
                        Some(room) => html! { <MemberList room={room} /> },
                        None => html! {},
                    }
                }
            </div>
        }
    };
    html! {
        <div class="app">
            <Header me={model.me.as_ref().map(|(n, _)| n.clone())} />
            <ConnectionBanner status={model.relay_status()} />
            <ErrorList errors={model.errors.clone()} commands={commands.clone()} />
            { body }
        </div>
    }
}
