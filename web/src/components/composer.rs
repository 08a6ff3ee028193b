use p2pchat_core::RoomId;
use web_sys::HtmlTextAreaElement;
use yew::prelude::*;

use crate::app::Commands;
use crate::state::{byte_counter, check_draft};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub room: RoomId,
    pub commands: Commands,
}

/// Where the user writes. Enter sends, Shift+Enter starts a new line; the
/// 16 KiB limit is shown and enforced before anything is sent.
#[function_component(Composer)]
pub fn composer(props: &Props) -> Html {
    let draft = use_state(String::new);
    let check = check_draft(&draft);
    let send = {
        let draft = draft.clone();
        let commands = props.commands.clone();
        let room = props.room;
        move || {
            let text = (*draft).clone();
            if !check_draft(&text).sendable {
                return;
            }
            if commands.send(room, text) {
                draft.set(String::new());
            }
        }
    };
    let oninput = {
        let draft = draft.clone();
        Callback::from(move |e: InputEvent| {
            if let Some(el) = e.target_dyn_into::<HtmlTextAreaElement>() {
                draft.set(el.value());
            }
        })
    };
    let onkeydown = {
        let send = send.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Enter" && !e.shift_key() {
                e.prevent_default();
                send();
            }
        })
    };
    let onclick = Callback::from(move |_| send());
    html! {
        <div class="composer">
            <textarea id="composer" rows="3" placeholder="Write a message (Enter sends, Shift+Enter for a new line)"
                      value={(*draft).clone()} {oninput} {onkeydown} />
            <div class="composer-bar">
                <span id="composer-count" class={classes!("count", check.problem.is_some().then_some("over"))}>
                    { byte_counter(check.bytes) }
                </span>
                if let Some(problem) = &check.problem {
                    <span class="composer-problem">{ problem }</span>
                }
                <button id="send" disabled={!check.sendable} {onclick}>{ "Send" }</button>
            </div>
        </div>
    }
}
