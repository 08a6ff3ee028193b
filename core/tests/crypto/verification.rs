//! Batch and single verification agree on every signature, crafted ones
//! first: keys and `R` values of small order in every encoding, mixed-order
//! keys and `R` values, non-canonical `s`, points off the curve, wrong
//! messages — alone, among honest signatures, and all together.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::VerifyingKey;
use rand_chacha::rand_core::RngCore;
use sha2::{Digest, Sha512};

use p2pchat_core::verification::{Batch, Check, Rule};
use p2pchat_core::{Identity, PeerId};

use crate::rng;

/// One signature under test, with what each rule must say about it.
struct Case {
    what: String,
    key: [u8; 32],
    message: Vec<u8>,
    signature: [u8; 64],
}

impl Case {
    fn check(&self, rule: Rule) -> Check {
        Check::new(
            rule,
            PeerId::from_bytes(self.key),
            self.message.clone(),
            self.signature,
        )
    }

    /// The strict rule's check, if the key decompresses at all (a key that
    /// does not is refused before any rule applies).
    fn strict(&self) -> Option<Check> {
        let key = VerifyingKey::from_bytes(&self.key).ok()?;
        Some(self.check(Rule::Strict(key)))
    }
}

fn signature(r: &[u8; 32], s: &[u8; 32]) -> [u8; 64] {
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(r);
    sig[32..].copy_from_slice(s);
    sig
}

/// `k = H(R || A || M)`, the challenge scalar of Ed25519.
fn challenge(r: &[u8; 32], a: &[u8; 32], message: &[u8]) -> Scalar {
    let hash: [u8; 64] = Sha512::new()
        .chain_update(r)
        .chain_update(a)
        .chain_update(message)
        .finalize()
        .into();
    Scalar::from_bytes_mod_order_wide(&hash)
}

/// Every encoding of a point of small order: the eight torsion points as
/// they compress, and the non-canonical ones (`y` at or above the field's
/// prime, or an `x` sign bit on `x = 0`) that still decompress.
fn small_order_encodings() -> Vec<[u8; 32]> {
    let mut encodings: Vec<[u8; 32]> = EIGHT_TORSION.iter().map(|p| p.compress().0).collect();
    // p - 1, p and p + 1 as little-endian y values, with and without the
    // sign bit; and y = 1 (the identity) with the sign bit.
    for low in [0xec_u8, 0xed, 0xee] {
        let mut y = [0xff_u8; 32];
        y[0] = low;
        y[31] = 0x7f;
        encodings.push(y);
        y[31] = 0xff;
        encodings.push(y);
    }
    let mut one = [0u8; 32];
    one[0] = 1;
    one[31] = 0x80;
    encodings.push(one);
    encodings.retain(|e| {
        CompressedEdwardsY(*e)
            .decompress()
            .is_some_and(|p| p.is_small_order())
    });
    encodings.sort();
    encodings.dedup();
    encodings
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut r = rng(700);
    let message = b"p2pchat crafted".to_vec();

    // Honest signatures: both rules accept them.
    for i in 0..4 {
        let id = Identity::generate(&mut r);
        let m = format!("honest {i}").into_bytes();
        cases.push(Case {
            what: format!("honest {i}"),
            key: *id.peer_id().as_bytes(),
            signature: id.sign(&m),
            message: m,
        });
    }

    // Small-order key and R, s = 0: valid for every message under the
    // cofactored equation, in every encoding.
    let small = small_order_encodings();
    for a in &small {
        for rr in &small {
            cases.push(Case {
                what: format!("small-order A {} R {}", hex::encode(a), hex::encode(rr)),
                key: *a,
                message: message.clone(),
                signature: signature(rr, &[0u8; 32]),
            });
        }
    }

    for (i, t) in EIGHT_TORSION.iter().enumerate().skip(1) {
        // s = r + k a with A = aB + ta·T and R = rB + tr·T: a key or an R
        // with a torsion component (the cofactored equation holds).
        let a = Scalar::from_bytes_mod_order(random32(&mut r));
        let nonce = Scalar::from_bytes_mod_order(random32(&mut r));
        for (what, ta, tr) in [("A", 1u8, 0u8), ("R", 0, 1)] {
            let big_a = (B * a + t * Scalar::from(ta)).compress().0;
            let big_r = (B * nonce + t * Scalar::from(tr)).compress().0;
            let s = nonce + challenge(&big_r, &big_a, &message) * a;
            cases.push(Case {
                what: format!("mixed-order {what} (torsion {i})"),
                key: big_a,
                message: message.clone(),
                signature: signature(&big_r, &s.to_bytes()),
            });
        }
    }

    // Non-canonical s: an honest signature with l added to s.
    let id = Identity::generate(&mut r);
    let honest = id.sign(&message);
    let (mut r_bytes, mut s_bytes) = ([0u8; 32], [0u8; 32]);
    r_bytes.copy_from_slice(&honest[..32]);
    s_bytes.copy_from_slice(&honest[32..]);
    let unreduced = add_l(&s_bytes);
    if let Some(unreduced) = unreduced {
        cases.push(Case {
            what: "s + l".into(),
            key: *id.peer_id().as_bytes(),
            message: message.clone(),
            signature: signature(&r_bytes, &unreduced),
        });
    }
    // The same honest signature over another message, and an R that is
    // not a point.
    cases.push(Case {
        what: "wrong message".into(),
        key: *id.peer_id().as_bytes(),
        message: b"another message".to_vec(),
        signature: honest,
    });
    let mut off_curve = honest;
    off_curve[..32].copy_from_slice(&not_a_point());
    cases.push(Case {
        what: "R off the curve".into(),
        key: *id.peer_id().as_bytes(),
        message: message.clone(),
        signature: off_curve,
    });
    cases.push(Case {
        what: "key off the curve".into(),
        key: not_a_point(),
        message,
        signature: honest,
    });
    cases
}

