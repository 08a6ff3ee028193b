//! Pacing what the engine reports to the UI.
//!
//! Every update of the state renders the page, and a catch-up stores a
//! round of messages every few milliseconds: rendering each one would spend
//! the page's time on rows about to scroll away. So the UI is given
//! reports at most once per [`SHOW_EVERY_MS`] while they keep coming: a
//! report after a quiet spell is shown at once (a new message appears
//! without delay), and those that follow within the interval are gathered
//! and shown together at its end, in the order they came.

use crate::state::Action;

/// The shortest time between two updates of the UI while reports keep
/// coming.
pub const SHOW_EVERY_MS: u64 = 50;

/// Reports not shown yet, and when the last were.
#[derive(Debug, Default)]
pub struct Pacer {
    waiting: Vec<Action>,
    shown_at: Option<u64>,
}

impl Pacer {
    /// Reports came at `now`: everything to show now (what waited first),
    /// or nothing if they must wait until [`Pacer::due`].
    pub fn add(&mut self, now: u64, reports: Vec<Action>) -> Vec<Action> {
        self.waiting.extend(reports);
        match self.due() {
            Some(due) if due > now => Vec::new(),
            _ => self.take(now),
        }
    }

    /// When what waits is to be shown (`None`: nothing waits).
    pub fn due(&self) -> Option<u64> {
        if self.waiting.is_empty() {
            return None;
        }
        Some(
            self.shown_at
                .map_or(0, |at| at.saturating_add(SHOW_EVERY_MS)),
        )
    }

    /// Everything that waits, to show now (before any other action, so
    /// that nothing is seen out of order).
    pub fn take(&mut self, now: u64) -> Vec<Action> {
        if !self.waiting.is_empty() {
            self.shown_at = Some(now);
        }
        std::mem::take(&mut self.waiting)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn error(n: u32) -> Action {
        Action::Error(format!("report {n}"))
    }

    #[test]
    fn a_report_after_a_quiet_spell_is_shown_at_once() {
        let mut p = Pacer::default();
        assert_eq!(p.add(1_000, vec![error(1)]), vec![error(1)]);
        assert_eq!(p.due(), None);
        // Long after: at once again.
        let later = 1_000 + SHOW_EVERY_MS;
        assert_eq!(p.add(later, vec![error(2)]), vec![error(2)]);
    }

    #[test]
    fn reports_that_keep_coming_are_shown_together_in_order() {
        let mut p = Pacer::default();
        assert_eq!(p.add(1_000, vec![error(1)]), vec![error(1)]);
        assert!(p.add(1_010, vec![error(2)]).is_empty());
        assert!(p.add(1_020, vec![error(3), error(4)]).is_empty());
        assert_eq!(p.due(), Some(1_000 + SHOW_EVERY_MS));
        assert_eq!(
            p.take(1_000 + SHOW_EVERY_MS),
            vec![error(2), error(3), error(4)]
        );
        assert_eq!(p.due(), None);
        // The next within the interval after that waits again.
        assert!(p.add(1_060, vec![error(5)]).is_empty());
        assert_eq!(p.due(), Some(1_050 + SHOW_EVERY_MS));
    }

    #[test]
    fn nothing_waiting_is_nothing_to_show() {
        let mut p = Pacer::default();
        assert!(p.add(5, Vec::new()).is_empty());
        assert_eq!(p.due(), None);
        assert!(p.take(5).is_empty());
        // Taking nothing does not start an interval.
        assert_eq!(p.add(6, vec![error(1)]), vec![error(1)]);
    }
}
