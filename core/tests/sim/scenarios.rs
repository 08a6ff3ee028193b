//! Scenarios named after the promises p2pchat makes its users. Each runs
//! over many seeds; the seed picks the loss rate (0–30 %) unless the
//! scenario fixes it, and drives every random choice.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use p2pchat_core::clock::EventId;
use p2pchat_core::membership::Status;
use p2pchat_core::RoomId;
use rand_chacha::rand_core::RngCore;

use crate::{for_fewer_seeds, for_seeds, for_seeds_and};
use p2pchat_sim::{Check, NetConfig, Sim};

/// Time to let anti-entropy finish after the action, even at 30 % loss.
const SETTLE_MS: u64 = 45_000;

fn loss_for(seed: u64) -> f64 {
    (seed % 31) as f64 / 100.0
}

fn room_of(sim: &Sim, i: usize) -> RoomId {
    let (room, _) = sim.node(i).rooms().next().expect("node is in a room");
    room
}

/// Node `i` says `n` numbered lines, `gap` ms apart.
fn chatter(sim: &mut Sim, i: usize, room: &RoomId, n: usize, gap: u64) {
    for k in 0..n {
        let text = format!("{} line {k}", sim.nodes[i].name);
        sim.say(i, room, &text);
        sim.run(gap);
    }
}

fn expect(cond: bool, what: &str) -> Check {
    if cond {
        Ok(())
    } else {
        Err(what.to_owned())
    }
}

/// The creator leaves for good (with `/leave` or by crashing); the others keep chatting, and a newcomer
/// with the original Chat ID (whose only bootstrap address is the dead
/// creator) still gets in, through signaling, and receives everything.
fn creator_leaves(seed: u64) -> Check {
    let mut sim = Sim::new(seed, NetConfig::lossy(loss_for(seed)));
    let a = sim.add_node("alice");
    let b = sim.add_node("bob");
    let c = sim.add_node("carol");
    let chat = sim.create(a, "general");
    let room = *chat.room_id();
    sim.join(b, &chat);
    sim.join(c, &chat);
    sim.run(3_000);
    chatter(&mut sim, a, &room, 3, 200);
    chatter(&mut sim, b, &room, 2, 200);
    sim.run(15_000);
    // Half the seeds: the creator leaves politely; the other half: its
    // machine dies.
    if seed % 2 == 0 {
        sim.leave(a, &room);
    } else {
        sim.crash(a);
    }
    chatter(&mut sim, b, &room, 3, 300);
    chatter(&mut sim, c, &room, 3, 300);
    sim.run(2_000);
    let d = sim.add_node("dave");
    sim.join(d, &chat);
    sim.run(SETTLE_MS);
    sim.check(&room, &[b, c, d])?;
    expect(
        sim.node(d).history(&room).map_or(0, |h| h.len()) >= 6,
        "the newcomer received the history",
    )
}

/// Alice creates a room and Bob joins, under the seed's loss; both have
/// had two seconds to find each other.
fn alice_and_bob(seed: u64) -> (Sim, usize, usize, RoomId) {
    let mut sim = Sim::new(seed, NetConfig::lossy(loss_for(seed)));
    let a = sim.add_node("alice");
    let b = sim.add_node("bob");
    let chat = sim.create(a, "general");
    let room = *chat.room_id();
    sim.join(b, &chat);
    sim.run(2_000);
    (sim, a, b, room)
}

/// A late joiner receives the full history from whoever is online.
fn late_joiner(seed: u64) -> Check {
    let (mut sim, a, b, room) = alice_and_bob(seed);
    chatter(&mut sim, a, &room, 20, 100);
    chatter(&mut sim, b, &room, 19, 100);
    // One message at the 16 KiB limit: about 20 fragments, under loss.
    let long = "x".repeat(p2pchat_core::wire::MAX_TEXT_LEN);
    sim.say(b, &room, &long);
    sim.run(5_000);
    // The Chat ID bob shares names bob and alice as bootstrap peers.
    let invite = sim.node(b).invite(&room).expect("bob is in the room");
    let c = sim.add_node("carol");
    sim.join(c, &invite);
    sim.run(SETTLE_MS);
    sim.check(&room, &[a, b, c])?;
    // Bob (a windowed node) kept the window and each author's newest in
    // memory: the rest it read back from its disk to show and to serve.
    expect(
        p2pchat_sim::window_of(b).is_none()
            || sim.beyond_window >= 40 - p2pchat_sim::SIM_WINDOW - 2,
        "bob holds only a window of the history in memory",
    )?;
    expect(
        sim.node(c).history(&room).map_or(0, |h| h.len()) == 40,
        "carol holds all 40 messages",
    )
}

