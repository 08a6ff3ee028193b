//! Outsiders: someone who holds no Chat ID, only what travels in clear —
//! the rendezvous tag, and the members' sealed datagrams if it is on their
//! path — tries to turn the room's members against a victim through the
//! signaling server, to forge the server's answers (or, squatting its
//! port, to answer for it), to hide the members from a joiner behind fake
//! registrations, and to move a member to another address by re-sending
//! its datagrams from there.
//!
//! The figure each test holds: datagrams the members send to the victim
//! (0 whatever the attacker sends through the server; at most three times
//! what it sends the members itself), fake members taken (0), real members
//! found (all), members moved (0).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::net::SocketAddr;

use p2pchat_core::membership::Status;
use p2pchat_core::room::MembershipProof;
use p2pchat_core::signaling::{
    Arrived, Entry, Message, Peers, Register, Registration, MAX_ENTRIES_PER_REPLY,
};
use p2pchat_core::{wire, ChatId, DropReason, Identity, PeerId, RendezvousTag, RoomId};
use p2pchat_sim::{Check, NetConfig, Sim, SIGNAL_ADDR};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::{for_seeds, for_seeds_and};

/// Where the victim of a reflection listens.
fn victim() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 77], 9))
}

/// The attacker's `i`-th source address (an IP of its own each).
fn attacker(i: u32) -> SocketAddr {
    let [_, b, c, d] = i.to_be_bytes();
    SocketAddr::from(([10, 66 + b, c, d], 6666))
}

fn expect(cond: bool, what: &str) -> Check {
    if cond {
        Ok(())
    } else {
        Err(what.to_owned())
    }
}

/// A room of `n` members who found each other through the signaling
/// server (the joiners' Chat IDs name nobody).
fn room(seed: u64, loss: f64, n: usize) -> (Sim, Vec<usize>, ChatId) {
    let mut sim = Sim::new(seed, NetConfig::lossy(loss));
    let nodes: Vec<usize> = (0..n).map(|i| sim.add_node(&format!("m{i}"))).collect();
    let chat = sim.create(nodes[0], "general");
    let bare = ChatId::without_bootstrap(*chat.room_id(), chat.key().clone(), chat.name().clone());
    for &i in &nodes[1..] {
        sim.join(i, &bare);
    }
    sim.run(8_000);
    (sim, nodes, bare)
}

/// A fake registration under `tag`, naming the victim: signed by a key of
/// the attacker's own, with a proof the attacker made up (it has no room
/// key).
fn fake_register(seed: u64, tag: RendezvousTag) -> Vec<u8> {
    let id = fake_identity(seed);
    let r = Registration {
        tag,
        addrs: vec![victim()],
        ttl_secs: 300,
        stamp: 1,
        nonce: seed,
        proof: MembershipProof::from_bytes([seed as u8; 16]),
    };
    let register = Register::new(&id, r).expect("a valid registration");
    wire::encode_sig(Message::Register(register))
}

/// An identity of the attacker's, from a stream of its own (the members'
/// come from the simulator's RNG).
fn fake_identity(n: u64) -> Identity {
    Identity::generate(&mut ChaCha20Rng::seed_from_u64(0xfa4e_0000_0000_0000 ^ n))
}

fn members_online(sim: &Sim, i: usize, room: &RoomId) -> usize {
    sim.node(i).members(room).map_or(0, |m| {
        m.iter()
            .filter(|m| m.status != Status::Offline && m.addr.is_some())
            .count()
    })
}

fn knows(sim: &Sim, i: usize, room: &RoomId, peer: &PeerId) -> bool {
    sim.node(i)
        .members(room)
        .is_some_and(|m| m.get(peer).is_some())
}

