//! Real nodes chatting on loopback: a signaling server and several
//! `p2pchat-node` processes driven through `--json`, with real failures —
//! SIGKILL, restarts from the data directory, the signaling server gone.

use std::time::Duration;

use anyhow::Result;
use p2pchat_tests::chat::{order, texts};
use p2pchat_tests::{ChatNode, Signaling};
use serde_json::Value;
use tempfile::TempDir;

fn node(name: &str, signal: &Signaling) -> Result<(ChatNode, TempDir)> {
    let dir = tempfile::tempdir()?;
    let n = ChatNode::start(name, dir.path(), &[signal.addr], &[])?;
    Ok((n, dir))
}

/// Every node holds the same history, in the same order, with `expected`
/// texts in it (in any order).
fn assert_same_history(nodes: &mut [&mut ChatNode], chat: &str, expected: &[&str]) -> Result<()> {
    let mut histories = Vec::new();
    for n in nodes.iter_mut() {
        histories.push((n.name.clone(), n.wait_history(chat, expected.len())?));
    }
    let (first_name, first) = &histories[0];
    let mut got = texts(first);
    got.sort();
    let mut want: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    assert_eq!(got, want, "{first_name}'s history");
    for (name, h) in &histories[1..] {
        assert_eq!(
            order(h),
            order(first),
            "{name} and {first_name} show {chat} in different orders"
        );
    }
    // The order is causal and by Lamport time.
    let lamports: Vec<u64> = first.iter().filter_map(|m| m["lamport"].as_u64()).collect();
    assert!(lamports.windows(2).all(|w| w[0] <= w[1]), "{lamports:?}");
    Ok(())
}

#[test]
fn three_nodes_chat_and_show_the_same_order() -> Result<()> {
    let signal = Signaling::start()?;
    let (mut alice, _a) = node("alice", &signal)?;
    let (mut bob, _b) = node("bob", &signal)?;
    let (mut carol, _c) = node("carol", &signal)?;

    let chat_id = alice.create_chat("general")?;
    assert!(chat_id.starts_with("p2pchat:"), "{chat_id}");
    bob.join_chat(&chat_id)?;
    carol.join_chat(&chat_id)?;
    alice.expect_online(&[&bob.peer, &carol.peer])?;

    alice.say("general", "hello from alice")?;
    bob.expect_message("hello from alice")?;
    carol.expect_message("hello from alice")?;
    bob.say("general", "bob here")?;
    alice.expect_message("bob here")?;
    carol.say("general", "and carol")?;
    alice.expect_message("and carol")?;
    bob.expect_message("and carol")?;

    // Concurrent writes: no one waits for the others.
    for i in 0..5 {
        alice.send(&format!("/send_chat general a{i}"))?;
        bob.send(&format!("/send_chat general b{i}"))?;
        carol.send(&format!("/send_chat general c{i}"))?;
    }
    // A line without a slash goes to the current chat.
    bob.send("plain line from bob")?;

    let mut expected = vec![
        "hello from alice",
        "bob here",
        "and carol",
        "plain line from bob",
    ];
    let concurrent: Vec<String> = (0..5)
        .flat_map(|i| [format!("a{i}"), format!("b{i}"), format!("c{i}")])
        .collect();
    expected.extend(concurrent.iter().map(String::as_str));
    assert_same_history(
        &mut [&mut alice, &mut bob, &mut carol],
        "general",
        &expected,
    )?;

    // The author's name travels with each message.
    let h = carol.history("general")?;
    let first = &h[0];
    assert_eq!(first["name"], "alice");
    assert_eq!(first["author"], alice.peer.as_str());

    alice.quit()?;
    bob.quit()?;
    carol.quit()?;
    Ok(())
}

#[test]
fn the_chat_survives_its_creator_killed_and_a_newcomer_gets_everything() -> Result<()> {
    let signal = Signaling::start()?;
    let (mut alice, _a) = node("alice", &signal)?;
    let (mut bob, _b) = node("bob", &signal)?;
    let (mut carol, _c) = node("carol", &signal)?;

    let chat_id = alice.create_chat("team")?;
    bob.join_chat(&chat_id)?;
    carol.join_chat(&chat_id)?;
    alice.expect_online(&[&bob.peer, &carol.peer])?;
    alice.say("team", "one")?;
    bob.say("team", "two")?;
    carol.say("team", "three")?;
    alice.wait_history("team", 3)?;
    bob.wait_history("team", 3)?;
    carol.wait_history("team", 3)?;

    alice.kill()?;

    bob.say("team", "alice is gone")?;
    carol.expect_message("alice is gone")?;
    carol.say("team", "we carry on")?;
    bob.expect_message("we carry on")?;

    // The original Chat ID's bootstrap address is alice's, who is dead; the
    // signaling server brings dave to bob and carol.
    let (mut dave, _d) = node("dave", &signal)?;
    dave.join_chat(&chat_id)?;
    let expected = ["one", "two", "three", "alice is gone", "we carry on"];
    assert_same_history(&mut [&mut dave, &mut bob, &mut carol], "team", &expected)?;
    dave.say("team", "hi, I'm new")?;
    bob.expect_message("hi, I'm new")?;
    carol.expect_message("hi, I'm new")?;
    Ok(())
}