/// A member offline for a while catches up from whoever is online, even
/// when the original writers are gone by then.
fn offline_member_catches_up(seed: u64) -> Check {
    let mut sim = Sim::new(seed, NetConfig::lossy(loss_for(seed)));
    let a = sim.add_node("alice");
    let b = sim.add_node("bob");
    let c = sim.add_node("carol");
    let chat = sim.create(a, "general");
    let room = *chat.room_id();
    sim.join(b, &chat);
    sim.join(c, &chat);
    sim.run(3_000);
    chatter(&mut sim, c, &room, 3, 100);
    sim.run(10_000);
    sim.crash(c);
    chatter(&mut sim, a, &room, 10, 150);
    chatter(&mut sim, b, &room, 10, 150);
    sim.run(15_000);
    // Only bob is online when carol comes back.
    sim.crash(a);
    sim.restart(c);
    sim.run(SETTLE_MS);
    sim.check(&room, &[b, c])?;
    // And alice catches up too when she returns.
    sim.restart(a);
    sim.run(SETTLE_MS);
    sim.check(&room, &[a, b, c])
}

/// A member whose store lost rows still serves the rest of the history;
/// the lost events reach a late joiner from another member.
fn a_store_that_lost_rows(seed: u64) -> Check {
    let (mut sim, a, b, room) = alice_and_bob(seed);
    chatter(&mut sim, a, &room, 10, 100);
    chatter(&mut sim, b, &room, 10, 100);
    sim.run(SETTLE_MS);
    sim.check(&room, &[a, b])?;
    // Alice's disk loses every other message; Bob goes offline.
    let lost: Vec<EventId> = sim
        .node(a)
        .history(&room)
        .map(|h| h.iter().map(|e| e.id).step_by(2).collect())
        .unwrap_or_default();
    for id in &lost {
        expect(sim.lose_event(a, &room, id), "the row was there to lose")?;
    }
    sim.crash(b);
    let invite = sim.node(a).invite(&room).expect("alice is in the room");
    let c = sim.add_node("carol");
    sim.join(c, &invite);
    sim.run(SETTLE_MS);
    let held = |sim: &Sim, i: usize| sim.node(i).history(&room).map_or(0, |h| h.len());
    expect(
        held(&sim, c) < 20,
        "carol cannot have what alice's store lost",
    )?;
    expect(
        sim.node(a).counters().missing_tokens > 0,
        "alice counted the tokens her store did not give back",
    )?;
    // Bob comes back: carol gets the rest from him.
    sim.restart(b);
    sim.run(SETTLE_MS);
    sim.check(&room, &[a, b, c])?;
    expect(held(&sim, c) == 20, "carol holds all 20 messages")
}

/// Three writers at once under 20 % loss: everyone ends with the same
/// history in the same order.
fn three_writers_under_loss(seed: u64) -> Check {
    let mut sim = Sim::new(seed, NetConfig::lossy(0.20));
    let a = sim.add_node("alice");
    let b = sim.add_node("bob");
    let c = sim.add_node("carol");
    let chat = sim.create(a, "general");
    let room = *chat.room_id();
    sim.join(b, &chat);
    sim.join(c, &chat);
    sim.run(3_000);
    for k in 0..30 {
        let who = (sim.rng.next_u32() % 3) as usize;
        sim.say([a, b, c][who], &room, &format!("concurrent {k}"));
        let gap = u64::from(sim.rng.next_u32() % 60);
        sim.run(gap);
    }
    sim.run(SETTLE_MS);
    sim.check(&room, &[a, b, c])?;
    expect(
        sim.node(a).history(&room).map_or(0, |h| h.len()) == 30,
        "all 30 messages everywhere",
    )
}

