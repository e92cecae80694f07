//! Keyboard-wedge scanners: most store scanners "type" what they read and
//! press Enter. This pure state machine, fed key events with their times
//! (from the UI's clock: nothing here reads one), tells a scanner burst from
//! a person typing by the gaps between keys, and recognises magnetic-stripe
//! tracks (ISO/IEC 7813 track 1 `%B...^...^...?` and track 2 `;...=...?`).
//! Both apps use it: the kiosk listens for scans on every screen, the tablet
//! in its search box.

/// One key press, `at_ms` on a monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEvent {
    pub at_ms: u64,
    pub key: Key,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    /// Enter or Tab: the usual scanner suffixes.
    Enter,
    Tab,
    /// Anything else (arrows, Backspace, modifiers): a person, not a scanner.
    Other,
}

/// Knobs, with defaults that fit USB HID scanners (a key every 2-20 ms)
/// against fast human typing (rarely under 60 ms between keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WedgeConfig {
    /// Largest gap between two keys of one burst.
    pub max_gap_ms: u64,
    /// Share of gaps allowed above `max_gap_ms` (a USB hiccup), in percent.
    pub slow_gaps_percent: u32,
    /// Shortest and longest burst taken for a scan.
    pub min_len: usize,
    pub max_len: usize,
    /// A burst with no suffix ends after this much silence (see [`WedgeParser::idle`]).
    pub idle_ms: u64,
}

impl Default for WedgeConfig {
    fn default() -> Self {
        Self {
            max_gap_ms: 35,
            slow_gaps_percent: 10,
            min_len: 4,
            max_len: 512,
            idle_ms: 80,
        }
    }
}

/// What a finished burst was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A scanner read a barcode or QR code: its text, exactly.
    Scanned(String),
    /// A magnetic stripe was swiped.
    Swiped(Magstripe),
    /// A person typed this (hand it to the focused field, never to identification).
    Typed(String),
}

/// The fields of a loyalty card's stripe that identification uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magstripe {
    /// The primary account number: the loyalty card number.
    pub card_number: String,
    /// Track 1's name field (`SURNAME/GIVEN`), when track 1 was read.
    pub name: Option<String>,
    /// `YYMM`, when present.
    pub expiry: Option<String>,
    /// The track text as read.
    pub track: String,
}

/// Collects key events and says what each finished burst was.
#[derive(Debug, Clone, Default)]
pub struct WedgeParser {
    config: WedgeConfig,
    text: String,
    /// Gaps between consecutive keys of the current burst.
    gaps: Vec<u64>,
    last_at: Option<u64>,
    /// A key no scanner sends was pressed in this burst.
    human: bool,
}

