//! A map from string keys laid out for one cache miss per lookup: each slot
//! holds its key and value together in one 64-byte line (no separate control
//! bytes to read first), probed linearly in a table at most half full, and
//! the line a key starts at can be prefetched before the lookup.
//!
//! Why: every table event a simulated node receives is looked up in that
//! node's store, whose memory is cold (thousands of nodes share the caches).
//! A swiss table reads a control group and then a slot: two misses, one after
//! the other. Here the first probe is the key's own line, and a packet's
//! events can all be prefetched at once (`prefetch`) so that their misses
//! overlap instead of queueing.

use std::borrow::Borrow;
use std::hash::BuildHasher;

use crate::fasthash::FastBuild;

/// One slot, a cache line of its own.
#[derive(Debug, Clone)]
#[repr(align(64))]
struct Line<K, V>(Option<(K, V)>);

/// An open-addressing map keyed by anything that borrows as a `str`.
#[derive(Debug, Clone)]
pub struct StrMap<K, V> {
    /// A power of two long, or empty.
    slots: Vec<Line<K, V>>,
    len: usize,
}

impl<K, V> Default for StrMap<K, V> {
    fn default() -> Self {
        StrMap { slots: Vec::new(), len: 0 }
    }
}

fn hash(key: &str) -> u64 {
    FastBuild::default().hash_one(key)
}

impl<K: Borrow<str>, V> StrMap<K, V> {
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// Where `key` is (`Ok`) or the empty slot where it would go (`Err`);
    /// `Err(usize::MAX)` when the table has no slots.
    fn find(&self, key: &str) -> Result<usize, usize> {
        if self.slots.is_empty() {
            return Err(usize::MAX);
        }
        let mask = self.mask();
        let mut i = hash(key) as usize & mask;
        // At most half full, so an empty slot ends every probe.
        loop {
            match &self.slots[i].0 {
                None => return Err(i),
                Some((k, _)) if k.borrow() == key => return Ok(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes per slot: 64 when a key and its value fit one line together.
    #[cfg(test)]
    pub fn slot_bytes() -> usize {
        std::mem::size_of::<Line<K, V>>()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.get_key_value(key).map(|(_, v)| v)
    }

    pub fn get_key_value(&self, key: &str) -> Option<(&K, &V)> {
        let i = self.find(key).ok()?;
        self.slots[i].0.as_ref().map(|(k, v)| (k, v))
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let i = self.find(key).ok()?;
        self.slots[i].0.as_mut().map(|(_, v)| v)
    }

    /// Sets `key` to `value`; returns the value it replaces (the stored key
    /// is kept then, as `HashMap::insert` does).
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let free = match self.find(key.borrow()) {
            Ok(i) => return self.slots[i].0.as_mut().map(|(_, v)| std::mem::replace(v, value)),
            Err(i) if (self.len + 1) * 2 <= self.slots.len() => Some(i),
            // Full (or no slots yet): grow, then probe the new table.
            Err(_) => {
                self.grow();
                self.find(key.borrow()).err()
            }
        };
        if let Some(i) = free {
            self.slots[i].0 = Some((key, value));
            self.len += 1;
        }
        None
    }

    /// Takes `key` out. The entries after it in its run move back to fill
    /// the hole (backward shift), so that no probe needs a tombstone.
    pub fn remove_entry(&mut self, key: &str) -> Option<(K, V)> {
        let mut hole = self.find(key).ok()?;
        let out = self.slots[hole].0.take();
        self.len -= 1;
        let mask = self.mask();
        let mut j = (hole + 1) & mask;
        while let Some((k, _)) = &self.slots[j].0 {
            let home = hash(k.borrow()) as usize & mask;
            // The entry at `j` may fill the hole if the hole lies on its
            // probe path, from its home up to `j`.
            if hole.wrapping_sub(home) & mask < j.wrapping_sub(home) & mask {
                self.slots[hole].0 = self.slots[j].0.take();
                hole = j;
            }
            j = (j + 1) & mask;
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.slots.iter().filter_map(|l| l.0.as_ref().map(|(k, v)| (k, v)))
    }

    /// Asks the CPU to start loading the line `key`'s probe starts at (a
    /// hint only: nothing is read, and a wrong guess costs nothing but the
    /// bandwidth).
    pub fn prefetch(&self, key: &str) {
        if self.slots.is_empty() {
            return;
        }
        let i = hash(key) as usize & self.mask();
        crate::cache::prefetch(&self.slots[i]);
    }

    fn grow(&mut self) {
        let n = (self.slots.len() * 2).max(8);
        let old = std::mem::replace(&mut self.slots, (0..n).map(|_| Line(None)).collect());
        for (k, v) in old.into_iter().filter_map(|l| l.0) {
            if let Err(i) = self.find(k.borrow()) {
                self.slots[i].0 = Some((k, v));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32),
        Remove(u8),
    }

    fn key(k: u8) -> String {
        // Some keys share a prefix, some are long: probes collide and runs form.
        format!("key-{}-{}", k % 7, "x".repeat(usize::from(k % 5) * 9)) + &k.to_string()
    }

    proptest! {
        /// Any sequence of inserts and removals leaves the same map as an
        /// ordered map, and every key is found where a lookup looks.
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec(
            prop_oneof![
                (any::<u8>(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
                any::<u8>().prop_map(Op::Remove),
            ],
            0..400,
        )) {
            let mut m: StrMap<String, u32> = StrMap::default();
            let mut want: BTreeMap<String, u32> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(m.insert(key(k), v), want.insert(key(k), v)),
                    Op::Remove(k) => prop_assert_eq!(m.remove_entry(&key(k)), want.remove_entry(&key(k))),
                }
                prop_assert_eq!(m.len(), want.len());
            }
            let mut got: Vec<(String, u32)> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
            got.sort();
            prop_assert_eq!(got, want.clone().into_iter().collect::<Vec<_>>());
            for k in 0..=255u8 {
                prop_assert_eq!(m.get(&key(k)), want.get(&key(k)));
                m.prefetch(&key(k));
            }
            prop_assert!(m.len() * 2 <= m.slots.len() || m.slots.is_empty());
        }
    }

    #[test]
    fn a_slot_is_one_cache_line() {
        assert_eq!(StrMap::<String, u32>::slot_bytes(), 64);
        assert_eq!(std::mem::align_of::<Line<u8, u8>>(), 64);
        let mut m: StrMap<String, u32> = StrMap::default();
        assert_eq!(m.get("a"), None);
        assert_eq!(m.remove_entry("a"), None);
        m.prefetch("a");
        assert_eq!(m.insert("a".into(), 1), None);
        assert_eq!(m.get_mut("a").map(|v| std::mem::replace(v, 2)), Some(1));
        assert_eq!(m.get_key_value("a"), Some((&"a".to_string(), &2)));
    }
}
