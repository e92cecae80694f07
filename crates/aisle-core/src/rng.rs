//! A small deterministic random number generator (SplitMix64).
//!
//! Derived data (demo identities, generated datasets, the demo subset) must be
//! identical on every machine and every version of Aisle for a given seed, so
//! it does not depend on an external crate's algorithm choices.

/// FNV-1a, 64 bit: a stable, platform-independent hash for checksums and seeding.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// A fast hasher for integer keys (the Fx multiply-rotate scheme). Import
/// files are local and trusted, so hash flooding is not a concern there,
/// while SipHash was a measurable share of import time.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_i64(&mut self, value: i64) {
        self.write_u64(value as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` keyed by ids, hashed with [`IdHasher`].
pub type IdMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;
/// A `HashSet` of ids, hashed with [`IdHasher`].
pub type IdSet<K> = std::collections::HashSet<K, std::hash::BuildHasherDefault<IdHasher>>;

#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for one entity, independent of the order entities are visited in.
    pub fn for_key(seed: u64, domain: &str, key: u64) -> Self {
        let mut rng = Self::new(seed ^ fnv1a64(domain.as_bytes()));
        rng.state ^= rng.next_u64() ^ key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        rng.next_u64();
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias worth caring about for n << 2^64.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Broken input for parsers of untrusted text (tests): printable ASCII
    /// noise of up to `noise_len` characters, a cut-off `valid`, or `valid`
    /// with one character from `extra` inserted somewhere; a third each.
    #[cfg(test)]
    pub(crate) fn garbled(&mut self, valid: &str, noise_len: u64, extra: &[u8]) -> String {
        match self.next_u64() % 3 {
            0 => (0..self.next_u64() % noise_len)
                .map(|_| char::from_u32((self.next_u64() % 0x7f) as u32).unwrap_or(' '))
                .collect(),
            1 => valid
                .chars()
                .take((self.next_u64() % valid.len() as u64) as usize)
                .collect(),
            _ => {
                let mut text = valid.to_owned();
                let at = (self.next_u64() % valid.len() as u64) as usize;
                text.insert(at, char::from(*self.pick(extra)));
                text
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_known_first_value() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        let first = a.next_u64();
        assert_eq!(first, b.next_u64());
        // Reference value of SplitMix64 seeded with 42.
        assert_eq!(first, 0xBDD7_3226_2FEB_6E95);
        assert_ne!(
            SplitMix64::for_key(1, "name", 7).next_u64(),
            SplitMix64::for_key(1, "name", 8).next_u64()
        );
        assert_ne!(
            SplitMix64::for_key(1, "name", 7).next_u64(),
            SplitMix64::for_key(2, "name", 7).next_u64()
        );
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SplitMix64::new(1);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            seen[rng.below(7) as usize] += 1;
        }
        assert!(seen.iter().all(|n| (800..1200).contains(n)), "{seen:?}");
    }
}