/// 16 fake registrations naming the victim, under the room's tag: the
/// members look the room up again and again, and send the victim nothing.
fn fake_entries_make_no_member_send_anywhere(seed: u64) -> Check {
    let (mut sim, nodes, chat) = room(seed, (seed % 11) as f64 / 100.0, 3);
    let tag = chat.key().rendezvous_tag();
    let mut attacker_bytes = 0;
    for k in 0..16u32 {
        let bytes = fake_register(seed * 100 + u64::from(k), tag);
        attacker_bytes += bytes.len();
        sim.inject(attacker(k), SIGNAL_ADDR, bytes);
    }
    sim.run(60_000);
    let (datagrams, bytes) = sim.sent_to(victim());
    expect(
        datagrams == 0,
        &format!("the members sent the victim {datagrams} datagrams ({bytes} bytes) for {attacker_bytes} bytes of fake registrations"),
    )?;
    let fakes: u64 = nodes
        .iter()
        .map(|&i| sim.node(i).counters().get(DropReason::FakeEntry))
        .sum();
    expect(
        fakes > 0,
        "the members saw the fake entries and dropped them",
    )?;
    let room = *chat.room_id();
    for &i in &nodes {
        expect(
            members_online(&sim, i, &room) == nodes.len() - 1,
            &format!("member {i} lost its room"),
        )?;
    }
    Ok(())
}

/// Answers forged with the server's address as their source — listing
/// fake members at the victim's address, and announcing them as
/// arrivals — are not bound to any request: no fake member is taken and
/// the victim gets nothing.
fn forged_answers_add_no_member(seed: u64) -> Check {
    let (mut sim, nodes, chat) = room(seed, (seed % 11) as f64 / 100.0, 3);
    let tag = chat.key().rendezvous_tag();
    let fakes: Vec<PeerId> = (0..MAX_ENTRIES_PER_REPLY as u64)
        .map(|k| fake_identity(seed * 7 + k).peer_id())
        .collect();
    let entry = |peer: PeerId| Entry {
        peer,
        observed: victim(),
        addrs: vec![victim()],
        proof: MembershipProof::from_bytes([1; 16]),
    };
    for round in 0..20u64 {
        for &i in &nodes {
            let to = sim.nodes[i].addr;
            let peers = Message::Peers(Peers {
                tag,
                nonce: seed ^ round,
                page: 0,
                pages: 1,
                entries: fakes.iter().take(4).map(|p| entry(*p)).collect(),
            });
            sim.inject(SIGNAL_ADDR, to, wire::encode_sig(peers));
            let arrived = Message::Arrived(Arrived {
                tag,
                nonce: round,
                entry: entry(fakes[round as usize % fakes.len()]),
            });
            sim.inject(SIGNAL_ADDR, to, wire::encode_sig(arrived));
        }
        sim.run(1_000);
    }
    sim.run(20_000);
    let room = *chat.room_id();
    for &i in &nodes {
        for fake in &fakes {
            expect(
                !knows(&sim, i, &room, fake),
                &format!("member {i} took a forged member"),
            )?;
        }
    }
    let unbound: u64 = nodes
        .iter()
        .map(|&i| sim.node(i).counters().get(DropReason::UnboundAnswer))
        .sum();
    expect(unbound > 0, "the forged answers were counted as unbound")?;
    let (datagrams, _) = sim.sent_to(victim());
    expect(
        datagrams == 0,
        &format!("{datagrams} datagrams to the victim"),
    )
}

