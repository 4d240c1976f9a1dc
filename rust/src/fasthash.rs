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

/// A 128-bit digest of `bytes` under this process's random keys: two
/// independent multiply-rotate lanes over every 8-byte word (they run side by
/// side, ~0.1 ms for 400 KB). For memos of a node's own encoded state, where a
/// match means "same bytes" without keeping the bytes: the keys are not known
/// to peers, so they cannot choose names or metadata that collide.
pub fn digest128(bytes: &[u8]) -> u128 {
    static KEYS: std::sync::OnceLock<[u64; 2]> = std::sync::OnceLock::new();
    let [ka, kb] = *KEYS.get_or_init(|| {
        let mut seed = [0u8; 16];
        // Without an entropy source, fixed keys: still a digest, only not secret.
        let _ = getrandom::getrandom(&mut seed);
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&seed[..8]);
        b.copy_from_slice(&seed[8..]);
        [u64::from_le_bytes(a) | 1, u64::from_le_bytes(b) | 1]
    });
    const KA: u64 = 0x9e37_79b9_7f4a_7c15;
    const KB: u64 = 0xc2b2_ae3d_27d4_eb4f;
    let (mut a, mut b) = (ka, kb ^ bytes.len() as u64);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let w = u64::from_le_bytes(w);
        a = (a ^ w).wrapping_mul(KA).rotate_left(29);
        b = (b ^ w.rotate_left(32)).wrapping_mul(KB).rotate_left(31);
    }
    let rest = chunks.remainder();
    let mut w = [0u8; 8];
    w[..rest.len()].copy_from_slice(rest);
    let w = u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59);
    a = (a ^ w).wrapping_mul(KA).rotate_left(29);
    b = (b ^ w).wrapping_mul(KB).rotate_left(31);
    let mix = |h: u64, k: u64| {
        let h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd) ^ k;
        (h ^ (h >> 29)).wrapping_mul(0xc4ce_b9fe_1a85_ec53) ^ (h >> 32)
    };
    u128::from(mix(a, kb)) << 64 | u128::from(mix(b, ka))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn digest_tells_apart_any_one_changed_byte() {
        let base: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let d = digest128(&base);
        assert_eq!(d, digest128(&base.clone()));
        let mut seen = HashSet::new();
        seen.insert(d);
        for i in 0..base.len() {
            let mut x = base.clone();
            x[i] ^= 1;
            assert!(seen.insert(digest128(&x)), "byte {i}");
        }
        // Length counts, even when the extra bytes are zero.
        for n in 0..24 {
            assert!(seen.insert(digest128(&vec![0u8; n])), "{n} zero bytes");
        }
    }

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
