//! A fixed, fast hasher for the machines' internal maps (broadcast queues,
//! table groups): keys are short byte strings and integers. The standard
//! SipHash showed up at ~3% of the simulator's time; this one costs a multiply
//! per 8 bytes. It is fixed (no per-process keys), so iteration order, and
//! with it a simulated run, is the same every time. Not a defence against
//! chosen collisions: the keys come from cluster peers, which memberlist trusts
//! anyway (a collision costs a compare, not correctness).

use std::hash::{BuildHasherDefault, Hasher};

/// FxHash-style word hasher with a final mix.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl FastHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(K).rotate_left(26);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        let h = self.0;
        (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (h >> 32)
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// `BuildHasher` for `HashMap`/`hashbrown::HashMap`.
pub type FastBuild = BuildHasherDefault<FastHasher>;

/// The hash of one value with [`FastHasher`].
pub fn hash_one<T: std::hash::Hash + ?Sized>(v: &T) -> u64 {
    let mut h = FastHasher::default();
    v.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn fixed_and_spread() {
        assert_eq!(hash_one("k1"), hash_one("k1"));
        assert_ne!(hash_one("k1"), hash_one("k2"));
        // Short keys that differ in one place land in different buckets.
        let low: HashSet<u64> = (0..10_000)
            .map(|i| hash_one(&format!("k{i}")) & 0xffff)
            .collect();
        assert!(low.len() > 8_000, "{}", low.len());
        let top: HashSet<u64> = (0..10_000u64).map(|i| hash_one(&i) >> 57).collect();
        assert_eq!(top.len(), 128);
    }
}
