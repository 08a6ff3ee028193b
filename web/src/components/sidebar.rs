use yew::prelude::*;

use super::on_submit_text;

use crate::app::Commands;
use crate::state::Model;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub model: UseReducerHandle<Model>,
    pub commands: Commands,
}

/// The rooms, with unread counts, and the forms to create and join one.
#[function_component(Sidebar)]
pub fn sidebar(props: &Props) -> Html {
    let create_input = use_node_ref();
    let join_input = use_node_ref();
    let commands = props.commands.clone();
    let on_create = on_submit_text(&create_input, true, move |name| commands.create(name));
    let commands = props.commands.clone();
    let on_join = on_submit_text(&join_input, true, move |chat_id| commands.join(chat_id));
    let chats = props.model.chats.as_ref();
    let current = chats.and_then(|c| c.current());
    html! {
        <nav class="sidebar">
            <h2>{ "Chats" }</h2>
            <ul id="rooms">
                { for chats.into_iter().flat_map(|c| c.iter()).map(|room| {
                    let id = room.id;
                    let commands = props.commands.clone();
                    let selected = current == Some(id);
                    html! {
                        <li class={classes!("room", selected.then_some("selected"))}
                            key={id.to_string()}
                            data-name={room.name.clone()}
                            onclick={Callback::from(move |_| commands.select(id))}>
                            <span class="room-name">{ format!("# {}", room.name) }</span>
                            if room.unread > 0 {
                                <span class="unread">{ room.unread }</span>
                            }
                        </li>
                    }
                }) }
            </ul>
            <form class="create" onsubmit={on_create}>
                <input id="new-chat-name" ref={create_input} placeholder="new chat name" maxlength="64" />
                <button id="create-chat" type="submit">{ "Create" }</button>
            </form>
            <form class="join" onsubmit={on_join}>
                <input id="join-chat-id" ref={join_input} placeholder="paste a Chat ID" />
                <button id="join-chat" type="submit">{ "Join" }</button>
            </form>
        </nav>
    }
}