/// A partition splits the room in two while the signaling server is down;
/// both sides keep chatting; when it heals, everyone converges.
fn partition_heals(seed: u64) -> Check {
    let mut sim = Sim::new(seed, NetConfig::lossy(loss_for(seed)));
    let nodes: Vec<usize> = ["alice", "bob", "carol", "dave"]
        .iter()
        .map(|n| sim.add_node(n))
        .collect();
    let chat = sim.create(nodes[0], "general");
    let room = *chat.room_id();
    for &n in &nodes[1..] {
        sim.join(n, &chat);
    }
    sim.run(10_000);
    sim.signaling_up(false);
    sim.partition(vec![vec![nodes[0], nodes[1]], vec![nodes[2], nodes[3]]]);
    for &n in &nodes {
        chatter(&mut sim, n, &room, 4, 150);
    }
    sim.run(20_000);
    sim.heal();
    sim.run(SETTLE_MS);
    sim.check(&room, &nodes)?;
    expect(
        sim.node(nodes[3]).history(&room).map_or(0, |h| h.len()) == 16,
        "all 16 messages on every side",
    )
}

/// A node restarts from its records: its history is intact, and it
/// catches up what was said while it was down.
fn restart_from_records(seed: u64) -> Check {
    let (mut sim, a, b, room) = alice_and_bob(seed);
    chatter(&mut sim, a, &room, 5, 100);
    chatter(&mut sim, b, &room, 5, 100);
    sim.run(15_000);
    let before = sim.node(b).history(&room).map_or(0, |h| h.len());
    sim.crash(b);
    chatter(&mut sim, a, &room, 5, 100);
    sim.restart(b);
    let restored = sim.node(b).history(&room).map_or(0, |h| h.len());
    expect(restored == before, "the restart restores the whole history")?;
    // Bob keeps a window: he restarted from a checkpoint (and the harness
    // compared him with his events replayed).
    expect(
        p2pchat_sim::window_of(b).is_none() || sim.checkpoints_taken == 1,
        "bob restarted from a checkpoint",
    )?;
    sim.run(SETTLE_MS);
    sim.check(&room, &[a, b])?;
    expect(
        sim.node(b).history(&room).map_or(0, |h| h.len()) == 15,
        "bob caught up to 15 messages",
    )?;
    let _ = room_of(&sim, b);
    Ok(())
}

/// A joiner whose disk is slow (each batch takes 40 ms to store, as
/// IndexedDB or an fsync may) catches up over many rounds, asking for the
/// next round while the last is still being written. Odd seeds kill it in
/// the middle, while a batch is being written and it has delivered events
/// its disk does not hold yet (and its summaries have named them), then
/// restart it from its disk: it still ends with the whole history, and
/// nothing it had stored is lost (checked by the harness at the restart).
fn slow_disk_joiner(seed: u64) -> Check {
    let mut sim = Sim::new(seed, NetConfig::lossy(loss_for(seed)));
    // Many rounds from a short history.
    sim.config.replication.batch = 8;
    let a = sim.add_node("alice");
    let chat = sim.create(a, "general");
    let room = *chat.room_id();
    chatter(&mut sim, a, &room, 60, 10);
    let b = sim.add_node("bob");
    sim.slow_store(b, 40);
    sim.join(b, &chat);
    if seed % 2 == 1 {
        let stored = |sim: &Sim| {
            Ok::<_, std::convert::Infallible>(sim.nodes[b].disk().load_with(false)).map_or(0, |l| {
                l.records
                    .iter()
                    .filter(|r| matches!(r, p2pchat_core::Record::Event { .. }))
                    .count()
            })
        };
        let mut midway = false;
        // Under 30 % loss, finding alice alone can take ten seconds.
        for _ in 0..12_000 {
            sim.run(5);
            let held = sim.node(b).history(&room).map_or(0, |h| h.len());
            if (16..60).contains(&held) && held > stored(&sim) && sim.is_writing(b) {
                midway = true;
                break;
            }
        }
        expect(midway, "bob was caught midway, a batch being written")?;
        sim.crash(b);
        sim.run(500);
        sim.restart(b);
    }
    sim.run(SETTLE_MS);
    sim.check(&room, &[a, b])?;
    expect(
        sim.node(b).history(&room).map_or(0, |h| h.len()) == 60,
        "bob holds all 60 messages",
    )
}

