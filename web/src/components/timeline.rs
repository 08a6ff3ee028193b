use p2pchat_core::history::Anchor;
use p2pchat_core::PeerId;
use yew::prelude::*;

use p2pchat_core::chats::Delivery;

use crate::app::Commands;
use crate::state::{MessageItem, RoomItem};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub room: RoomItem,
    pub me: PeerId,
    pub commands: Commands,
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

/// How close to an end of what is loaded (in pixels) scrolling asks for
/// the next page.
const NEAR: i32 = 300;

/// The element id of a message's row.
fn row_id(m: &MessageItem) -> String {
    format!("m-{}-{}", m.author, m.seq)
}

/// The room's messages in its canonical order, the same on every member: a
/// window of at most [`crate::state::MAX_LOADED`] of them, loaded a page at
/// a time as the user scrolls up (older) or back down (newer), so what is
/// rendered does not grow with the history.
#[function_component(Timeline)]
pub fn timeline(props: &Props) -> Html {
    let room = &props.room;
    let timeline = &room.timeline;
    let list = use_node_ref();
    let end = use_node_ref();
    // Whether the user was at the bottom when last seen scrolling: then new
    // messages keep the newest in view.
    let at_bottom = use_mut_ref(|| true);
    // The row to keep in view once an older page is in (it was the first).
    let keep = use_mut_ref(|| None::<String>);
    {
        let (end, at_bottom, keep) = (end.clone(), at_bottom.clone(), keep.clone());
        let ends = (
            timeline.messages.first().map(MessageItem::order_key),
            timeline.messages.last().map(MessageItem::order_key),
            room.chat.id,
        );
        let newer = timeline.newer;
        use_effect_with(ends, move |_| {
            let kept = keep
                .borrow_mut()
                .take()
                .and_then(|id| web_sys::window()?.document()?.get_element_by_id(&id));
            if let Some(row) = kept {
                row.scroll_into_view_with_bool(true);
            } else if *at_bottom.borrow() && !newer {
                if let Some(el) = end.cast::<web_sys::Element>() {
                    el.scroll_into_view();
                }
            }
        });
    }
    let onscroll = {
        let list = list.clone();
        let commands = props.commands.clone();
        let id = room.chat.id;
        let (older, newer) = (timeline.older, timeline.newer);
        let first = timeline
            .messages
            .first()
            .map(|m| (m.order_key(), row_id(m)));
        let last = timeline.messages.last().map(MessageItem::order_key);
        Callback::from(move |_: Event| {
            let Some(el) = list.cast::<web_sys::Element>() else {
                return;
            };
            let top = el.scroll_top();
            let below = el.scroll_height() - top - el.client_height();
            *at_bottom.borrow_mut() = below < 48 && !newer;
            match (&first, last) {
                (Some((key, row)), _) if older && top < NEAR => {
                    *keep.borrow_mut() = Some(row.clone());
                    commands.page(id, Anchor::Before(*key));
                }
                (_, Some(key)) if newer && below < NEAR => commands.page(id, Anchor::After(key)),
                _ => {}
            }
        })
    };
    let newest = {
        let commands = props.commands.clone();
        let id = room.chat.id;
        Callback::from(move |_| commands.page(id, Anchor::Newest))
    };
    html! {
        <>
        <ol id="timeline" class="timeline" ref={list} {onscroll}
            data-older={timeline.older.to_string()} data-newer={timeline.newer.to_string()}>
            if timeline.older {
                <li class="more" id="older">{ "Older messages load as you scroll up…" }</li>
            } else if !timeline.messages.is_empty() {
                <li class="more" id="beginning">{ "The beginning of this chat." }</li>
            }
            if timeline.messages.is_empty() {
                <li class="empty">{ "No messages yet. Say hello!" }</li>
            }
            { for timeline.messages.iter().map(|m| {
                let own = m.author == props.me;
                let shown = room.chat.shown_name(&m.author, &m.name);
                let delivery = room.chat.delivery(&props.me, &m.id());
                let equivocator = room.chat.equivocates(&m.author);
                html! {
                    <li class={classes!("message", own.then_some("own"), m.late.then_some("late"))}
                        key={row_id(m)}
                        id={row_id(m)}
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
        if timeline.newer {
            <button id="jump-newest" class="jump" onclick={newest}>{ "↓ Newest messages" }</button>
        }
        </>
    }
}