/// The server signs its answers and the members pin its key; two members
/// find each other through it. Then the server is gone and a process
/// squats its port: it sees a joiner's lookups and answers each, echoing
/// its nonce and listing a real member — with that member's real
/// membership proof, as seen in an earlier answer — at the victim's
/// address; unsigned, and signed by a key of its own. With the key pinned,
/// none of it is taken (`bad_server_signature`) and the victim gets
/// nothing; the joiner gets in through its Chat ID's bootstrap address.
/// Without the pin (`pinned == false`, for the figure in the README) the
/// forged entry is taken and the victim is probed.
fn squatted_answers_are_refused_when_the_key_is_pinned(seed: u64, pinned: bool) -> Check {
    let mut sim = Sim::new(seed, NetConfig::lossy((seed % 6) as f64 / 100.0));
    if pinned {
        sim.pin_server_key(fake_identity(0x5e4e_0000 ^ seed));
    }
    let nodes: Vec<usize> = (0..3).map(|i| sim.add_node(&format!("m{i}"))).collect();
    let chat = sim.create(nodes[0], "general");
    let bare = ChatId::without_bootstrap(*chat.room_id(), chat.key().clone(), chat.name().clone());
    sim.join(nodes[1], &bare);
    sim.run(8_000);
    expect(
        members_online(&sim, nodes[1], chat.room_id()) == 1,
        "the two members found each other through the server",
    )?;
    sim.signaling_up(false);
    let room = *chat.room_id();
    let member = sim.peer_id(nodes[1]);
    let proof = chat.key().proof_key().proof(&member);
    let squatter = fake_identity(0x5e4e_1111 ^ seed);
    let joiner = nodes[2];
    let joiner_addr = sim.nodes[joiner].addr;
    let invite = ChatId::new(
        room,
        chat.key().clone(),
        chat.name().clone(),
        vec![sim.nodes[nodes[0]].addr],
    )
    .map_err(|e| e.to_string())?;
    sim.tap(joiner_addr);
    sim.join(joiner, &invite);
    let mut forged = 0;
    for _ in 0..200 {
        sim.run(100);
        for (to, bytes) in sim.take_tapped() {
            let lookup = match wire::decode(&bytes) {
                Ok(wire::Datagram::Sig(p)) if to == SIGNAL_ADDR => match p.msg {
                    Message::Lookup(l) => l,
                    _ => continue,
                },
                _ => continue,
            };
            let answer = Message::Peers(Peers {
                tag: lookup.tag,
                nonce: lookup.nonce,
                page: lookup.page,
                pages: 1,
                entries: vec![Entry {
                    peer: member,
                    observed: victim(),
                    addrs: vec![],
                    proof,
                }],
            });
            sim.inject(SIGNAL_ADDR, joiner_addr, wire::encode_sig(answer.clone()));
            let own = wire::encode_signed_answer(answer, &squatter);
            sim.inject(SIGNAL_ADDR, joiner_addr, own);
            forged += 2;
        }
    }
    expect(forged > 0, "the joiner looked the room up")?;
    let (datagrams, bytes) = sim.sent_to(victim());
    if !pinned {
        return expect(
            datagrams > 0,
            &format!("unpinned: {datagrams} datagrams ({bytes} bytes) to the victim"),
        );
    }
    expect(
        datagrams == 0,
        &format!("{datagrams} datagrams ({bytes} bytes) to the victim for {forged} forged answers"),
    )?;
    expect(
        sim.node(joiner)
            .counters()
            .get(DropReason::BadServerSignature)
            > 0,
        "the forged answers were counted as badly signed",
    )?;
    for &i in &nodes {
        expect(
            members_online(&sim, i, &room) == nodes.len() - 1,
            &format!("member {i} does not see everyone online"),
        )?;
    }
    sim.check(&room, &nodes)
}

/// Registrations from 16 (and, in one run, 10,000) made-up identities
/// fill the room's tag after its members registered; a joiner holding a
/// Chat ID that names nobody still finds every member, through the pages
/// of the lookup, and nobody sends the victim anything.
fn a_joiner_finds_the_members_under_fakes(seed: u64, fakes: u32, sources: u32) -> Check {
    let (mut sim, nodes, chat) = room(seed, (seed % 6) as f64 / 100.0, 3);
    let tag = chat.key().rendezvous_tag();
    for k in 0..fakes {
        let bytes = fake_register(seed * 100_000 + u64::from(k), tag);
        sim.inject(attacker(k % sources), SIGNAL_ADDR, bytes);
        if k % 500 == 499 {
            sim.run(100);
        }
    }
    sim.run(2_000);
    let joiner = sim.add_node("joiner");
    sim.join(joiner, &chat);
    sim.run(30_000);
    let room = *chat.room_id();
    for &i in &nodes {
        let peer = sim.peer_id(i);
        expect(
            knows(&sim, joiner, &room, &peer),
            &format!("the joiner never found member {i}"),
        )?;
    }
    expect(
        members_online(&sim, joiner, &room) == nodes.len(),
        &format!(
            "the joiner sees {} of {} members online",
            members_online(&sim, joiner, &room),
            nodes.len()
        ),
    )?;
    let (datagrams, _) = sim.sent_to(victim());
    expect(
        datagrams == 0,
        &format!("{datagrams} datagrams to the victim"),
    )
}