/// A node that keeps only 4 messages of a chat in memory shows, after a
/// restart, the whole history read back from its store, in order, and
/// serves all of it to a newcomer.
#[test]
fn a_long_history_lives_on_disk_and_is_served_from_it() -> Result<()> {
    let signal = Signaling::start()?;
    let window = ["--history-window", "4"];
    let alice_dir = tempfile::tempdir()?;
    let mut alice = ChatNode::start("alice", alice_dir.path(), &[signal.addr], &window)?;
    let chat_id = alice.create_chat("log")?;
    let texts: Vec<String> = (1..=30).map(|i| format!("entry {i}")).collect();
    for t in &texts {
        alice.say("log", t)?;
    }
    let before = alice.wait_history("log", 30)?;
    alice.quit()?;
    // Rows as an older version stored them, without the time floor each
    // event was shown with (and without a checkpoint: so the restart reads
    // every event), the restart puts it back.
    let db = alice_dir.path().join("p2pchat.sqlite3");
    assert_eq!(checkpoints(&db)?, 1, "a clean stop writes a checkpoint");
    let floors = stored_floors(&db)?;
    assert_eq!(
        floors.iter().filter(|f| f.is_some()).count(),
        29,
        "{floors:?}"
    );
    rusqlite::Connection::open(&db)?.execute_batch(
        "UPDATE events SET event = json_remove(event, '$.floor'); DELETE FROM checkpoints;",
    )?;
    assert!(stored_floors(&db)?.iter().all(Option::is_none));

    let mut alice = ChatNode::start("alice", alice_dir.path(), &[signal.addr], &window)?;
    alice.quit()?;
    assert_eq!(stored_floors(&db)?, floors, "floors written back");
    // The next start takes the checkpoint this one wrote, and reads no
    // event before it.
    assert_eq!(checkpoints(&db)?, 1);

    let mut alice = ChatNode::start("alice", alice_dir.path(), &[signal.addr], &window)?;
    assert_eq!(alice.ready["messages"], 30, "{}", alice.ready);
    // The same history: order, texts, times and marks (a message written
    // with nobody online was pending; restored, it is not).
    let shown = |h: Vec<Value>| -> Vec<Value> {
        h.into_iter()
            .map(|mut m| {
                m["delivery"] = Value::Null;
                m
            })
            .collect()
    };
    assert_eq!(shown(alice.history("log")?), shown(before));
    let want: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (mut bob, _b) = node("bob", &signal)?;
    bob.join_chat(&chat_id)?;
    assert_same_history(&mut [&mut bob, &mut alice], "log", &want)?;
    alice.say("log", "still writing")?;
    bob.expect_message("still writing")?;
    Ok(())
}

/// How many checkpoints the store holds.
fn checkpoints(db: &std::path::Path) -> Result<i64> {
    let conn = rusqlite::Connection::open(db)?;
    Ok(conn.query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0))?)
}

