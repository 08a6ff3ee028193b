#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::net::SocketAddr;

use rand_chacha::rand_core::RngCore;
use sha2::{Digest, Sha256};

use p2pchat_core::chat_id::{MAX_BOOTSTRAP, MAX_TEXT_LEN, PREFIX};
use p2pchat_core::quota::Quota;
use p2pchat_core::{ChatId, ChatIdError, RoomId, RoomKey, RoomName, RoomNameError};

use crate::rng;

const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn chat_id(seed: u64, name: &str, bootstrap: &[&str]) -> ChatId {
    let mut r = rng(seed);
    ChatId::new(
        RoomId::generate(&mut r),
        RoomKey::generate(&mut r),
        RoomName::new(name).expect("test name"),
        bootstrap.iter().map(|a| addr(a)).collect(),
    )
    .expect("valid chat id")
}

/// Builds a Chat ID string from a raw body, with a correct checksum, so
/// tests can hand-craft bodies the encoder would never produce.
fn craft(body: &[u8]) -> String {
    let mut bytes = body.to_vec();
    bytes.extend_from_slice(&Sha256::digest(body)[..4]);
    format!("{PREFIX}{}", bs58::encode(bytes).into_string())
}

/// A valid body up to (not including) the bootstrap section.
fn body_with_name(name: &[u8]) -> Vec<u8> {
    let mut body = vec![1u8];
    body.extend_from_slice(&[7u8; 16]);
    body.extend_from_slice(&[9u8; 32]);
    body.push(name.len() as u8);
    body.extend_from_slice(name);
    body
}

#[test]
fn round_trips_with_and_without_bootstrap_addresses() {
    let cases = [
        chat_id(20, "general", &[]),
        chat_id(21, "café-日本", &["127.0.0.1:5000"]),
        chat_id(
            22,
            "v6",
            &["[::1]:5001", "192.168.1.20:65535", "[2001:db8::7]:1"],
        ),
        chat_id(
            23,
            &"n".repeat(64),
            &[
                "[2001:db8::1]:1",
                "[2001:db8::2]:2",
                "[2001:db8::3]:3",
                "[2001:db8::4]:4",
                "[2001:db8::5]:5",
                "[2001:db8::6]:6",
                "[2001:db8::7]:7",
                "[2001:db8::8]:8",
            ],
        ),
    ];
    for id in cases {
        let text = id.to_string();
        assert!(text.starts_with(PREFIX), "{text}");
        assert!(
            text.len() <= MAX_TEXT_LEN,
            "{} > {MAX_TEXT_LEN}",
            text.len()
        );
        assert!(
            text[PREFIX.len()..].chars().all(|c| BASE58.contains(c)),
            "only base58 after the prefix: {text}"
        );
        let back: ChatId = text.parse().expect("round trip");
        assert_eq!(back, id);
        assert_eq!(back.room_id(), id.room_id());
        assert_eq!(back.key(), id.key());
        assert_eq!(back.name(), id.name());
        assert_eq!(back.bootstrap(), id.bootstrap());
    }
}

#[test]
fn a_room_with_another_quota_has_a_chat_id_that_keeps_it() {
    let plain = chat_id(30, "general", &["192.0.2.1:5000"]);
    assert_eq!(plain.quota(), Quota::default());
    assert!(plain.chained(), "a new room's events carry the hash chain");
    let quota = Quota {
        events_per_s: 1_000,
        burst_events: 5_000,
        bytes_per_s: 1 << 20,
        burst_bytes: 1 << 24,
        total_bytes: 1 << 34,
    };
    let custom = plain.clone().with_quota(quota).expect("a valid quota");
    let text = custom.to_string();
    let parsed: ChatId = text.parse().expect("round trip");
    assert_eq!(parsed, custom);
    assert_eq!(parsed.quota(), quota);
    assert!(parsed.chained());
    // A room from before the chain keeps its version: 2 with a quota of
    // its own, 1 with the default one, as before quotas; longer with one.
    let old = custom.clone().unchained();
    let parsed: ChatId = old.to_string().parse().expect("round trip");
    assert_eq!((parsed.quota(), parsed.chained()), (quota, false));
    let old_plain = plain.clone().unchained();
    assert!(old.to_string().len() > old_plain.to_string().len());
    let parsed: ChatId = old_plain.to_string().parse().expect("round trip");
    assert_eq!(
        (parsed.quota(), parsed.chained()),
        (Quota::default(), false)
    );
    let back = custom.with_quota(Quota::default()).expect("default");
    assert_eq!(back.to_string(), plain.to_string());
    let zero = Quota {
        burst_events: 0,
        ..quota
    };
    assert_eq!(plain.with_quota(zero), Err(ChatIdError::BadQuota));
}

