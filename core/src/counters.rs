//! Counters: every datagram, token and event the node does not take is
//! dropped for one [`DropReason`] and counted, never silently.
//!
//! The reasons are one table (the `drop_reasons!` list below): each line
//! is a reason's variant, its name in logs and JSON, and what it means.
//! Adding a reason is adding a line there and counting it where it
//! happens; [`Counters`] keeps one slot per reason, and
//! [`Counters::dropped`] sums them all.
//!
//! The errors of the layers below convert into reasons (`From` impls at the
//! end of this module), so a layer that learns a new way to fail names its
//! reason here once.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::history::Refused;
use crate::seal::SealError;
use crate::wire::{FragDrop, WireError};

macro_rules! drop_reasons {
    ($( $(#[doc = $doc:literal])+ $variant:ident => $name:literal, )+) => {
        /// Why something was dropped.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DropReason {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl DropReason {
            /// Every reason, in table order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)+];

            /// The reason's name in logs and JSON (`snake_case`).
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$variant => $name,)+
                }
            }
        }
    };
}

drop_reasons! {
    /// Larger than any datagram accepted.
    Oversized => "oversized",
    /// Not JSON, or not a known shape.
    Malformed => "malformed",
    /// An unknown wire version.
    BadVersion => "bad_version",
    /// A bad fragment header.
    BadFragment => "bad_fragment",
    /// A token longer than any token we make.
    TokenTooLarge => "token_too_large",
    /// A fragment received twice.
    FragDuplicate => "frag_duplicate",
    /// A fragment disagreeing with its siblings.
    FragInconsistent => "frag_inconsistent",
    /// Partial tokens dropped on timeout or to stay within bounds.
    FragEvicted => "frag_evicted",
    /// For a room this node is not in.
    UnknownRoom => "unknown_room",
    /// Does not decrypt with the room key.
    DecryptFailed => "decrypt_failed",
    /// Decrypts, but the author's signature does not verify.
    BadSignature => "bad_signature",
    /// Decrypts, but the sealed contents are malformed or break a limit.
    BadPayload => "bad_payload",
    /// A control message sealed by someone other than its sender.
    ForgedSender => "forged_sender",
    /// A control message replayed (stamp not fresh).
    Replayed => "replayed",
    /// A new member while the member table is full of live members.
    MembersFull => "members_full",
    /// An event already delivered or waiting.
    DuplicateEvent => "duplicate_events",
    /// A different event under an id already delivered.
    Equivocation => "equivocations",
    /// An event with sequence number 0 or far ahead.
    SeqOutOfRange => "seq_out_of_range",
    /// An event with malformed dependencies.
    BadDeps => "bad_deps",
    /// An event from an author beyond the room's author limit.
    TooManyAuthors => "too_many_authors",
    /// An event refused because the pending buffer was full.
    BufferFull => "buffer_full",
    /// A pending event refused on delivery for breaking the Lamport rule.
    BadLamport => "bad_lamport",
    /// An event stamped too far past this node's clock, not taken yet.
    FromTheFuture => "from_the_future",
    /// A pending event refused on delivery: its author is over quota.
    OverQuota => "over_quota",
    /// Pending events evicted (too old, or to make room).
    PendingEvicted => "pending_evicted",
    /// A signaling message from an address that is not a configured
    /// server, or that fails its checks.
    BadSignal => "bad_signal",
    /// A signaling answer that echoes no request of ours (forged, or too
    /// old).
    UnboundAnswer => "unbound_answer",
    /// A signaling entry whose membership proof does not hold: made by
    /// someone without the room key.
    FakeEntry => "fake_entry",
    /// A signaling answer from a server whose key is pinned, without that
    /// key's signature.
    BadServerSignature => "bad_server_signature",
    /// A control message from an address its sender has not proved: used
    /// only to answer and challenge that address (see [`crate::path`]).
    Unproved => "unproved_address",
    /// An answer to an address not proved, withheld: it would have sent
    /// the address more than three times what came from it.
    AmplificationLimit => "amplification_limit",
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = DropReason::ALL.len();
}

