//! When a camera read counts: the same text in two consecutive frames.
//!
//! One frame can hold a misread (a reflection, a half-covered code); two
//! frames in a row agreeing cannot happen by chance for a signed member code
//! and almost never for a check-digit one. After that the text still has to
//! pass [`super::identify`] (check digit or signature, replay cache, known
//! to the replica). A code held in front of the camera is accepted once, not
//! at every frame, until it has left the picture for a few frames.
//!
//! Pure: frames in, accepted texts out; the scan loop owns the camera.

use super::decode::Symbol;

/// Frames a code must be absent before the same text is accepted again.
pub const DEFAULT_REARM_FRAMES: u32 = 15;

#[derive(Debug, Clone)]
pub struct Confirmer {
    /// Texts read in the previous frame.
    previous: Vec<Symbol>,
    /// Accepted texts still in view (or gone for fewer than `rearm` frames):
    /// text, frames since last seen.
    held: Vec<(Symbol, u32)>,
    rearm: u32,
}

impl Default for Confirmer {
    fn default() -> Self {
        Self::new(DEFAULT_REARM_FRAMES)
    }
}

impl Confirmer {
    pub fn new(rearm_frames: u32) -> Self {
        Self {
            previous: Vec::new(),
            held: Vec::new(),
            rearm: rearm_frames.max(1),
        }
    }

    /// Feeds one frame's reads (empty when nothing was read); returns the
    /// symbols accepted with this frame.
    pub fn observe(&mut self, symbols: &[Symbol]) -> Vec<Symbol> {
        for (symbol, absent) in &mut self.held {
            if symbols.contains(symbol) {
                *absent = 0;
            } else {
                *absent += 1;
            }
        }
        let rearm = self.rearm;
        self.held.retain(|(_, absent)| *absent < rearm);
        let mut accepted = Vec::new();
        for symbol in symbols {
            let confirmed = self.previous.contains(symbol);
            let held = self.held.iter().any(|(s, _)| s == symbol);
            if confirmed && !held && !accepted.contains(symbol) {
                accepted.push(symbol.clone());
                self.held.push((symbol.clone(), 0));
            }
        }
        self.previous = symbols.to_vec();
        accepted
    }

    /// Forgets everything (the kiosk went back to its attract screen).
    pub fn reset(&mut self) {
        self.previous.clear();
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identify::decode::Symbology;

    fn qr(text: &str) -> Symbol {
        Symbol {
            symbology: Symbology::Qr,
            text: text.into(),
        }
    }

    #[test]
    fn two_consecutive_frames_accept_once_while_in_view() {
        let mut c = Confirmer::new(3);
        let a = qr("AISLE1:A");
        assert!(
            c.observe(std::slice::from_ref(&a)).is_empty(),
            "one frame is not enough"
        );
        assert_eq!(c.observe(std::slice::from_ref(&a)), vec![a.clone()]);
        for _ in 0..10 {
            assert!(
                c.observe(std::slice::from_ref(&a)).is_empty(),
                "held in view"
            );
        }
        // Gone for fewer frames than the re-arm count: still the same showing.
        c.observe(&[]);
        c.observe(&[]);
        c.observe(std::slice::from_ref(&a));
        assert!(c.observe(std::slice::from_ref(&a)).is_empty());
        // Gone long enough: shown again, accepted again.
        for _ in 0..3 {
            c.observe(&[]);
        }
        c.observe(std::slice::from_ref(&a));
        assert_eq!(c.observe(std::slice::from_ref(&a)), [a]);
    }

    #[test]
    fn a_read_interrupted_by_another_text_or_a_gap_is_not_confirmed() {
        let mut c = Confirmer::default();
        let (a, b) = (qr("A"), qr("B"));
        assert!(c.observe(std::slice::from_ref(&a)).is_empty());
        assert!(c.observe(std::slice::from_ref(&b)).is_empty());
        assert!(c.observe(std::slice::from_ref(&a)).is_empty());
        assert!(c.observe(&[]).is_empty());
        assert!(c.observe(std::slice::from_ref(&a)).is_empty());
        assert_eq!(c.observe(&[a.clone(), b.clone()]), vec![a.clone()]);
        assert_eq!(c.observe(std::slice::from_ref(&b)), vec![b]);
        c.reset();
        assert!(
            c.observe(std::slice::from_ref(&a)).is_empty(),
            "reset forgets"
        );
    }
}