#[test]
fn pasting_tolerates_surrounding_whitespace_and_prefix_case() {
    let id = chat_id(24, "general", &["127.0.0.1:5000"]);
    let text = id.to_string();
    assert_eq!(format!("  {text}\n").parse::<ChatId>(), Ok(id.clone()));
    let shouted = format!("P2PCHAT:{}", &text[PREFIX.len()..]);
    assert_eq!(shouted.parse::<ChatId>(), Ok(id));
}

#[test]
fn debug_output_hides_the_key() {
    let id = chat_id(25, "secret-room", &[]);
    let shown = format!("{id:?}");
    let key_hex = hex::encode(id.key().as_bytes());
    assert!(!shown.contains(&key_hex[..12]), "{shown}");
    assert!(!shown.contains(&id.to_string()[PREFIX.len()..]), "{shown}");
    assert!(shown.contains("secret-room"));
}

#[test]
fn construction_checks_bootstrap_addresses() {
    let mut r = rng(26);
    let mk = |addrs: Vec<SocketAddr>, r: &mut rand_chacha::ChaCha20Rng| {
        ChatId::new(
            RoomId::generate(r),
            RoomKey::generate(r),
            RoomName::new("x").expect("name"),
            addrs,
        )
    };
    assert!(matches!(
        mk(vec![addr("127.0.0.1:0")], &mut r),
        Err(ChatIdError::BadAddress(_))
    ));
    assert!(matches!(
        mk(vec![addr("0.0.0.0:5000")], &mut r),
        Err(ChatIdError::BadAddress(_))
    ));
    assert!(matches!(
        mk(vec![addr("224.0.0.1:5000")], &mut r),
        Err(ChatIdError::BadAddress(_))
    ));
    let nine = (1..=9).map(|p| addr(&format!("10.0.0.1:{p}"))).collect();
    assert_eq!(
        mk(nine, &mut r),
        Err(ChatIdError::TooManyAddresses {
            count: 9,
            max: MAX_BOOTSTRAP
        })
    );
    let dup = mk(vec![addr("10.0.0.1:5"), addr("10.0.0.1:5")], &mut r).expect("dedup");
    assert_eq!(dup.bootstrap(), &[addr("10.0.0.1:5")]);
}

#[test]
fn empty_and_foreign_text_is_not_a_chat_id() {
    assert_eq!("".parse::<ChatId>(), Err(ChatIdError::Empty));
    assert_eq!(" \n\t ".parse::<ChatId>(), Err(ChatIdError::Empty));
    for foreign in [
        "hello",
        "https://example.com/p2pchat:abc",
        "p2pchat",
        "p2p:abc",
        "général",
    ] {
        assert_eq!(
            foreign.parse::<ChatId>(),
            Err(ChatIdError::MissingPrefix),
            "{foreign}"
        );
    }
    // A Chat ID without its prefix is still refused, clearly.
    let id = chat_id(27, "general", &[]).to_string();
    assert_eq!(
        id[PREFIX.len()..].parse::<ChatId>(),
        Err(ChatIdError::MissingPrefix)
    );
    assert_eq!(PREFIX.parse::<ChatId>(), Err(ChatIdError::Truncated));
}

#[test]
fn characters_outside_base58_are_reported_with_their_position() {
    let id = chat_id(28, "general", &[]).to_string();
    for bad in ['0', 'O', 'I', 'l', '+', '/', '-', '_', 'é', '🙂', ' '] {
        let mut text = id.clone();
        let at = PREFIX.len() + 5;
        text.insert(at, bad);
        match text.parse::<ChatId>() {
            Err(ChatIdError::InvalidCharacter {
                character,
                position,
            }) => {
                assert_eq!(character, bad);
                assert_eq!(position, at + 1, "1-based position of {bad:?}");
            }
            other => panic!("{bad:?}: expected InvalidCharacter, got {other:?}"),
        }
    }
}