/// The `floor` of each stored event, in sequence order.
fn stored_floors(db: &std::path::Path) -> Result<Vec<Option<i64>>> {
    let conn = rusqlite::Connection::open(db)?;
    let mut stmt =
        conn.prepare("SELECT json_extract(event, '$.floor') FROM events ORDER BY seq")?;
    let floors = stmt
        .query_map([], |r| r.get::<_, Option<i64>>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(floors)
}

#[test]
fn a_restarted_node_keeps_its_history_and_catches_up() -> Result<()> {
    let signal = Signaling::start()?;
    let (mut alice, _a) = node("alice", &signal)?;
    let bob_dir = tempfile::tempdir()?;
    let mut bob = ChatNode::start("bob", bob_dir.path(), &[signal.addr], &[])?;
    let bob_peer = bob.peer.clone();

    let chat_id = alice.create_chat("notes")?;
    bob.join_chat(&chat_id)?;
    alice.expect_online(&[&bob_peer])?;
    alice.say("notes", "before 1")?;
    bob.say("notes", "before 2")?;
    bob.wait_history("notes", 2)?;
    bob.quit()?;

    alice.say("notes", "while bob was away 1")?;
    alice.say("notes", "while bob was away 2")?;

    let mut bob = ChatNode::start("bob", bob_dir.path(), &[signal.addr], &[])?;
    assert_eq!(bob.peer, bob_peer, "the identity is kept");
    assert_eq!(bob.ready["chats"], 1);
    assert_eq!(bob.ready["messages"], 2);
    let restored = bob.event("chat_restored", |v| v["event"] == "chat_restored")?;
    assert_eq!(restored["chat"], "notes");
    assert_eq!(restored["messages"], 2);
    bob.expect_message("while bob was away 2")?;
    assert_same_history(
        &mut [&mut alice, &mut bob],
        "notes",
        &[
            "before 1",
            "before 2",
            "while bob was away 1",
            "while bob was away 2",
        ],
    )?;
    // And it can write again, with its sequence numbers continuing.
    let v = bob.say("notes", "back")?;
    assert_eq!(v["seq"], 2);
    alice.expect_message("back")?;

    // Shown as sent means stored: killed the instant it is shown, bob still
    // has it when he comes back.
    bob.send("/send_chat notes last words")?;
    bob.event("own message", |v| {
        v["event"] == "message" && v["text"] == "last words"
    })?;
    bob.kill()?;
    let mut bob = ChatNode::start("bob", bob_dir.path(), &[signal.addr], &[])?;
    assert_eq!(bob.ready["messages"], 6, "{}", bob.ready);
    let h = bob.history("notes")?;
    assert_eq!(
        h.last().map(|m| m["text"].clone()),
        Some("last words".into())
    );

    // A second node cannot use the same data directory at the same time.
    let err = ChatNode::start("bob", bob_dir.path(), &[signal.addr], &[])
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(err.contains("in use"), "{err}");
    Ok(())
}

#[test]
fn members_keep_chatting_when_the_signaling_server_dies() -> Result<()> {
    let mut signal = Signaling::start()?;
    let (mut alice, _a) = node("alice", &signal)?;
    let (mut bob, _b) = node("bob", &signal)?;
    let chat_id = alice.create_chat("ops")?;
    bob.join_chat(&chat_id)?;
    alice.expect_online(&[&bob.peer])?;
    alice.say("ops", "server up")?;
    bob.expect_message("server up")?;

    signal.process.terminate()?;
    signal.process.wait_exit(Duration::from_secs(30))?;

    alice.say("ops", "server down, still here")?;
    bob.expect_message("server down, still here")?;
    bob.say("ops", "me too")?;
    alice.expect_message("me too")?;
    assert_same_history(
        &mut [&mut alice, &mut bob],
        "ops",
        &["server up", "server down, still here", "me too"],
    )?;
    Ok(())
}

#[test]
fn sixteen_kib_arrive_whole_and_more_is_refused() -> Result<()> {
    let signal = Signaling::start()?;
    let (mut alice, _a) = node("alice", &signal)?;
    let (mut bob, _b) = node("bob", &signal)?;
    let chat_id = alice.create_chat("big")?;
    bob.join_chat(&chat_id)?;
    alice.expect_online(&[&bob.peer])?;

    let text: String = (0..16_384u32)
        .map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap_or(0)))
        .collect();
    alice.say("big", &text)?;
    let got = bob.expect_message(&text)?;
    assert_eq!(got["text"].as_str().map(str::len), Some(16_384));

    let too_long = format!("{text}x");
    alice.send(&format!("/send_chat big {too_long}"))?;
    let err = alice.error()?;
    assert!(err.contains("16384") && err.contains("16 KiB"), "{err}");
    assert_eq!(alice.history("big")?.len(), 1, "nothing stored");
    Ok(())
}

