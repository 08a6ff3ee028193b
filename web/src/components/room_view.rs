use p2pchat_core::PeerId;
use yew::prelude::*;

use super::composer::Composer;
use super::timeline::Timeline;
use crate::app::Commands;
use crate::state::RoomItem;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub room: RoomItem,
    pub me: PeerId,
    pub commands: Commands,
}

/// The open room: its name and Chat ID, the timeline, the composer.
#[function_component(RoomView)]
pub fn room_view(props: &Props) -> Html {
    let room = &props.room.chat;
    let copy = {
        let chat_id = room.chat_id.clone();
        let commands = props.commands.clone();
        Callback::from(move |_| {
            let Some(window) = web_sys::window() else {
                return;
            };
            // The Clipboard API exists only in secure contexts (localhost
            // counts); say so rather than fail silently.
            let clipboard = window.navigator().clipboard();
            if clipboard.is_undefined() {
                commands.error(
                    "the clipboard is not available here; select the Chat ID and copy it".into(),
                );
                return;
            }
            let _ = clipboard.write_text(&chat_id);
        })
    };
    // Leaving erases the chat here: the Leave button only asks; the
    // question names the chat it is about, so switching chats drops it.
    let confirming = use_state(|| None::<p2pchat_core::RoomId>);
    let asking = *confirming == Some(room.id);
    let ask = {
        let confirming = confirming.clone();
        let id = room.id;
        Callback::from(move |_| confirming.set(Some(id)))
    };
    let stay = {
        let confirming = confirming.clone();
        Callback::from(move |_| confirming.set(None))
    };
    let leave = {
        let commands = props.commands.clone();
        let id = room.id;
        Callback::from(move |_| {
            confirming.set(None);
            commands.leave(id);
        })
    };
    html! {
        <main class="room">
            <div class="room-header">
                <h2 id="room-name">{ format!("# {}", room.name) }</h2>
                <div class="chat-id-row">
                    <code id="chat-id" class="chat-id" title="Whoever has this Chat ID can read and write in this chat">{ &room.chat_id }</code>
                    <button id="copy-chat-id" onclick={copy}>{ "Copy Chat ID" }</button>
                    <button id="leave-chat" class="secondary" onclick={ask} disabled={asking}>{ "Leave" }</button>
                </div>
                if asking {
                    <div id="confirm-leave" class="confirm" role="alertdialog" aria-labelledby="confirm-leave-text">
                        <p id="confirm-leave-text">
                            { format!("Leave # {}? Its messages and its Chat ID are erased from this browser for good; the other members keep theirs.", room.name) }
                        </p>
                        <button id="confirm-leave-yes" class="danger" onclick={leave}>{ "Leave and erase" }</button>
                        <button id="confirm-leave-no" class="secondary" onclick={stay}>{ "Stay" }</button>
                    </div>
                }
            </div>
            <Timeline room={props.room.clone()} me={props.me} commands={props.commands.clone()} />
            <Composer room={room.id} commands={props.commands.clone()} />
        </main>
    }
}