#[test]
fn every_truncation_is_refused() {
    let id = chat_id(29, "general", &["127.0.0.1:5000"]).to_string();
    for cut in PREFIX.len()..id.len() {
        match id[..cut].parse::<ChatId>() {
            Err(ChatIdError::Truncated | ChatIdError::Checksum) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn every_single_character_typo_is_refused() {
    let id = chat_id(30, "general", &["127.0.0.1:5000"]).to_string();
    let chars: Vec<char> = id.chars().collect();
    for pos in PREFIX.len()..chars.len() {
        // Three different substitutes per position keep the test quick.
        for sub in BASE58.chars().filter(|c| *c != chars[pos]).step_by(19) {
            let mut typo = chars.clone();
            typo[pos] = sub;
            let typo: String = typo.into_iter().collect();
            match typo.parse::<ChatId>() {
                Err(ChatIdError::Checksum | ChatIdError::Truncated) => {}
                other => panic!("typo {sub:?} at {pos}: {other:?}"),
            }
        }
    }
    // Swapped neighbours (a classic typo) are caught too.
    for pos in PREFIX.len()..chars.len() - 1 {
        if chars[pos] == chars[pos + 1] {
            continue;
        }
        let mut swapped = chars.clone();
        swapped.swap(pos, pos + 1);
        let swapped: String = swapped.into_iter().collect();
        assert!(swapped.parse::<ChatId>().is_err(), "swap at {pos}");
    }
}

#[test]
fn oversized_text_is_refused_before_decoding() {
    // A short Chat ID pasted twice trips over the second prefix's ':'.
    let short = chat_id(31, "general", &[]).to_string();
    assert!(matches!(
        format!("{short}{short}").parse::<ChatId>(),
        Err(ChatIdError::InvalidCharacter { character: ':', .. })
    ));
    // The largest possible Chat ID pasted twice is over the length limit.
    let v6: Vec<String> = (1..=8).map(|i| format!("[2001:db8::{i}]:{i}")).collect();
    let v6: Vec<&str> = v6.iter().map(String::as_str).collect();
    let largest = chat_id(31, &"n".repeat(64), &v6).to_string();
    assert!(matches!(
        format!("{largest}{largest}").parse::<ChatId>(),
        Err(ChatIdError::TooLong { .. })
    ));
    let huge = format!("{PREFIX}{}", "z".repeat(1_000_000));
    assert!(matches!(
        huge.parse::<ChatId>(),
        Err(ChatIdError::TooLong { .. })
    ));
}

#[test]
fn crafted_bodies_with_valid_checksums_are_validated_field_by_field() {
    // Sanity check of the crafting helper: a correct body parses.
    let mut ok = body_with_name(b"general");
    ok.push(1);
    ok.extend_from_slice(&[4, 127, 0, 0, 1, 0x13, 0x88]);
    let parsed: ChatId = craft(&ok).parse().expect("crafted valid body");
    assert_eq!(parsed.name().as_str(), "general");
    assert_eq!(parsed.bootstrap(), &[addr("127.0.0.1:5000")]);

    let with_addrs = |addrs: &[u8], count: u8| {
        let mut body = body_with_name(b"general");
        body.push(count);
        body.extend_from_slice(addrs);
        craft(&body)
    };

    let mut v4 = ok.clone();
    v4[0] = 4;
    assert_eq!(
        craft(&v4).parse::<ChatId>(),
        Err(ChatIdError::UnsupportedVersion(4))
    );
    assert!(!parsed.chained(), "version 1: a room from before the chain");

    // Version 2 carries a quota: 4 u32s and a u64, each at least 1, and
    // never the default one (that is written as version 1).
    let quota_body = |figures: [u32; 4], total: u64| {
        let mut body = ok.clone();
        body[0] = 2;
        for f in figures {
            body.extend_from_slice(&f.to_be_bytes());
        }
        body.extend_from_slice(&total.to_be_bytes());
        craft(&body)
    };
    let parsed: ChatId = quota_body([1, 2, 3, 4], 5).parse().expect("a quota");
    let q = parsed.quota();
    assert_eq!(
        (
            q.events_per_s,
            q.burst_events,
            q.bytes_per_s,
            q.burst_bytes,
            q.total_bytes
        ),
        (1, 2, 3, 4, 5)
    );
    assert_eq!(
        quota_body([0, 2, 3, 4], 5).parse::<ChatId>(),
        Err(ChatIdError::BadQuota)
    );
    assert_eq!(
        quota_body([1, 2, 3, 4], 0).parse::<ChatId>(),
        Err(ChatIdError::BadQuota)
    );
    let d = Quota::default();
    let small = |v: u64| u32::try_from(v).expect("small");
    let default = [d.events_per_s, d.burst_events, d.bytes_per_s, d.burst_bytes].map(small);
    assert_eq!(
        quota_body(default, d.total_bytes).parse::<ChatId>(),
        Err(ChatIdError::BadQuota)
    );
    let mut short = ok.clone();
    short[0] = 2;
    assert_eq!(craft(&short).parse::<ChatId>(), Err(ChatIdError::Truncated));
    // Version 3 (events carry the hash chain) always carries its quota,
    // the default one too.
    short[0] = 3;
    assert_eq!(craft(&short).parse::<ChatId>(), Err(ChatIdError::Truncated));
    let mut v3 = ok.clone();
    v3[0] = 3;
    for f in default {
        v3.extend_from_slice(&f.to_be_bytes());
    }
    v3.extend_from_slice(&d.total_bytes.to_be_bytes());
    let parsed: ChatId = craft(&v3).parse().expect("version 3");
    assert_eq!((parsed.quota(), parsed.chained()), (d, true));

    let mut no_name = body_with_name(b"");
    no_name.push(0);
    assert_eq!(
        craft(&no_name).parse::<ChatId>(),
        Err(ChatIdError::Name(RoomNameError::Empty))
    );

    let mut not_utf8 = body_with_name(&[0xff, 0xfe]);
    not_utf8.push(0);
    assert_eq!(
        craft(&not_utf8).parse::<ChatId>(),
        Err(ChatIdError::NameNotUtf8)
    );

    let mut spaced = body_with_name(b"two words");
    spaced.push(0);
    assert!(matches!(
        craft(&spaced).parse::<ChatId>(),
        Err(ChatIdError::Name(RoomNameError::Whitespace { .. }))
    ));

    let mut long = body_with_name(&[b'x'; 65]);
    long.push(0);
    assert!(matches!(
        craft(&long).parse::<ChatId>(),
        Err(ChatIdError::Name(RoomNameError::TooLong { .. }))
    ));

    // Name length says 200 but the body ends first.
    let mut short = body_with_name(b"abc");
    let len_at = 1 + 16 + 32;
    short[len_at] = 200;
    assert_eq!(craft(&short).parse::<ChatId>(), Err(ChatIdError::Truncated));

    // Cut inside the key.
    assert_eq!(
        craft(&ok[..30]).parse::<ChatId>(),
        Err(ChatIdError::Truncated)
    );
    // Only a version byte.
    assert_eq!(craft(&[1]).parse::<ChatId>(), Err(ChatIdError::Truncated));

    assert_eq!(
        with_addrs(&[], 9).parse::<ChatId>(),
        Err(ChatIdError::TooManyAddresses { count: 9, max: 8 })
    );
    assert_eq!(
        with_addrs(&[], 255).parse::<ChatId>(),
        Err(ChatIdError::TooManyAddresses { count: 255, max: 8 })
    );
    assert_eq!(
        with_addrs(&[], 1).parse::<ChatId>(),
        Err(ChatIdError::Truncated)
    );
    assert_eq!(
        with_addrs(&[5, 1, 2, 3, 4, 0, 80], 1).parse::<ChatId>(),
        Err(ChatIdError::BadAddress("unknown address family"))
    );
    assert_eq!(
        with_addrs(&[4, 127, 0, 0, 1, 0, 0], 1).parse::<ChatId>(),
        Err(ChatIdError::BadAddress("port 0"))
    );
    assert_eq!(
        with_addrs(&[4, 0, 0, 0, 0, 0, 80], 1).parse::<ChatId>(),
        Err(ChatIdError::BadAddress("unspecified IP address"))
    );
    assert_eq!(
        with_addrs(&[4, 10, 0, 0, 1, 0, 80, 4, 10, 0, 0, 1, 0, 80], 2).parse::<ChatId>(),
        Err(ChatIdError::BadAddress("the same address appears twice"))
    );
    assert_eq!(
        with_addrs(&[6, 0, 0, 0], 1).parse::<ChatId>(),
        Err(ChatIdError::Truncated)
    );
    let mut trailing = ok.clone();
    trailing.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        craft(&trailing).parse::<ChatId>(),
        Err(ChatIdError::TrailingBytes(3))
    );
}

#[test]
fn random_garbage_never_panics_and_never_parses() {
    let mut r = rng(32);
    let alphabet: Vec<char> = BASE58.chars().collect();
    for i in 0..2_000 {
        let len = (r.next_u32() % 400) as usize;
        let text: String = if i % 2 == 0 {
            // Random base58 behind a valid prefix: gets past the cheap checks.
            let body: String = (0..len)
                .map(|_| alphabet[(r.next_u32() as usize) % alphabet.len()])
                .collect();
            format!("{PREFIX}{body}")
        } else {
            // Arbitrary bytes, made into (lossy) text.
            let mut bytes = vec![0u8; len];
            r.fill_bytes(&mut bytes);
            format!("{PREFIX}{}", String::from_utf8_lossy(&bytes))
        };
        assert!(text.parse::<ChatId>().is_err(), "garbage parsed: {text}");
    }
}
