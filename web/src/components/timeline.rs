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
    // Whether the user follows the newest messages: then new ones are
    // brought into view. Only the user stops following, by scrolling up
    // (wheel, keys, touch, the scrollbar); scroll events alone never do,
    // as the page moves the list itself while a long history arrives
    // (rows leave at the top, the browser keeps the rows in view in
    // place), and taking that for the user would leave the view behind,
    // up to the top, where it would load older pages and stop at an old
    // window, with the newest never shown.
    let following = use_mut_ref(|| true);
    // The row to keep in view once an older page is in (it was the first).
    let keep = use_mut_ref(|| None::<String>);
    {
        let (end, following, keep) = (end.clone(), following.clone(), keep.clone());
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
            } else if *following.borrow() && !newer {
                if let Some(el) = end.cast::<web_sys::Element>() {
                    el.scroll_into_view();
                }
            }
        });
    }
    let onscroll = {
        let (list, following) = (list.clone(), following.clone());
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
            if below < 48 && !newer {
                *following.borrow_mut() = true;
            }
            if *following.borrow() {
                return;
            }
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
        let following = following.clone();
        Callback::from(move |_| {
            *following.borrow_mut() = true;
            commands.page(id, Anchor::Newest)
        })
    };
    // What the user does to leave the newest messages.
    let stop_following = {
        let following = following.clone();
        move || *following.borrow_mut() = false
    };
    let onwheel = {
        let stop = stop_following.clone();
        Callback::from(move |e: WheelEvent| {
            if e.delta_y() < 0.0 {
                stop();
            }
        })
    };
    let onkeydown = {
        let stop = stop_following.clone();
        Callback::from(move |e: KeyboardEvent| {
            if matches!(e.key().as_str(), "ArrowUp" | "PageUp" | "Home") {
                stop();
            }
        })
    };
    let ontouchmove = {
        let stop = stop_following.clone();
        Callback::from(move |_: TouchEvent| stop())
    };
    // On the list itself, not a message in it: its scrollbar.
    let onpointerdown = {
        let (stop, list) = (stop_following, list.clone());
        Callback::from(move |e: PointerEvent| {
            let on_list = e
                .target()
                .zip(list.get())
                .is_some_and(|(target, list)| target == list.into());
            if on_list {
                stop();
            }
        })
    };
    // Every row is keyed, the markers too: a list with one unkeyed child
    // is diffed by position, and a window that slid by one message would
    // then replace every row (hundreds of DOM removals per render while a
    // long history arrives).
    let marker = if timeline.older {
        html! { <li class="more" id="older" key="older">{ "Older messages load as you scroll up…" }</li> }
    } else if !timeline.messages.is_empty() {
        html! { <li class="more" id="beginning" key="beginning">{ "The beginning of this chat." }</li> }
    } else {
        html! { <li class="empty" key="empty">{ "No messages yet. Say hello!" }</li> }
    };
    let rows = timeline.messages.iter().map(|m| {
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
    });
    let end_row = html! { <li class="end" key="end" ref={end}></li> };
    let children = std::iter::once(marker)
        .chain(rows)
        .chain(std::iter::once(end_row));
    html! {
        <>
        <ol id="timeline" class="timeline" ref={list} tabindex="0"
            {onscroll} {onwheel} {onkeydown} {ontouchmove} {onpointerdown}
            data-older={timeline.older.to_string()} data-newer={timeline.newer.to_string()}>
            { for children }
        </ol>
        if timeline.newer {
            <button id="jump-newest" class="jump" onclick={newest}>{ "↓ Newest messages" }</button>
        }
        </>
    }
}

#[cfg(all(test, target_arch = "wasm32"))]
mod tests {
    use std::sync::Arc;

    use p2pchat_core::clock::EventId;
    use p2pchat_core::history::{Body, Event};
    use p2pchat_core::{AppEvent, Identity, RoomId, RoomName};
    use wasm_bindgen::JsCast;
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::state::{Action, Model, Timeline as Window};

    #[derive(Properties, PartialEq)]
    struct HarnessProps {
        room: RoomItem,
        me: PeerId,
    }

    /// The timeline as the room view mounts it, with commands that go
    /// nowhere.
    #[function_component(Harness)]
    fn harness(props: &HarnessProps) -> Html {
        let model = use_reducer(Model::default);
        let commands = use_memo((), |_| Commands::detached(model.dispatcher()));
        html! { <Timeline room={props.room.clone()} me={props.me} commands={(*commands).clone()} /> }
    }

    fn message(author: PeerId, seq: u64) -> MessageItem {
        let event = Event {
            id: EventId::new(author, seq),
            lamport: seq,
            deps: Vec::new(),
            time: seq * 1_000,
            name: "alice".into(),
            body: Body::Text {
                text: format!("message {seq}"),
            },
            token: String::new(),
            floor: 0,
            token_len: 0,
            prev: None,
            refs: Vec::new(),
            digest: Default::default(),
        };
        MessageItem::of(&Arc::new(event), false)
    }