/// What the node took in and what it dropped, by reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams received.
    pub datagrams: u64,
    /// Repair pushes cut short by the per-peer rate budget (not a drop:
    /// the rest follows later).
    pub rate_limited: u64,
    /// Requests a signaling server refused.
    pub signal_rejected: u64,
    /// Tokens of delivered events the host's store did not give back
    /// when asked ([`crate::Output::Read`]): a store that lost rows.
    pub missing_tokens: u64,
    drops: [u64; DropReason::COUNT],
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            datagrams: 0,
            rate_limited: 0,
            signal_rejected: 0,
            missing_tokens: 0,
            drops: [0; DropReason::COUNT],
        }
    }
}

impl Counters {
    /// Drops for `reason` so far.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Drops for any reason.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// The reasons with at least one drop, and their counts.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }

    /// Counts one drop.
    pub(crate) fn count(&mut self, reason: DropReason) {
        self.add(reason, 1);
    }

    /// Counts `n` drops.
    pub(crate) fn add(&mut self, reason: DropReason, n: u64) {
        let slot = &mut self.drops[reason as usize];
        *slot = slot.saturating_add(n);
    }
}

/// `{"datagrams": n, "rate_limited": n, "signal_rejected": n, "dropped": n,
/// "<reason>": n, …}`, every reason included.
impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4 + DropReason::COUNT))?;
        map.serialize_entry("datagrams", &self.datagrams)?;
        map.serialize_entry("rate_limited", &self.rate_limited)?;
        map.serialize_entry("signal_rejected", &self.signal_rejected)?;
        map.serialize_entry("dropped", &self.dropped())?;
        for reason in DropReason::ALL {
            map.serialize_entry(reason.name(), &self.get(*reason))?;
        }
        map.end()
    }
}

impl From<WireError> for DropReason {
    fn from(e: WireError) -> Self {
        match e {
            WireError::TooLarge => DropReason::Oversized,
            WireError::Malformed => DropReason::Malformed,
            WireError::Version => DropReason::BadVersion,
            WireError::BadFragment => DropReason::BadFragment,
            WireError::TokenTooLarge => DropReason::TokenTooLarge,
        }
    }
}

impl From<FragDrop> for DropReason {
    fn from(e: FragDrop) -> Self {
        match e {
            FragDrop::Duplicate => DropReason::FragDuplicate,
            FragDrop::Inconsistent => DropReason::FragInconsistent,
            FragDrop::TooLarge => DropReason::TokenTooLarge,
        }
    }
}

impl From<&SealError> for DropReason {
    fn from(e: &SealError) -> Self {
        match e {
            SealError::BadSignature => DropReason::BadSignature,
            SealError::TokenTooLarge { .. } => DropReason::TokenTooLarge,
            SealError::Decrypt | SealError::PayloadTooLarge { .. } => DropReason::DecryptFailed,
            SealError::Malformed(_) => DropReason::BadPayload,
        }
    }
}

impl From<Refused> for DropReason {
    fn from(e: Refused) -> Self {
        match e {
            Refused::Duplicate => DropReason::DuplicateEvent,
            Refused::Equivocation => DropReason::Equivocation,
            Refused::SeqOutOfRange => DropReason::SeqOutOfRange,
            Refused::BadDeps => DropReason::BadDeps,
            Refused::TooManyAuthors => DropReason::TooManyAuthors,
            Refused::BufferFull => DropReason::BufferFull,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_reason_has_its_own_slot_and_name() {
        let names: BTreeSet<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::COUNT);
        let mut c = Counters::default();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            c.add(*r, i as u64 + 1);
        }
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(c.get(*r), i as u64 + 1, "{}", r.name());
        }
        let n = DropReason::COUNT as u64;
        assert_eq!(c.dropped(), n * (n + 1) / 2);
        assert_eq!(c.nonzero().count(), DropReason::COUNT);
    }

    #[test]
    fn counters_serialise_as_a_flat_table() {
        let mut c = Counters {
            datagrams: 7,
            ..Counters::default()
        };
        c.count(DropReason::Malformed);
        c.count(DropReason::Malformed);
        c.count(DropReason::Replayed);
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json["datagrams"], 7);
        assert_eq!(json["dropped"], 3);
        assert_eq!(json["malformed"], 2);
        assert_eq!(json["replayed"], 1);
        assert_eq!(json["bad_signal"], 0);
    }
}