/// Member 0 is cut off from member 1 (member 2 hears both). An
/// eavesdropper on member 0's link copies every sealed control datagram
/// member 0 sends member 1, which never gets there, and re-sends it to
/// member 1 from the victim's address: fresh stamps, valid seals, the
/// wrong source. Member 1 never takes the victim's address for member 0
/// and sends the victim at most three times what the attacker sent; once
/// the link heals, everyone is online at their own addresses with the
/// same history.
fn replayed_control_datagrams_move_nobody(seed: u64) -> Check {
    let (mut sim, nodes, chat) = room(seed, (seed % 6) as f64 / 100.0, 3);
    let room = *chat.room_id();
    let (a, b, c) = (nodes[0], nodes[1], nodes[2]);
    let (a_addr, b_addr) = (sim.nodes[a].addr, sim.nodes[b].addr);
    let a_peer = sim.peer_id(a);
    sim.partition(vec![vec![b], vec![a, c]]);
    sim.tap(a_addr);
    let mut attacker_bytes = 0u64;
    for step in 0..300 {
        if step == 100 {
            sim.say(a, &room, "said while cut off");
            sim.say(b, &room, "said on the other side");
        }
        sim.run(100);
        for (to, bytes) in sim.take_tapped() {
            if to == b_addr && matches!(wire::decode(&bytes), Ok(wire::Datagram::Ctl(_))) {
                attacker_bytes += bytes.len() as u64;
                sim.inject(victim(), b_addr, bytes);
            }
        }
        let at = sim
            .node(b)
            .members(&room)
            .and_then(|m| m.get(&a_peer))
            .and_then(|m| m.addr);
        expect(
            at != Some(victim()),
            &format!("member 1 moved member 0 to the victim's address at step {step}"),
        )?;
    }
    let (datagrams, bytes) = sim.sent_to(victim());
    expect(
        attacker_bytes > 0 && bytes <= 3 * attacker_bytes,
        &format!(
            "the victim got {datagrams} datagrams ({bytes} bytes) for {attacker_bytes} bytes replayed"
        ),
    )?;
    sim.heal();
    sim.run(20_000);
    for &i in &nodes {
        expect(
            members_online(&sim, i, &room) == nodes.len() - 1,
            &format!("member {i} does not see everyone online after the heal"),
        )?;
    }
    let at = sim
        .node(b)
        .members(&room)
        .and_then(|m| m.get(&a_peer))
        .and_then(|m| m.addr);
    expect(
        at == Some(a_addr),
        &format!("member 1 has member 0 at {at:?}"),
    )?;
    sim.check(&room, &nodes)
}

#[test]
fn replayed_control_datagrams_move_no_member() {
    for_seeds(
        "replayed_control_datagrams_move_no_member",
        replayed_control_datagrams_move_nobody,
    );
}

#[test]
fn fake_registrations_make_no_member_send_to_the_victim() {
    for_seeds(
        "fake_entries_make_no_member_send_anywhere",
        fake_entries_make_no_member_send_anywhere,
    );
}

#[test]
fn forged_signaling_answers_add_no_member() {
    for_seeds("forged_answers_add_no_member", forged_answers_add_no_member);
}

/// Seeds that once failed (a 5,000-seed soak): both registrations lost,
/// and not sent again for a third of their lifetime.
const SQUATTED_REGRESSIONS: &[u64] = &[677, 951, 2140, 2735, 4325];

#[test]
fn squatted_signaling_answers_are_refused_when_the_servers_key_is_pinned() {
    for_seeds_and(
        "squatted_answers_are_refused_when_the_key_is_pinned",
        |seed| squatted_answers_are_refused_when_the_key_is_pinned(seed, true),
        SQUATTED_REGRESSIONS,
    );
}

/// What the pin adds: without it, the same squatter gets the victim
/// probed (one seed; the figure is in the README).
#[test]
fn without_a_pinned_key_squatted_answers_that_echo_the_nonce_are_taken() {
    let outcome = squatted_answers_are_refused_when_the_key_is_pinned(0, false);
    assert_eq!(outcome, Ok(()));
}

#[test]
fn a_joiner_finds_the_members_under_16_fake_registrations() {
    for_seeds("a_joiner_finds_the_members_under_16_fakes", |seed| {
        a_joiner_finds_the_members_under_fakes(seed, 16, 16)
    });
}

/// One run (seed 1): 10,000 fake registrations from 2,500 addresses.
#[test]
fn a_joiner_finds_the_members_under_10000_fake_registrations() {
    let outcome = a_joiner_finds_the_members_under_fakes(1, 10_000, 2_500);
    assert_eq!(outcome, Ok(()));
}