/// A joiner asking for round after round faster than the member it asks
/// may push (its repair budget: here 200 events a second, 16 at once) is
/// paced by that budget, not stalled by it: each answer waits until the
/// budget pays for a whole batch. Answered at once with whatever the
/// budget held, rounds came back empty, the joiner took that for no
/// progress and asked again a second later: 400 events took some 25
/// seconds (of virtual time) instead of about two.
fn paced_catch_up(seed: u64) -> Check {
    const EVENTS: usize = 400;
    const RATE: u64 = 200;
    let net = NetConfig {
        loss: 0.0,
        dup: 0.0,
        min_delay: 1,
        max_delay: 2,
    };
    let mut sim = Sim::new(seed, net);
    sim.config.replication.batch = 16;
    sim.config.replication.burst = 16;
    sim.config.replication.rate = RATE;
    let a = sim.add_node("alice");
    let chat = sim.create(a, "general");
    let room = *chat.room_id();
    // Within the default quota (20 a second).
    chatter(&mut sim, a, &room, EVENTS, 60);
    let b = sim.add_node("bob");
    sim.join(b, &chat);
    let start = sim.now;
    let held = |sim: &Sim| sim.node(b).history(&room).map_or(0, |h| h.len());
    while held(&sim) < EVENTS && sim.now - start < 60_000 {
        sim.run(10);
    }
    let took = sim.now - start;
    // What the budget allows (after the first batch) is 1.9 s; finding
    // alice and proving the path take a few round trips more.
    let allowed = (EVENTS as u64 - 16) * 1_000 / RATE;
    expect(
        held(&sim) == EVENTS && took < allowed + 1_500,
        &format!(
            "bob holds {} of {EVENTS} after {took} ms (the budget allows {allowed} ms)",
            held(&sim)
        ),
    )?;
    sim.check(&room, &[a, b])
}

/// Members find each other through each other: with the signaling server
/// down from the start, every joiner knows only the creator's address (the
/// one in the Chat ID), and still every member ends up seeing every other
/// online, through the member hints inside heartbeats; then a message from
/// the last joiner reaches everyone.
fn members_find_each_other(seed: u64) -> Check {
    const PEERS: usize = 8;
    let mut sim = Sim::new(seed, NetConfig::lossy(loss_for(seed) / 3.0));
    sim.signaling_up(false);
    let nodes: Vec<usize> = (0..PEERS).map(|i| sim.add_node(&format!("p{i}"))).collect();
    let chat = sim.create(nodes[0], "general");
    let room = *chat.room_id();
    for &n in &nodes[1..] {
        sim.join(n, &chat);
        sim.run(50);
    }
    // Eight seconds: a joiner is taken once it answers the member it
    // greeted from that address (path validation), so a joiner that hears
    // nothing back for a while (5 of 5,000 seeds: nothing from the creator
    // for five seconds) is hinted to nobody until then; six seconds were
    // enough when any sealed hello was taken at once.
    sim.run(8_000);
    for &n in &nodes {
        // Live: heard from recently (online), or silent for a moment at
        // this loss rate (suspect); either way found, at a confirmed
        // address.
        let live = sim.node(n).members(&room).map_or(0, |m| {
            m.iter()
                .filter(|m| m.status != Status::Offline && m.addr.is_some())
                .count()
        });
        expect(
            live == PEERS - 1,
            &format!("p{n} found {live} of the {} others", PEERS - 1),
        )?;
    }
    sim.say(nodes[PEERS - 1], &room, "hello, everyone");
    sim.run(5_000);
    sim.check(&room, &nodes)?;
    expect(
        nodes
            .iter()
            .all(|&n| sim.node(n).history(&room).map_or(0, |h| h.len()) == 1),
        "the message reached every member",
    )
}

