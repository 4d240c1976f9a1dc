//! The transmit-limited broadcast queue: each message is piggybacked up to
//! `mult × ceil(log10(n + 1))` times, fresher (fewer transmits) and larger
//! messages first; a new message with the same key replaces the old one.

use std::collections::BTreeSet;
use std::sync::Arc;


/// memberlist's retransmitLimit.
pub fn retransmit_limit(mult: u32, n: usize) -> u32 {
    let scale = ((n as f64) + 1.0).log10().ceil() as u32;
    mult * scale.max(1)
}

/// One queued message: 32 bytes. Its key (if any) and its bytes share one
/// allocation, key first, and that allocation may be shared with other queues:
/// networkdb queues the same relayed event on every node that relays it, and
/// [`crate::intern::shared_bytes`] lets them hold one copy. (It was 64 bytes
/// plus a key of its own per queue; a simulated node's table queue holds
/// every event still being gossiped, ~1,000 in the benchmark.)
#[derive(Debug, Clone)]
struct Item {
    /// Order of arrival: among messages as fresh and as long, the newest
    /// goes first.
    id: u64,
    transmits: u32,
    /// Length of the key at the start of `bytes`; [`NO_KEY`] for none.
    key_len: u32,
    bytes: Arc<[u8]>,
}

const NO_KEY: u32 = u32::MAX;

impl Item {
    fn key(&self) -> Option<&[u8]> {
        (self.key_len != NO_KEY).then(|| &self.bytes[..self.key_len as usize])
    }
    fn start(&self) -> usize {
        if self.key_len == NO_KEY { 0 } else { self.key_len as usize }
    }
    fn msg_len(&self) -> usize {
        self.bytes.len() - self.start()
    }
}

/// A message handed out by [`BroadcastQueue::get_shared`]: the queued bytes
/// themselves (no copy), past the key.
#[derive(Debug, Clone)]
pub struct Piece {
    bytes: Arc<[u8]>,
    start: usize,
}

impl AsRef<[u8]> for Piece {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

impl std::ops::Deref for Piece {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_ref()
    }
}

/// `key` and `msg` as one buffer, for [`BroadcastQueue::push_keyed`].
pub fn keyed(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(key.len() + msg.len());
    b.extend_from_slice(key);
    b.extend_from_slice(msg);
    b
}

/// The queue's order, packed in 16 bytes (a tuple of four took 32 in each
/// B-tree slot): transmits ascending, then length descending, then id
/// descending, then the slot. The slot comes last and ids are unique, so it
/// never decides the order: it only says where the item is without a lookup.
/// Transmits above 2^24 - 1 share the top tier (their count is kept exactly
/// in the item); ids are kept to 40 bits (a trillion messages per queue).
type Order = u128;

const TX_SHIFT: u32 = 104;
const LEN_SHIFT: u32 = 72;
const ID_SHIFT: u32 = 32;
const TX_MAX: u32 = (1 << 24) - 1;
const ID_MASK: u64 = (1 << 40) - 1;

fn order(transmits: u32, len: usize, id: u64, slot: u32) -> Order {
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    (u128::from(transmits.min(TX_MAX)) << TX_SHIFT)
        | (u128::from(!len) << LEN_SHIFT)
        | (u128::from(!id & ID_MASK) << ID_SHIFT)
        | u128::from(slot)
}

fn order_tier(o: Order) -> u32 {
    (o >> TX_SHIFT) as u32
}

fn order_slot(o: Order) -> u32 {
    o as u32
}

fn key_hash(k: &[u8]) -> u64 {
    crate::fasthash::hash_one(k)
}

#[derive(Debug, Clone, Default)]
pub struct BroadcastQueue {
    order: BTreeSet<Order>,
    /// The queued items, by slot (`None`: free, listed in `free`). A slot
    /// index instead of a map from ids: taking the next message to send
    /// reads its item directly, one cache miss instead of two.
    slots: Vec<Option<Item>>,
    free: Vec<u32>,
    len: usize,
    /// Key → slot of the item queued under it; holds slots only and reads
    /// the keys from `slots` (a key is stored once).
    by_key: hashbrown::HashTable<u32>,
    /// Slot → token to report when its item is done (few items have one).
    notify: hashbrown::HashMap<u32, u64, crate::fasthash::FastBuild>,
    next_id: u64,
    /// Tokens of broadcasts that finished (sent enough times, or replaced).
    finished: Vec<u64>,
    peak: usize,
    /// No message ever queued was shorter (0: none queued yet): once less
    /// room than this is left, `get` stops instead of searching every tier.
    min_len: usize,
}

