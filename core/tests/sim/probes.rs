//! Probes: an address nobody answers from costs whoever is there a bounded
//! number of datagrams, then nothing — whoever named it.
//!
//! A member turned hostile names victims' addresses for made-up members in
//! its heartbeats, again and again; a joiner holds a Chat ID whose
//! bootstrap address is dead. Before, each such address was probed every
//! probe interval for ever (in this simulator, every 3 s: 1,200 datagrams
//! per member per address per hour). Now each is probed on its own
//! schedule (six tries in six seconds, then ever more rarely, see
//! `core/src/path.rs`), given up after half an hour, and not taken again
//! for as long; and a member's hints are probed only as that member pays
//! for them with its own datagrams.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::net::SocketAddr;

use p2pchat_core::membership::{Beat, Hint, MAX_HINT_CREDIT};
use p2pchat_core::path::GIVE_UP_MS;
use p2pchat_core::wire::{self, Control, RoomKind, Sealed};
use p2pchat_core::{ChatId, Identity, RoomCipher};
use p2pchat_sim::{Check, NetConfig, Sim};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::for_fewer_seeds;

/// Victims, one address each.
const VICTIMS: u16 = 8;
/// Most probes an unanswered address may get from one member per give-up
/// period (the schedule sends 29 in 30 minutes).
const MOST_PROBES: u64 = 30;

fn victim(i: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 77], 1000 + i))
}

fn expect(cond: bool, what: &str) -> Check {
    if cond {
        Ok(())
    } else {
        Err(what.to_owned())
    }
}

/// Datagrams each victim got so far.
fn received(sim: &Sim) -> Vec<u64> {
    (0..VICTIMS).map(|i| sim.sent_to(victim(i)).0).collect()
}

/// Mallory (member 1, crashed after proving her address, her key in the
/// attacker's hands) tells member 0 every ten minutes for an hour that
/// made-up members are at the victims' addresses. Probes of a member's
/// hints are paid for by that member's own control messages (see
/// `core/src/membership/mod.rs`): the victims get at most what Mallory
/// earned while she ran ([`MAX_HINT_CREDIT`]) plus one datagram per fresh
/// heartbeat of hers, however many copies of it arrive.
fn hints_of_victims_cost_them_a_bounded_number_of_probes(seed: u64) -> Check {
    let mut sim = Sim::new(seed, NetConfig::lossy((seed % 6) as f64 / 100.0));
    let member = sim.add_node("member");
    let m = sim.add_node("mallory");
    let chat = sim.create(member, "general");
    sim.join(m, &chat);
    sim.run(10_000);
    let room = *chat.room_id();
    let mallory = Identity::from_secret_bytes(&sim.nodes[m].secret);
    let mallory_addr = sim.nodes[m].addr;
    let proved = sim
        .node(member)
        .members(&room)
        .and_then(|t| t.get(&mallory.peer_id()))
        .and_then(|t| t.addr);
    expect(proved == Some(mallory_addr), "mallory proved her address")?;
    sim.crash(m);
    let cipher = RoomCipher::new(room, chat.key());
    let mut fakes = ChaCha20Rng::seed_from_u64(seed ^ 0x0bad);
    let hints: Vec<Hint> = (0..VICTIMS)
        .map(|i| Hint {
            peer: Identity::generate(&mut fakes).peer_id(),
            addr: victim(i),
        })
        .collect();
    let mut stamp = u64::MAX / 2;
    let mut hint = |sim: &mut Sim| -> Check {
        stamp += 1;
        let beat = Beat {
            stamp,
            name: "mallory".into(),
            digest: 0,
            hints: hints.clone(),
            hello: false,
            challenge: None,
            response: None,
        };
        let payload =
            serde_json::to_vec(&Sealed::Ctl(Control::Beat(beat))).map_err(|e| e.to_string())?;
        let token = cipher
            .seal(&mallory, &payload, sim.now)
            .map_err(|e| e.to_string())?;
        let tag = chat.key().rendezvous_tag();
        let datagrams = wire::encode_room(RoomKind::Ctl, tag, mallory.peer_id(), &token, 1200, 1)
            .ok_or("the beat does not fit")?;
        // Four copies: the network may lose some (the rest are replays).
        for _ in 0..4 {
            for d in &datagrams {
                sim.inject(mallory_addr, sim.nodes[member].addr, d.clone());
            }
        }
        Ok(())
    };
    let total = |sim: &Sim| -> u64 { received(sim).iter().sum() };
    hint(&mut sim)?;
    sim.run(GIVE_UP_MS / 3);
    let first = total(&sim);
    expect(
        first > 0 && first <= u64::from(MAX_HINT_CREDIT) + 1,
        &format!("victims got {first} datagrams for Mallory's first hints"),
    )?;
    let beats = 6;
    for _ in 0..beats {
        hint(&mut sim)?;
        sim.run(GIVE_UP_MS / 3);
    }
    let later = total(&sim) - first;
    expect(
        later <= beats,
        &format!("victims got {later} datagrams for {beats} more heartbeats of hints"),
    )
}

/// A joiner whose Chat ID names a dead address (and nobody else) probes it
/// at most `MOST_PROBES` times, then never again.
fn a_dead_bootstrap_address_is_given_up(seed: u64) -> Check {
    let mut sim = Sim::new(seed, NetConfig::lossy(0.0));
    let creator = sim.add_node("creator");
    let joiner = sim.add_node("joiner");
    let chat = sim.create(creator, "general");
    sim.crash(creator);
    sim.signaling_up(false);
    let dead = ChatId::new(
        *chat.room_id(),
        chat.key().clone(),
        chat.name().clone(),
        vec![victim(0)],
    )
    .map_err(|e| e.to_string())?;
    sim.join(joiner, &dead);
    sim.run(GIVE_UP_MS + 60_000);
    let (probes, _) = sim.sent_to(victim(0));
    expect(
        probes > 5 && probes <= MOST_PROBES,
        &format!("the dead bootstrap address got {probes} probes in half an hour"),
    )?;
    sim.run(2 * GIVE_UP_MS);
    let (after, _) = sim.sent_to(victim(0));
    expect(
        after == probes,
        &format!("{} more probes after the give-up", after - probes),
    )
}

/// An hour of virtual time per seed: a tenth of the seeds.
#[test]
fn hints_of_victims_cost_them_at_most_what_the_hinting_member_paid() {
    for_fewer_seeds(
        "hints_of_victims_cost_them_what_mallory_paid",
        10,
        hints_of_victims_cost_them_a_bounded_number_of_probes,
    );
}

/// Two hours of virtual time per seed: a tenth of the seeds.
#[test]
fn a_dead_bootstrap_address_is_probed_ever_more_rarely_then_given_up() {
    for_fewer_seeds(
        "a_dead_bootstrap_address_is_given_up",
        10,
        a_dead_bootstrap_address_is_given_up,
    );
}