impl WedgeParser {
    pub fn new(config: WedgeConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Feeds one key; returns the burst it finished, if any. A pause longer
    /// than `idle_ms` before this key first finishes the burst before it.
    pub fn feed(&mut self, event: KeyEvent) -> Option<Input> {
        let finished_by_pause = self.idle(event.at_ms);
        let finished = match event.key {
            Key::Enter | Key::Tab => {
                self.note_time(event.at_ms);
                self.finish()
            }
            Key::Char(c) => {
                self.note_time(event.at_ms);
                if self.text.chars().count() < self.config.max_len {
                    self.text.push(c);
                } else {
                    self.human = true;
                }
                None
            }
            Key::Other => {
                self.note_time(event.at_ms);
                self.human = true;
                None
            }
        };
        // At most one of the two: a pause empties the buffer before this key.
        finished_by_pause.or(finished)
    }

    /// Ends a burst without a suffix once `now_ms` is `idle_ms` after its last key.
    pub fn idle(&mut self, now_ms: u64) -> Option<Input> {
        match self.last_at {
            Some(last)
                if now_ms.saturating_sub(last) > self.config.idle_ms && !self.text.is_empty() =>
            {
                self.finish()
            }
            Some(last) if now_ms.saturating_sub(last) > self.config.idle_ms => {
                self.reset();
                None
            }
            _ => None,
        }
    }

    fn note_time(&mut self, at_ms: u64) {
        if let Some(last) = self.last_at {
            self.gaps.push(at_ms.saturating_sub(last));
        }
        self.last_at = Some(at_ms);
    }

    fn reset(&mut self) {
        self.text.clear();
        self.gaps.clear();
        self.last_at = None;
        self.human = false;
    }

    fn finish(&mut self) -> Option<Input> {
        let text = std::mem::take(&mut self.text);
        let scanner_like = !self.human && self.is_fast(text.chars().count());
        self.reset();
        if text.is_empty() {
            return None;
        }
        Some(if scanner_like {
            match parse_magstripe(&text) {
                Some(stripe) => Input::Swiped(stripe),
                None => Input::Scanned(text),
            }
        } else {
            Input::Typed(text)
        })
    }

    /// Long enough, and (nearly) every gap scanner-fast.
    fn is_fast(&self, len: usize) -> bool {
        if len < self.config.min_len || len > self.config.max_len || self.gaps.is_empty() {
            return false;
        }
        let slow = self
            .gaps
            .iter()
            .filter(|g| **g > self.config.max_gap_ms)
            .count();
        slow * 100 <= self.gaps.len() * self.config.slow_gaps_percent as usize
    }
}

/// Parses a magnetic-stripe track 1 (`%B<PAN>^<NAME>^<YYMM>...?`) or track 2
/// (`;<PAN>=<YYMM>...?`), as a wedge reader types them; both tracks in one
/// swipe are accepted (track 1 first). `None` for anything else.
pub fn parse_magstripe(text: &str) -> Option<Magstripe> {
    let text = text.trim_end_matches(['\r', '\n']);
    if let Some(rest) = text.strip_prefix("%B") {
        let end = rest.find('?')?;
        let mut fields = rest[..end].splitn(3, '^');
        let pan = fields.next()?;
        let name = fields.next()?;
        let data = fields.next()?;
        if !is_pan(pan) {
            return None;
        }
        let expiry = data
            .get(..4)
            .filter(|e| e.bytes().all(|b| b.is_ascii_digit()));
        let name = name.trim();
        return Some(Magstripe {
            card_number: pan.to_owned(),
            name: (!name.is_empty()).then(|| name.to_owned()),
            expiry: expiry.map(str::to_owned),
            track: text.to_owned(),
        });
    }
    if let Some(rest) = text.strip_prefix(';') {
        let end = rest.find('?')?;
        let (pan, data) = rest[..end].split_once('=')?;
        if !is_pan(pan) {
            return None;
        }
        let expiry = data
            .get(..4)
            .filter(|e| e.bytes().all(|b| b.is_ascii_digit()));
        return Some(Magstripe {
            card_number: pan.to_owned(),
            name: None,
            expiry: expiry.map(str::to_owned),
            track: text.to_owned(),
        });
    }
    None
}

/// 8 to 19 digits, as ISO/IEC 7812 account numbers are.
fn is_pan(text: &str) -> bool {
    (8..=19).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// Types `text` starting at `start`, one key every `gap` ms, then the suffix.
    fn burst(text: &str, start: u64, gap: u64, suffix: Option<Key>) -> Vec<KeyEvent> {
        let mut at = start;
        let mut events: Vec<KeyEvent> = text
            .chars()
            .map(|c| {
                let event = KeyEvent {
                    at_ms: at,
                    key: Key::Char(c),
                };
                at += gap;
                event
            })
            .collect();
        if let Some(key) = suffix {
            events.push(KeyEvent { at_ms: at, key });
        }
        events
    }

    fn run(parser: &mut WedgeParser, events: &[KeyEvent]) -> Vec<Input> {
        events.iter().filter_map(|e| parser.feed(*e)).collect()
    }

    #[test]
    fn a_fast_burst_ending_in_enter_is_a_scan() {
        let mut parser = WedgeParser::default();
        let got = run(
            &mut parser,
            &burst("2947003289668", 1_000, 8, Some(Key::Enter)),
        );
        assert_eq!(got, vec![Input::Scanned("2947003289668".into())]);
    }

    #[test]
    fn a_person_typing_the_same_digits_is_not() {
        let mut parser = WedgeParser::default();
        let got = run(
            &mut parser,
            &burst("2947003289668", 1_000, 70, Some(Key::Enter)),
        );
        assert_eq!(got, vec![Input::Typed("2947003289668".into())]);
    }

    #[test]
    fn one_usb_hiccup_is_tolerated_many_are_not() {
        let mut events = burst("AISLE1.ABCDEFGHIJKLMNOPQRSTUVWXYZ", 0, 5, Some(Key::Enter));
        for event in events.iter_mut().skip(10) {
            event.at_ms += 50;
        }
        assert!(matches!(
            run(&mut WedgeParser::default(), &events)[..],
            [Input::Scanned(_)]
        ));
        // Every gap a little over the limit: a fast typist, not a scanner.
        let slow = burst("AISLE1.ABCDEFGHIJKLMNOPQRSTUVWXYZ", 0, 45, Some(Key::Enter));
        assert!(matches!(
            run(&mut WedgeParser::default(), &slow)[..],
            [Input::Typed(_)]
        ));
    }

    #[test]
    fn editing_keys_mean_a_person() {
        let mut events = burst("12345678", 0, 5, None);
        events.push(KeyEvent {
            at_ms: 40,
            key: Key::Other,
        });
        events.extend(burst("9", 45, 5, Some(Key::Enter)));
        assert_eq!(
            run(&mut WedgeParser::default(), &events),
            vec![Input::Typed("123456789".into())]
        );
    }

    #[test]
    fn short_bursts_are_typing_and_suffixless_bursts_end_on_silence() {
        let mut parser = WedgeParser::default();
        assert_eq!(
            run(&mut parser, &burst("ab", 0, 5, Some(Key::Enter))),
            vec![Input::Typed("ab".into())]
        );
        assert_eq!(
            run(&mut parser, &burst("0123456789", 1_000, 6, None)),
            vec![]
        );
        assert_eq!(parser.idle(1_060), None, "not silent long enough yet");
        assert_eq!(
            parser.idle(1_200),
            Some(Input::Scanned("0123456789".into()))
        );
        // The next key after a pause starts a new burst and first ends the old one.
        let mut events = burst("11112222", 5_000, 5, None);
        events.extend(burst("33334444", 6_000, 5, Some(Key::Tab)));
        assert_eq!(
            run(&mut parser, &events),
            vec![
                Input::Scanned("11112222".into()),
                Input::Scanned("33334444".into())
            ]
        );
    }

    #[test]
    fn magstripe_tracks() {
        let track2 = ";2947003289668=28121010000?";
        let both = "%B2947003289668^MARTIN/ZOE^2812101000000?;2947003289668=2812101?";
        let mut parser = WedgeParser::default();
        assert_eq!(
            run(&mut parser, &burst(track2, 0, 3, Some(Key::Enter))),
            vec![Input::Swiped(Magstripe {
                card_number: "2947003289668".into(),
                name: None,
                expiry: Some("2812".into()),
                track: track2.into(),
            })]
        );
        assert_eq!(
            parse_magstripe(both),
            Some(Magstripe {
                card_number: "2947003289668".into(),
                name: Some("MARTIN/ZOE".into()),
                expiry: Some("2812".into()),
                track: both.into(),
            })
        );
        for bad in [
            "",
            ";",
            ";123=?",
            ";abcdefghij=2812?",
            "%B123^X^2812?",
            "%B2947003289668^NAME",
            ";2947003289668=2812",
        ] {
            assert_eq!(parse_magstripe(bad), None, "{bad:?}");
        }
    }

    /// Property: whatever arrives (any keys, any times, out of order too),
    /// the parser never panics, never returns an empty input, every scan is
    /// at least `min_len` characters, and the characters it returns are
    /// exactly the characters typed (none lost, none invented).
    #[test]
    fn property_any_key_stream_is_handled() {
        let mut rng = SplitMix64::new(42);
        for _ in 0..2_000 {
            let mut parser = WedgeParser::default();
            let mut at = rng.next_u64() % 1_000;
            let mut typed = String::new();
            let mut returned = String::new();
            for _ in 0..(rng.next_u64() % 200) {
                at = match rng.next_u64() % 10 {
                    0 => at.saturating_sub(rng.next_u64() % 50),
                    1..=5 => at + rng.next_u64() % 10,
                    _ => at + rng.next_u64() % 300,
                };
                let key = match rng.next_u64() % 12 {
                    0 => Key::Enter,
                    1 => Key::Tab,
                    2 => Key::Other,
                    _ => Key::Char(
                        char::from_u32((rng.next_u64() % 0x2FF) as u32 + 0x20).unwrap_or('x'),
                    ),
                };
                if let Key::Char(c) = key {
                    typed.push(c);
                }
                if let Some(input) = parser.feed(KeyEvent { at_ms: at, key }) {
                    check(&input, &mut returned);
                }
            }
            if let Some(input) = parser.idle(at + 10_000) {
                check(&input, &mut returned);
            }
            assert_eq!(returned, typed);
        }

        fn check(input: &Input, returned: &mut String) {
            match input {
                Input::Scanned(text) => {
                    assert!(text.chars().count() >= WedgeConfig::default().min_len);
                    returned.push_str(text);
                }
                Input::Typed(text) => {
                    assert!(!text.is_empty());
                    returned.push_str(text);
                }
                Input::Swiped(stripe) => {
                    assert!(is_pan(&stripe.card_number));
                    returned.push_str(&stripe.track);
                }
            }
        }
    }
}