#[test]
fn bad_commands_get_clear_errors() -> Result<()> {
    let signal = Signaling::start()?;
    let (mut alice, _a) = node("alice", &signal)?;
    let cases: &[(&str, &str)] = &[
        ("/nope", "unknown command /nope"),
        ("/join_chat not-a-chat-id", "not a valid Chat ID"),
        ("/join_chat", "usage: /join_chat"),
        ("/create_chat", "usage: /create_chat"),
        ("/create_chat two words", "no spaces"),
        ("/send_chat nowhere hello", "no chat \"nowhere\""),
        ("hello", "no current chat"),
        ("/history nowhere", "no chat"),
        ("/leave nowhere", "no chat"),
    ];
    for (line, want) in cases {
        alice.send(line)?;
        let err = alice.error()?;
        assert!(err.contains(want), "{line:?} gave {err:?}, wanted {want:?}");
    }

    // A mistyped Chat ID is caught by its checksum.
    let id = alice.create_chat("x")?;
    let mut chars: Vec<char> = id.chars().collect();
    let i = chars.len() - 3;
    chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
    let typo: String = chars.into_iter().collect();
    alice.send(&format!("/join_chat {typo}"))?;
    let err = alice.error()?;
    assert!(err.contains("not a valid Chat ID"), "{err}");
    alice.send(&format!("/join_chat {id}"))?;
    let err = alice.error()?;
    assert!(err.contains("already a member"), "{err}");

    // Two chats with one name: the name is ambiguous, a Chat ID prefix is not.
    let other = alice.create_chat("x")?;
    alice.send("/send_chat x hi")?;
    let err = alice.error()?;
    assert!(err.contains("could be any of"), "{err}");
    let prefix: String = other.chars().take(20).collect();
    let v = alice.say(&prefix, "hi")?;
    alice.send(&format!("/history {prefix}"))?;
    let h = alice.event("history", |v| v["event"] == "history")?;
    assert_eq!(h["room"], v["room"], "the prefix names the second chat");
    assert_eq!(h["total"], 1);

    // Oversized and control-character input is refused, not sent.
    alice.send(&format!("/send_chat {prefix} \u{7}bell"))?;
    let err = alice.error()?;
    assert!(err.contains("control"), "{err}");
    alice.quit()?;
    Ok(())
}

#[test]
fn chats_invite_peers_and_leave() -> Result<()> {
    let signal = Signaling::start()?;
    let (mut alice, _a) = node("alice", &signal)?;
    let (mut bob, _b) = node("bob", &signal)?;
    let chat_id = alice.create_chat("room1")?;
    bob.join_chat(&chat_id)?;
    alice.expect_online(&[&bob.peer])?;

    alice.send("/chats")?;
    let v = alice.event("chats", |v| v["event"] == "chats")?;
    let chats = v["chats"].as_array().cloned().unwrap_or_default();
    assert_eq!(chats.len(), 1);
    assert_eq!(chats[0]["chat"], "room1");
    assert_eq!(chats[0]["current"], true);

    alice.send("/invite room1")?;
    let v = alice.event("invite", |v| v["event"] == "invite")?;
    let invite = v["chat_id"].as_str().unwrap_or_default().to_owned();
    assert!(invite.starts_with("p2pchat:"));

    alice.send("/peers room1")?;
    let v = alice.event("peers", |v| v["event"] == "peers")?;
    let members: Vec<Value> = v["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 1, "{v}");
    assert_eq!(members[0]["name"], "bob");
    assert_eq!(members[0]["status"], "online");

    alice.say("room1", "words-only-members-may-read")?;
    bob.expect_message("words-only-members-may-read")?;

    // /leave asks first; anything but yes keeps the chat.
    bob.send("/leave room1")?;
    bob.event("confirm", |v| {
        v["event"] == "confirm_leave" && v["chat"] == "room1"
    })?;
    bob.send("no")?;
    bob.event("cancelled", |v| v["event"] == "leave_cancelled")?;
    bob.send("/chats")?;
    let v = bob.event("chats", |v| v["event"] == "chats")?;
    assert_eq!(v["chats"].as_array().map(Vec::len), Some(1), "{v}");

    // bob leaves: alice sees him go offline at once (he said goodbye).
    bob.send("/leave room1")?;
    bob.event("confirm", |v| v["event"] == "confirm_leave")?;
    bob.send("yes")?;
    bob.event("chat_left", |v| v["event"] == "chat_left")?;
    // Nothing of the chat can be read back from bob's files: not the
    // Chat ID (the key), not a message, not a member's name.
    for needle in [chat_id.as_str(), "words-only-members-may-read", "alice"] {
        for entry in std::fs::read_dir(&bob.data_dir)? {
            let path = entry?.path();
            let bytes = std::fs::read(&path)?;
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} is still in {}",
                path.display()
            );
        }
    }
    alice.event("bob offline", |v| {
        v["event"] == "member" && v["name"] == "bob" && v["to"] == "offline"
    })?;
    bob.send("/chats")?;
    let v = bob.event("chats", |v| v["event"] == "chats")?;
    assert_eq!(v["chats"].as_array().map(Vec::len), Some(0));
    Ok(())
}