impl BroadcastQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Highest length seen since the queue was made.
    pub fn peak(&self) -> usize {
        self.peak
    }

    fn key_at(&self, slot: u32) -> Option<&[u8]> {
        self.slots.get(slot as usize)?.as_ref()?.key()
    }

    /// Queues `msg`. With a `key`, an earlier message under the same key is
    /// dropped (it is stale). `notify` is reported by `take_finished` once
    /// the message is done.
    pub fn push(&mut self, msg: Vec<u8>, key: Option<Vec<u8>>, notify: Option<u64>) {
        match key {
            Some(k) => self.push_keyed(keyed(&k, &msg).into(), Some(k.len()), notify),
            None => self.push_keyed(msg.into(), None, notify),
        }
    }

    /// Queues the message `bytes[key_len..]` under the key `bytes[..key_len]`
    /// (no key for `None`); the bytes may be shared with other queues.
    pub fn push_keyed(&mut self, bytes: Arc<[u8]>, key_len: Option<usize>, notify: Option<u64>) {
        let key_len = match key_len {
            Some(k) if k <= bytes.len() && k < NO_KEY as usize => k as u32,
            _ => NO_KEY,
        };
        let id = self.next_id;
        self.next_id += 1;
        let item = Item { id, transmits: 0, key_len, bytes };
        if let Some(k) = item.key() {
            let old = self.by_key.find(key_hash(k), |&i| self.key_at(i) == Some(k)).copied();
            if let Some(old) = old {
                self.remove(old, true);
            }
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                u32::try_from(self.slots.len() - 1).expect("fewer than 2^32 queued messages")
            }
        };
        if let Some(k) = item.key() {
            let slots = &self.slots;
            self.by_key.insert_unique(key_hash(k), slot, |&i| {
                slots.get(i as usize).and_then(|it| it.as_ref()?.key()).map_or(0, key_hash)
            });
        }
        let len = item.msg_len();
        self.min_len = if self.min_len == 0 { len } else { self.min_len.min(len) };
        self.order.insert(order(0, len, id, slot));
        if let Some(t) = notify {
            self.notify.insert(slot, t);
        }
        self.slots[slot as usize] = Some(item);
        self.len += 1;
        self.peak = self.peak.max(self.len);
    }

    /// Frees `slot`, dropping its key from `by_key`; reports its token if
    /// it `finished`.
    fn take(&mut self, slot: u32, finished: bool) -> Option<Item> {
        let item = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        self.len -= 1;
        if let Some(k) = item.key() {
            if let Ok(e) = self.by_key.find_entry(key_hash(k), |&i| i == slot) {
                e.remove();
            }
        }
        if let Some(t) = self.notify.remove(&slot) {
            if finished {
                self.finished.push(t);
            }
        }
        Some(item)
    }

    fn remove(&mut self, slot: u32, finished: bool) -> Option<Item> {
        let item = self.take(slot, finished)?;
        self.order.remove(&order(item.transmits, item.msg_len(), item.id, slot));
        Some(item)
    }

    /// Messages to piggyback, at most `limit` bytes counting `overhead` per
    /// message, for a cluster of `n` nodes.
    pub fn get(&mut self, overhead: usize, limit: usize, mult: u32, n: usize) -> Vec<Vec<u8>> {
        self.get_shared(overhead, limit, mult, n).iter().map(|m| m.to_vec()).collect()
    }

    /// [`Self::get`], handing out the queued bytes themselves (no copies).
    pub fn get_shared(&mut self, overhead: usize, limit: usize, mult: u32, n: usize) -> Vec<Piece> {
        if self.len == 0 {
            return Vec::new();
        }
        let limit_tx = retransmit_limit(mult, n);
        let mut used = 0usize;
        let mut out = Vec::new();
        // Items sent and kept: back into `order` (one tier up) after the loop,
        // so that one call never picks a message twice. They stay in their
        // slots and in `by_key` meanwhile (no re-hashing, no key copies).
        let mut reinsert: Vec<Order> = Vec::new();
        let mut tier = match self.order.iter().next() {
            Some(&o) => order_tier(o),
            None => return out,
        };
        let max_tier = self.order.iter().next_back().map_or(tier, |&o| order_tier(o));
        while tier <= max_tier {
            if used + overhead >= limit {
                break;
            }
            let free = limit - used - overhead;
            if free < self.min_len {
                break;
            }
            // The first of this tier no longer than `free`: the longest,
            // newest first. Past the packed tiers' top, nothing is left.
            let lo = order(tier, free, u64::MAX, 0) & !u128::from(u32::MAX);
            let found = if tier >= TX_MAX {
                self.order.range(lo..).next().copied()
            } else {
                self.order.range(lo..order(tier + 1, usize::MAX, u64::MAX, 0)).next().copied()
            };
            let Some(o) = found else {
                tier += 1;
                continue;
            };
            self.order.remove(&o);
            let slot = order_slot(o);
            let Some(item) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
                continue;
            };
            let len = item.msg_len();
            used += overhead + len;
            out.push(Piece { bytes: item.bytes.clone(), start: item.start() });
            if item.transmits.saturating_add(1) >= limit_tx {
                self.take(slot, true);
            } else {
                item.transmits += 1;
                reinsert.push(order(item.transmits, len, item.id, slot));
            }
        }
        self.order.extend(reinsert);
        out
    }

    /// Drops everything (a leave or shutdown); pending notifications fire,
    /// oldest first.
    pub fn clear(&mut self) {
        let mut live: Vec<(u64, u32)> = (0..self.slots.len() as u32)
            .filter_map(|s| Some((self.slots[s as usize].as_ref()?.id, s)))
            .collect();
        live.sort_unstable();
        for (_, slot) in live {
            self.remove(slot, true);
        }
    }

    pub fn take_finished(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_grows_with_log10() {
        assert_eq!(retransmit_limit(4, 1), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 100), 12);
    }

    #[test]
    fn each_message_sent_limit_times_then_finished() {
        let mut q = BroadcastQueue::new();
        q.push(b"abc".to_vec(), None, Some(7));
        for _ in 0..4 {
            assert_eq!(q.get(2, 100, 4, 3), vec![b"abc".to_vec()]);
        }
        assert!(q.is_empty());
        assert_eq!(q.take_finished(), vec![7]);
        assert!(q.get(2, 100, 4, 3).is_empty());
    }

    #[test]
    fn fresher_then_larger_first_and_fits_limit() {
        let mut q = BroadcastQueue::new();
        q.push(vec![1; 10], None, None);
        q.get(0, 100, 4, 3); // now transmits 1
        q.push(vec![2; 5], None, None);
        q.push(vec![3; 8], None, None);
        let got = q.get(2, 100, 4, 3);
        assert_eq!(got, vec![vec![3; 8], vec![2; 5], vec![1; 10]]);
        // Only 12 bytes: the 8-byte message (fresh tier) fits, nothing else.
        let got = q.get(2, 12, 4, 3);
        assert_eq!(got, vec![vec![3; 8]]);
    }

    #[test]
    fn packed_order_sorts_as_the_tuple_did() {
        // (transmits ascending, length descending, id descending, slot).
        assert!(order(0, 10, 5, 9) < order(1, 500, 9, 0));
        assert!(order(1, 500, 1, 9) < order(1, 10, 9, 0));
        assert!(order(1, 10, 9, 7) < order(1, 10, 8, 0));
        assert!(order(1, 10, 9, 1) < order(1, 10, 9, 2));
        assert_eq!((order_tier(order(3, 1, 1, 77)), order_slot(order(3, 1, 1, 77))), (3, 77));
        // Past the packed widths: transmits share the top tier, lengths the
        // shortest rank; nothing spills into another field.
        assert_eq!(order_tier(order(u32::MAX, 1, 1, 5)), TX_MAX);
        assert_eq!(order_slot(order(u32::MAX, usize::MAX, u64::MAX, 5)), 5);
        assert!(order(2, usize::MAX, 0, 0) < order(3, 0, 0, 0));
    }

    #[test]
    fn same_key_replaces() {
        let mut q = BroadcastQueue::new();
        q.push(b"old".to_vec(), Some(b"n1".to_vec()), Some(1));
        q.push(b"new".to_vec(), Some(b"n1".to_vec()), Some(2));
        assert_eq!(q.len(), 1);
        assert_eq!(q.take_finished(), vec![1]);
        assert_eq!(q.get(0, 100, 1, 1), vec![b"new".to_vec()]);
    }
    /// (id, transmits, msg, key, notify)
    type ModelItem = (u64, u32, Vec<u8>, Option<Vec<u8>>, Option<u64>);

    /// The queue as a plain list, searched in full for every pick.
    #[derive(Default)]
    struct Model {
        items: Vec<ModelItem>,
        next_id: u64,
        finished: Vec<u64>,
        min_len: usize,
    }

    impl Model {
        fn push(&mut self, msg: Vec<u8>, key: Option<Vec<u8>>, notify: Option<u64>) {
            if let Some(k) = &key {
                if let Some(i) = self.items.iter().position(|it| it.3.as_ref() == Some(k)) {
                    let old = self.items.remove(i);
                    self.finished.extend(old.4);
                }
            }
            self.min_len = if self.min_len == 0 { msg.len() } else { self.min_len.min(msg.len()) };
            self.items.push((self.next_id, 0, msg, key, notify));
            self.next_id += 1;
        }

        fn get(&mut self, overhead: usize, limit: usize, mult: u32, n: usize) -> Vec<Vec<u8>> {
            let limit_tx = retransmit_limit(mult, n);
            let (Some(lo), Some(hi)) = (
                self.items.iter().map(|it| it.1).min(),
                self.items.iter().map(|it| it.1).max(),
            ) else {
                return Vec::new();
            };
            let mut picked: Vec<u64> = Vec::new();
            let mut out = Vec::new();
            let mut used = 0;
            let mut tier = lo;
            while tier <= hi {
                if used + overhead >= limit || limit - used - overhead < self.min_len {
                    break;
                }
                let free = limit - used - overhead;
                let best = self
                    .items
                    .iter()
                    .filter(|it| it.1 == tier && it.2.len() <= free && !picked.contains(&it.0))
                    .max_by_key(|it| (it.2.len(), it.0))
                    .map(|it| it.0);
                let Some(id) = best else {
                    tier += 1;
                    continue;
                };
                picked.push(id);
                let i = self.items.iter().position(|it| it.0 == id).unwrap();
                used += overhead + self.items[i].2.len();
                out.push(self.items[i].2.clone());
            }
            for id in picked {
                let i = self.items.iter().position(|it| it.0 == id).unwrap();
                if self.items[i].1 + 1 >= limit_tx {
                    let it = self.items.remove(i);
                    self.finished.extend(it.4);
                } else {
                    self.items[i].1 += 1;
                }
            }
            out
        }
    }

    proptest::proptest! {
        /// The queue picks, drops and reports exactly as the plain model.
        #[test]
        fn same_as_model(ops in proptest::collection::vec(
            (0u8..3, 1usize..40, proptest::option::of(0u8..6), 0usize..120, 1usize..8),
            0..300,
        )) {
            let mut q = BroadcastQueue::new();
            let mut m = Model::default();
            for (i, (op, len, key, limit, n)) in ops.into_iter().enumerate() {
                if op < 2 {
                    let msg = vec![i as u8; len];
                    let key = key.map(|k| vec![k]);
                    let notify = (i % 3 == 0).then_some(i as u64);
                    q.push(msg.clone(), key.clone(), notify);
                    m.push(msg, key, notify);
                } else {
                    proptest::prop_assert_eq!(q.get(2, limit, 1, n), m.get(2, limit, 1, n));
                }
                proptest::prop_assert_eq!(q.len(), m.items.len());
                proptest::prop_assert_eq!(q.take_finished(), std::mem::take(&mut m.finished));
            }
            let mut ids: Vec<u64> = m.items.iter().filter_map(|it| it.4).collect();
            ids.sort_unstable();
            q.clear();
            proptest::prop_assert_eq!(q.take_finished(), ids);
            proptest::prop_assert!(q.is_empty());
        }
    }
}

