//! The transmit-limited broadcast queue: each message is piggybacked up to
//! `mult × ceil(log10(n + 1))` times, fresher (fewer transmits) and larger
//! messages first; a new message with the same key replaces the old one.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::fasthash::FastBuild;

/// memberlist's retransmitLimit.
pub fn retransmit_limit(mult: u32, n: usize) -> u32 {
    let scale = ((n as f64) + 1.0).log10().ceil() as u32;
    mult * scale.max(1)
}

/// One queued message. The bytes are shared (`Arc`): networkdb queues the
/// same relayed event on every node that relays it, and
/// [`crate::intern::shared_bytes`] lets them hold one copy.
#[derive(Debug, Clone)]
struct Item {
    transmits: u32,
    msg: Arc<[u8]>,
    key: Option<Box<[u8]>>,
    notify: Option<u64>,
}

type Order = (u32, Reverse<usize>, Reverse<u64>);

fn key_hash(k: &[u8]) -> u64 {
    crate::fasthash::hash_one(k)
}

#[derive(Debug, Clone, Default)]
pub struct BroadcastQueue {
    order: BTreeSet<Order>,
    items: HashMap<u64, Item, FastBuild>,
    /// Key → id of the item queued under it; holds ids only and reads the
    /// keys from `items` (a key is stored once).
    by_key: hashbrown::HashTable<u64>,
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
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Highest length seen since the queue was made.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// Queues `msg`. With a `key`, an earlier message under the same key is
    /// dropped (it is stale). `notify` is reported by `take_finished` once
    /// the message is done.
    pub fn push(&mut self, msg: Vec<u8>, key: Option<Vec<u8>>, notify: Option<u64>) {
        self.push_shared(msg.into(), key, notify);
    }

    /// [`Self::push`] with bytes that may be shared with other queues.
    pub fn push_shared(&mut self, msg: Arc<[u8]>, key: Option<Vec<u8>>, notify: Option<u64>) {
        let id = self.next_id;
        self.next_id += 1;
        let key = key.map(Vec::into_boxed_slice);
        if let Some(k) = &key {
            let h = key_hash(k);
            let items = &self.items;
            let old = self
                .by_key
                .find(h, |i| items.get(i).and_then(|it| it.key.as_deref()) == Some(&k[..]))
                .copied();
            if let Some(old) = old {
                self.remove(old, true);
            }
            let items = &self.items;
            self.by_key.insert_unique(h, id, |i| {
                items.get(i).and_then(|it| it.key.as_deref()).map_or(0, key_hash)
            });
        }
        self.min_len = if self.min_len == 0 { msg.len() } else { self.min_len.min(msg.len()) };
        self.order.insert((0, Reverse(msg.len()), Reverse(id)));
        self.items.insert(id, Item { transmits: 0, msg, key, notify });
        self.peak = self.peak.max(self.items.len());
    }

    fn unkey(&mut self, id: u64, key: &[u8]) {
        if let Ok(e) = self.by_key.find_entry(key_hash(key), |&i| i == id) {
            e.remove();
        }
    }

    fn remove(&mut self, id: u64, finished: bool) -> Option<Item> {
        let item = self.items.remove(&id)?;
        self.order.remove(&(item.transmits, Reverse(item.msg.len()), Reverse(id)));
        if let Some(k) = &item.key {
            self.unkey(id, k);
        }
        if finished {
            if let Some(t) = item.notify {
                self.finished.push(t);
            }
        }
        Some(item)
    }

    /// Messages to piggyback, at most `limit` bytes counting `overhead` per
    /// message, for a cluster of `n` nodes.
    pub fn get(&mut self, overhead: usize, limit: usize, mult: u32, n: usize) -> Vec<Vec<u8>> {
        self.get_shared(overhead, limit, mult, n).iter().map(|m| m.to_vec()).collect()
    }

    /// [`Self::get`], handing out the queued bytes themselves (no copies).
    pub fn get_shared(&mut self, overhead: usize, limit: usize, mult: u32, n: usize) -> Vec<Arc<[u8]>> {
        if self.items.is_empty() {
            return Vec::new();
        }
        let limit_tx = retransmit_limit(mult, n);
        let mut used = 0usize;
        let mut out = Vec::new();
        // Items sent and kept: back into `order` (one tier up) after the loop,
        // so that one call never picks a message twice. They stay in `items`
        // and `by_key` meanwhile (no re-hashing, no key copies).
        let mut reinsert: Vec<Order> = Vec::new();
        let mut tier = match self.order.iter().next() {
            Some(o) => o.0,
            None => return out,
        };
        let max_tier = self.order.iter().next_back().map_or(tier, |o| o.0);
        while tier <= max_tier {
            if used + overhead >= limit {
                break;
            }
            let free = limit - used - overhead;
            if free < self.min_len {
                break;
            }
            let lo = (tier, Reverse(free), Reverse(u64::MAX));
            let hi = (tier + 1, Reverse(usize::MAX), Reverse(u64::MAX));
            let found = self.order.range(lo..hi).next().copied();
            let Some(o @ (_, Reverse(len), Reverse(id))) = found else {
                tier += 1;
                continue;
            };
            self.order.remove(&o);
            let Some(item) = self.items.get_mut(&id) else {
                continue;
            };
            used += overhead + len;
            out.push(item.msg.clone());
            if item.transmits + 1 >= limit_tx {
                if let Some(t) = item.notify {
                    self.finished.push(t);
                }
                if let Some(item) = self.items.remove(&id) {
                    if let Some(k) = &item.key {
                        self.unkey(id, k);
                    }
                }
            } else {
                item.transmits += 1;
                reinsert.push((item.transmits, Reverse(len), Reverse(id)));
            }
        }
        self.order.extend(reinsert);
        out
    }

    /// Drops everything (a leave or shutdown); pending notifications fire.
    pub fn clear(&mut self) {
        let ids: Vec<u64> = self.items.keys().copied().collect();
        for id in ids {
            self.remove(id, true);
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
    fn same_key_replaces() {
        let mut q = BroadcastQueue::new();
        q.push(b"old".to_vec(), Some(b"n1".to_vec()), Some(1));
        q.push(b"new".to_vec(), Some(b"n1".to_vec()), Some(2));
        assert_eq!(q.len(), 1);
        assert_eq!(q.take_finished(), vec![1]);
        assert_eq!(q.get(0, 100, 1, 1), vec![b"new".to_vec()]);
    }
}