#[test]
fn the_creator_leaves_and_the_room_goes_on() {
    for_seeds("creator_leaves", creator_leaves);
}

#[test]
fn a_late_joiner_receives_the_full_history() {
    for_seeds("late_joiner", late_joiner);
}

#[test]
fn a_member_offline_for_a_while_catches_up() {
    for_seeds("offline_member_catches_up", offline_member_catches_up);
}

#[test]
fn a_store_that_lost_rows_serves_the_rest_and_others_fill_in() {
    for_seeds("a_store_that_lost_rows", a_store_that_lost_rows);
}

#[test]
fn three_writers_at_once_under_20_percent_loss() {
    for_seeds("three_writers_under_loss", three_writers_under_loss);
}

/// Seeds a 5,000-seed soak found failing at 0d31fa2: the joiner found
/// alice only after ten seconds (heavy loss), when the scenario had
/// stopped looking for the middle of its catch-up.
const SLOW_DISK_JOINER_REGRESSIONS: &[u64] = &[557, 4145, 4239, 4741, 4959];

#[test]
fn a_joiner_with_a_slow_disk_catches_up_even_if_it_dies_midway() {
    for_seeds_and(
        "slow_disk_joiner",
        slow_disk_joiner,
        SLOW_DISK_JOINER_REGRESSIONS,
    );
}

#[test]
fn a_catch_up_faster_than_the_budget_is_paced_not_stalled() {
    for_fewer_seeds("paced_catch_up", 20, paced_catch_up);
}

#[test]
fn a_partition_heals() {
    for_seeds("partition_heals", partition_heals);
}

/// Seeds a 5,000-seed soak found failing at 49fb413, when unanswered
/// addresses were retried at +1 s, +3 s, +6 s (bootstrap) or every 3 s
/// (hinted members): in seven, a joiner's first three hellos were lost and
/// it stayed out of the room past 6 s; in two, two members' probes to each
/// other were lost until then (803, 1672, 1698, 2038, 3594, 3781, 4679,
/// 4958, 4984). And seeds the soaks of this round's path validation found:
/// a probe schedule that doubled from the first try, answers to a
/// member's challenge that were not repeated, and joiners that heard
/// nothing back for five seconds (the rest).
const MEMBERS_FIND_EACH_OTHER_REGRESSIONS: &[u64] = &[
    526, 801, 803, 836, 865, 894, 954, 1015, 1609, 1640, 1672, 1698, 1858, 1909, 1981, 2038, 2153,
    2167, 2476, 2508, 2572, 3005, 3192, 3594, 3781, 3812, 4056, 4242, 4555, 4679, 4958, 4959, 4984,
];

#[test]
fn members_find_each_other_without_the_signaling_server() {
    for_seeds_and(
        "members_find_each_other",
        members_find_each_other,
        MEMBERS_FIND_EACH_OTHER_REGRESSIONS,
    );
}

#[test]
fn a_node_restarts_from_its_records() {
    for_seeds("restart_from_records", restart_from_records);
}

/// Same seed, same trace: the simulator (and so the engine) is
/// deterministic.
#[test]
fn the_same_seed_gives_the_same_trace() {
    let run = |seed: u64| {
        let mut sim = Sim::new(seed, NetConfig::lossy(0.1));
        let a = sim.add_node("alice");
        let b = sim.add_node("bob");
        let c = sim.add_node("carol");
        let chat = sim.create(a, "general");
        let room = *chat.room_id();
        sim.join(b, &chat);
        sim.join(c, &chat);
        sim.run(2_000);
        chatter(&mut sim, b, &room, 5, 50);
        sim.crash(a);
        chatter(&mut sim, c, &room, 5, 50);
        sim.run(20_000);
        (sim.trace_digest(), sim.trace.len(), sim.datagrams)
    };
    assert_eq!(run(7), run(7), "same seed, same trace");
    assert_ne!(run(7).0, run(8).0, "another seed, another trace");
}
