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
//! for as long.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::net::SocketAddr;

use p2pchat_core::membership::{Beat, Hint};
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
/// made-up members are at the victims' addresses. Each victim gets at most
/// `MOST_PROBES` datagrams in the first half hour and nothing in the
/// second; named again after that, it is probed again.
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
    // Hints every ten minutes while the schedule runs, then every ten
    // minutes while it is given up.
    let period = GIVE_UP_MS;
    for _ in 0..3 {
        hint(&mut sim)?;
        sim.run(period / 3);
    }
    let first = received(&sim);
    for (i, got) in first.iter().enumerate() {
        expect(
            *got > 0 && *got <= MOST_PROBES,
            &format!("victim {i} got {got} datagrams in {period} ms"),
        )?;
    }
    for _ in 0..3 {
        hint(&mut sim)?;
        sim.run(period / 3);
        let quiet = received(&sim);
        expect(
            quiet == first,
            &format!("victims got {quiet:?} after the give-up (had {first:?})"),
        )?;
    }
    // Past the cool-down, named again: probed again.
    sim.run(10_000);
    hint(&mut sim)?;
    sim.run(10_000);
    let again = received(&sim);
    expect(
        again.iter().zip(&first).all(|(a, f)| a > f),
        &format!("victims got {again:?} after the cool-down (had {first:?})"),
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
fn hints_of_victims_cost_them_a_bounded_number_of_probes_then_nothing() {
    for_fewer_seeds(
        "hints_of_victims_cost_them_a_bounded_number_of_probes",
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
