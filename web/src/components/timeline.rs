use p2pchat_core::PeerId;
use yew::prelude::*;

use p2pchat_core::chats::Delivery;

use crate::state::RoomItem;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub room: RoomItem,
    pub me: PeerId,
}

/// `ms` since the Unix epoch as a date of the browser's, if it is one.
fn date(ms: u64) -> Option<js_sys::Date> {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(ms as f64));
    (!date.get_time().is_nan()).then_some(date)
}

/// `HH:MM:SS` in the browser's local time.
fn clock(ms: u64) -> String {
    date(ms).map_or_else(
        || "??:??:??".into(),
        |d| {
            format!(
                "{:02}:{:02}:{:02}",
                d.get_hours(),
                d.get_minutes(),
                d.get_seconds()
            )
        },
    )
}

/// A date and time for people, in the browser's time zone.
fn date_and_clock(ms: u64) -> String {
    date(ms).map_or_else(
        || "an impossible time".into(),
        |d| {
            format!(
                "{:04}-{:02}-{:02} {}",
                d.get_full_year(),
                d.get_month() + 1,
                d.get_date(),
                clock(ms)
            )
        },
    )
}

/// The room's messages in its canonical order, the same on every member.
#[function_component(Timeline)]
pub fn timeline(props: &Props) -> Html {
    let room = &props.room;
    let end = use_node_ref();
    {
        // Keep the newest message in view.
        let end = end.clone();
        let len = room.messages.len();
        use_effect_with(len, move |_| {
            if let Some(el) = end.cast::<web_sys::Element>() {
                el.scroll_into_view();
            }
        });
    }
    html! {
        <ol id="timeline" class="timeline">
            if room.messages.is_empty() {
                <li class="empty">{ "No messages yet. Say hello!" }</li>
            }
            { for room.messages.iter().map(|m| {
                let own = m.author == props.me;
                let shown = room.chat.shown_name(&m.author, &m.name);
                let delivery = room.chat.delivery(&props.me, &m.id());
                let equivocator = room.chat.equivocates(&m.author);
                html! {
                    <li class={classes!("message", own.then_some("own"), m.late.then_some("late"))}
                        key={format!("{}-{}", m.author, m.seq)}
                        data-author={m.author.to_string()}
                        data-seq={m.seq.to_string()}
                        data-lamport={m.lamport.to_string()}
                        data-status={delivery.code()}
                        data-late={m.late.to_string()}
                        data-backdated={m.claimed_time.is_some().to_string()}
                        data-equivocator={equivocator.to_string()}>
                        <div class="meta">
                            <span class="author" title={m.author.to_string()}>{ shown }</span>
                            <span class="time">{ clock(m.time) }</span>
                            <span class="lamport" title="Lamport clock">{ format!("LC {}", m.lamport) }</span>
                            if m.late {
                                <span class="late-mark" title="Written before newer messages that did not know it: placed where it was written">{ "↑ late" }</span>
                            }
                            if let Some(claimed) = m.claimed_time {
                                <span class="backdated-mark" title={format!("Its author's clock said {}: before the messages it follows", date_and_clock(claimed))}>{ "backdated" }</span>
                            }
                            if equivocator {
                                <span class="equivocator-mark" title="Its author signed two different messages under one number and showed them to different members: others may have been told otherwise">{ "⚠ equivocator" }</span>
                            }
                            if delivery == Delivery::Pending {
                                <span class="delivery pending" title="Saved here; goes out when a member is reachable">{ "pending" }</span>
                            } else if own {
                                <span class="delivery sent">{ "sent" }</span>
                            }
                        </div>
                        <div class="text">{ &m.text }</div>
                    </li>
                }
            }) }
            <li class="end" ref={end}></li>
        </ol>
    }
}
