use yew::prelude::*;

use crate::state::RoomItem;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub room: RoomItem,
}

/// The room's other members with their status.
#[function_component(MemberList)]
pub fn member_list(props: &Props) -> Html {
    let room = &props.room.chat;
    html! {
        <aside class="members">
            <h2>{ format!("Members — {} online", room.online()) }</h2>
            <ul id="members">
                { for room.members.iter().map(|(peer, m)| {
                    let shown = room.member_name(peer);
                    let equivocated = room.equivocators.get(peer).copied();
                    html! {
                        <li class={classes!("member", m.status.as_str())} key={peer.to_string()}
                            data-status={m.status.as_str()} title={peer.to_string()}
                            data-equivocated={equivocated.is_some().to_string()}>
                            <span class="dot"></span>
                            <span class="name">{ shown }</span>
                            <span class="member-status">{ m.status.as_str() }</span>
                            if let Some(seq) = equivocated {
                                <span class="equivocator-mark" title={format!("Signed two different messages as its message {seq} and showed them to different members")}>{ "⚠ equivocated" }</span>
                            }
                        </li>
                    }
                }) }
            </ul>
        </aside>
    }
}