fn random32(r: &mut impl RngCore) -> [u8; 32] {
    let mut b = [0u8; 32];
    r.fill_bytes(&mut b);
    b
}

/// `s + l` as 32 little-endian bytes, if it still fits in 253 bits (the
/// encodings a decoder must refuse as non-canonical).
fn add_l(s: &[u8; 32]) -> Option<[u8; 32]> {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(L[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    (carry == 0 && out[31] < 0x20).then_some(out)
}

/// The first y (from 2 up) that is not the y of any curve point.
fn not_a_point() -> [u8; 32] {
    (2u8..=255)
        .map(|y| {
            let mut b = [0u8; 32];
            b[0] = y;
            b
        })
        .find(|b| CompressedEdwardsY(*b).decompress().is_none())
        .unwrap_or([0xff; 32])
}

fn batch_verdicts(checks: Vec<Check>, seed: u64) -> Vec<bool> {
    let mut s = [0u8; 32];
    rng(seed).fill_bytes(&mut s);
    Batch::new(checks, s).verdicts()
}

#[test]
fn zip215_batch_and_single_verification_agree_on_crafted_signatures() {
    let cases = cases();
    let single: Vec<bool> = cases
        .iter()
        .map(|c| c.check(Rule::Zip215).verify())
        .collect();

    // The set is worth testing: the crafted signatures the two rules
    // disagree on are there, and accepted by ZIP 215.
    let by_name = |prefix: &str| {
        cases
            .iter()
            .zip(&single)
            .filter(|(c, _)| c.what.starts_with(prefix))
            .map(|(_, v)| *v)
            .collect::<Vec<_>>()
    };
    assert!(by_name("honest").iter().all(|v| *v));
    let small = by_name("small-order");
    assert!(small.len() >= 100, "{} small-order cases", small.len());
    assert!(
        small.iter().all(|v| *v),
        "ZIP 215 accepts small-order A and R with s = 0"
    );
    assert!(by_name("mixed-order").iter().all(|v| *v));
    for refused in [
        "s + l",
        "wrong message",
        "R off the curve",
        "key off the curve",
    ] {
        assert_eq!(by_name(refused), vec![false], "{refused}");
    }

    // Each case alone in a batch, next to honest signatures, and all of
    // them together in several orders: the verdict is always its own.
    for (i, case) in cases.iter().enumerate() {
        assert_eq!(
            batch_verdicts(vec![case.check(Rule::Zip215)], i as u64),
            vec![single[i]],
            "{} alone",
            case.what
        );
        let mut with_honest: Vec<Check> =
            cases[..4].iter().map(|c| c.check(Rule::Zip215)).collect();
        with_honest.push(case.check(Rule::Zip215));
        let verdicts = batch_verdicts(with_honest, 1_000 + i as u64);
        assert_eq!(verdicts[..4], [true; 4], "honest next to {}", case.what);
        assert_eq!(verdicts[4], single[i], "{} among honest", case.what);
    }
    let mut order: Vec<usize> = (0..cases.len()).collect();
    for round in 0..4u64 {
        let all: Vec<Check> = order
            .iter()
            .map(|&i| cases[i].check(Rule::Zip215))
            .collect();
        let verdicts = batch_verdicts(all, 2_000 + round);
        for (pos, &i) in order.iter().enumerate() {
            assert_eq!(
                verdicts[pos], single[i],
                "{} in batch {round}",
                cases[i].what
            );
        }
        // The batch equation itself (not the one-by-one fallback): it
        // passes for every set of signatures that pass alone, crafted ones
        // included, and fails as soon as one that fails alone is in it.
        let passing: Vec<Check> = order
            .iter()
            .filter(|&&i| single[i])
            .map(|&i| cases[i].check(Rule::Zip215))
            .collect();
        assert!(Batch::new(passing.clone(), [round as u8; 32]).passes_together());
        for (i, case) in cases.iter().enumerate().filter(|(i, _)| !single[*i]) {
            let mut with_bad = passing.clone();
            with_bad.insert(i % with_bad.len(), case.check(Rule::Zip215));
            assert!(
                !Batch::new(with_bad, [round as u8; 32]).passes_together(),
                "{} hidden in a batch",
                case.what
            );
        }
        order.reverse();
        order.rotate_left(7);
    }
}

#[test]
fn the_strict_rule_of_version_1_refuses_what_it_always_refused() {
    // Version 1 tokens keep RFC 8032 strict verification: the crafted
    // signatures ZIP 215 accepts are refused, alone and in a batch, so
    // members that have not upgraded and members that have agree on them.
    let cases = cases();
    let mut checks = Vec::new();
    for case in &cases {
        let Some(check) = case.strict() else {
            continue;
        };
        let expected = VerifyingKey::from_bytes(&case.key).is_ok_and(|k| {
            k.verify_strict(
                &case.message,
                &ed25519_dalek::Signature::from_bytes(&case.signature),
            )
            .is_ok()
        });
        assert_eq!(check.verify(), expected, "{}", case.what);
        if case.what.starts_with("honest") {
            assert!(expected, "{}", case.what);
        }
        if case.what.starts_with("small-order") || case.what.starts_with("mixed-order R") {
            assert!(!expected, "strict accepts {}", case.what);
        }
        checks.push((check, expected));
    }
    let (checks, expected): (Vec<Check>, Vec<bool>) = checks.into_iter().unzip();
    assert_eq!(batch_verdicts(checks, 9), expected);
}

#[test]
fn a_batch_split_for_threads_gives_the_same_verdicts() {
    let cases = cases();
    let checks: Vec<Check> = cases.iter().map(|c| c.check(Rule::Zip215)).collect();
    let whole = batch_verdicts(checks.clone(), 5);
    for parts in [1, 2, 3, 7, 1_000] {
        let mut seed = [0u8; 32];
        rng(parts as u64).fill_bytes(&mut seed);
        let pieces = Batch::new(checks.clone(), seed).split(parts);
        assert!(pieces.len() <= parts.max(1));
        assert_eq!(pieces.iter().map(Batch::len).sum::<usize>(), checks.len());
        let split: Vec<bool> = pieces.iter().flat_map(Batch::verdicts).collect();
        assert_eq!(split, whole, "split in {parts}");
    }
    assert!(Batch::new(Vec::new(), [0; 32]).split(4).is_empty());
}