    /// A room whose window holds messages `from..=to` of one author, with
    /// older ones before them.
    fn room(me: PeerId, author: PeerId, from: u64, to: u64) -> RoomItem {
        let mut model = Model::default();
        model.apply(Action::Profile {
            name: "me".into(),
            peer: me,
        });
        model.apply(Action::Engine(AppEvent::RoomJoined {
            room: RoomId::from_bytes([7; 16]),
            name: RoomName::new("general").expect("a valid name"),
            chat_id: "p2pchat:general".into(),
            created: false,
            restored: false,
            joined_with: None,
        }));
        let mut room = model.selected_room().expect("the room joined is shown");
        room.timeline = Window {
            messages: (from..=to).map(|seq| message(author, seq)).collect(),
            older: true,
            newer: false,
        };
        room
    }

    fn row(seq: u64, author: PeerId) -> Option<web_sys::Element> {
        web_sys::window()?
            .document()?
            .get_element_by_id(&format!("m-{author}-{seq}"))
    }

    /// The document and a fresh element in its body to mount on.
    fn mount_point() -> (web_sys::Document, web_sys::Element) {
        let document = web_sys::window()
            .and_then(|w| w.document())
            .expect("a document");
        let root = document.create_element("div").expect("a div");
        document
            .body()
            .expect("a body")
            .append_child(&root)
            .expect("mounted");
        (document, root)
    }

    /// Lets Yew render what was scheduled.
    async fn rendered() {
        gloo_timers::future::TimeoutFuture::new(0).await;
    }

    /// A long history arriving slides the window one message at a time:
    /// the rows still in it must stay the same elements (a text the user
    /// is selecting stays selected, and the page does not rebuild hundreds
    /// of rows for every message).
    #[test]
    async fn rows_stay_the_same_elements_as_the_window_slides() {
        let me = Identity::from_secret_bytes(&[1; 32]).peer_id();
        let author = Identity::from_secret_bytes(&[2; 32]).peer_id();
        let (_, root) = mount_point();
        let mut app = yew::Renderer::<Harness>::with_root_and_props(
            root.clone(),
            HarnessProps {
                room: room(me, author, 1, 300),
                me,
            },
        )
        .render();
        rendered().await;
        let marked = row(150, author).expect("message 150 is shown");
        marked
            .set_attribute("data-probe", "kept")
            .expect("an attribute set");

        // One message more: the first one leaves the window.
        app.update(HarnessProps {
            room: room(me, author, 2, 301),
            me,
        });
        rendered().await;
        assert!(row(1, author).is_none(), "the first message left");
        assert!(row(301, author).is_some(), "the new one is shown");
        let now = row(150, author).expect("message 150 is still shown");
        assert_eq!(
            now.get_attribute("data-probe").as_deref(),
            Some("kept"),
            "message 150's row was rebuilt"
        );
        assert!(now.is_same_node(Some(marked.unchecked_ref())));
        app.destroy();
        root.remove();
    }

    /// While a long history arrives the page moves the list itself (rows
    /// leave at the top, the browser keeps the rows in view in place): a
    /// scroll that the user did not make must not stop the timeline from
    /// following the newest messages (it used to: the view was left
    /// behind, reached the top, loaded older pages, and the newest were
    /// never shown).
    #[test]
    async fn the_page_moving_the_list_does_not_stop_it_following_the_newest() {
        let me = Identity::from_secret_bytes(&[1; 32]).peer_id();
        let author = Identity::from_secret_bytes(&[2; 32]).peer_id();
        let (document, root) = mount_point();
        let props = |from, to| HarnessProps {
            room: room(me, author, from, to),
            me,
        };
        let mut app =
            yew::Renderer::<Harness>::with_root_and_props(root.clone(), props(1, 300)).render();
        rendered().await;
        let list = document
            .get_element_by_id("timeline")
            .expect("the timeline");
        // A list that scrolls, as the page's stylesheet makes it.
        list.set_attribute("style", "display: block; height: 300px; overflow: auto")
            .expect("a style");
        let at_bottom = |list: &web_sys::Element| {
            list.scroll_height() - list.scroll_top() - list.client_height() < 48
        };
        app.update(props(2, 301));
        rendered().await;
        assert!(at_bottom(&list), "the newest are in view");

        // The page moves the list up to its top (not the user).
        list.set_scroll_top(0);
        gloo_timers::future::TimeoutFuture::new(50).await;
        app.update(props(3, 302));
        rendered().await;
        assert!(
            at_bottom(&list),
            "the newest are brought into view again: scroll top {} of {}",
            list.scroll_top(),
            list.scroll_height()
        );
        assert!(row(302, author).is_some());
        app.destroy();
        root.remove();
    }
}
