//! Node names shared by every machine in the process. A simulated cluster
//! of N nodes holds N² member records, each naming a node: with one
//! allocation per name and record that was ~64 bytes per member entry
//! (memberlist's and networkdb's copies). Here each distinct name is
//! allocated once and handed out as an `Arc<str>`, so a record holds a
//! pointer. A real node (one machine per process) holds its member names
//! once, as before. Names are never dropped from the registry: it grows with
//! the distinct names ever seen, like networkdb's own interner.

use std::sync::{Arc, Mutex, OnceLock};

use hashbrown::HashTable;

fn registry() -> &'static Mutex<HashTable<Arc<str>>> {
    static REG: OnceLock<Mutex<HashTable<Arc<str>>>> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(HashTable::new()))
}

/// The process-wide shared copy of `name`.
pub fn shared_str(name: &str) -> Arc<str> {
    let h = crate::fasthash::hash_one(name);
    // A poisoned lock only means another thread panicked while inserting; the
    // table itself is still consistent (insert_unique is the only mutation).
    let mut t = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = t.find(h, |s| **s == *name) {
        return s.clone();
    }
    let s: Arc<str> = Arc::from(name);
    t.insert_unique(h, s.clone(), |s| crate::fasthash::hash_one(&**s));
    s
}

/// Recently queued message bytes, shared: weak references, so a message is
/// freed once no queue holds it; dead entries are swept when the table has
/// doubled since the last sweep.
struct Bytes {
    table: HashTable<std::sync::Weak<[u8]>>,
    swept_at: usize,
}

fn bytes_registry() -> &'static Mutex<Bytes> {
    static REG: OnceLock<Mutex<Bytes>> = OnceLock::new();
    REG.get_or_init(|| {
        Mutex::new(Bytes {
            table: HashTable::new(),
            swept_at: 0,
        })
    })
}

/// One shared copy of `msg` while any holder keeps it. networkdb relays each
/// table event through every node's queue with the same bytes; in a
/// simulated cluster those N copies (~150 bytes each, for every event still
/// being gossiped) become one. A real node gets its own bytes back (no other
/// holder), at the cost of a hash and a lock.
pub fn shared_bytes(msg: Vec<u8>) -> Arc<[u8]> {
    let h = crate::fasthash::hash_one(&msg[..]);
    let mut b = bytes_registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(live) = b
        .table
        .find(h, |w| w.upgrade().is_some_and(|a| *a == msg[..]))
        .and_then(|w| w.upgrade())
    {
        return live;
    }
    if b.table.len() >= 2 * b.swept_at.max(1024) {
        b.table.retain(|w| w.strong_count() > 0);
        b.swept_at = b.table.len();
    }
    let a: Arc<[u8]> = msg.into();
    b.table.insert_unique(h, Arc::downgrade(&a), |w| {
        w.upgrade().map_or(0, |a| crate::fasthash::hash_one(&a[..]))
    });
    a
}

/// Tables indexed by a dense id that never move once written: segments of
/// 64, 128, 256, ... slots, each allocated once and never freed, so that a
/// reader needs no lock.
mod segments {
    use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

    pub const FIRST: usize = 64;
    /// 64 × (2^27 − 1) slots: room for every `u32` id.
    pub const SEGMENTS: usize = 27;

    /// (segment, offset) of an id: segment k holds `FIRST << k` slots.
    pub fn locate(id: u32) -> (usize, usize) {
        let j = id as usize / FIRST + 1;
        let k = (usize::BITS - 1 - j.leading_zeros()) as usize;
        (k, id as usize - FIRST * ((1 << k) - 1))
    }

    /// An open-addressing index of ids by hash, read without a lock: each
    /// slot holds 0 or id + 1. Slots only go from 0 to an id, so a reader
    /// probing without a lock sees an id or not yet; a full table is copied
    /// into one twice its size and the old one is left to the readers that may
    /// still hold it (leaked: the copies add up to less than the last one).
    /// Writers hold their registry's lock.
    pub struct Index {
        mask: usize,
        slots: Box<[AtomicU32]>,
    }

    impl Index {
        fn with_capacity(cap: usize) -> Index {
            let n = cap.next_power_of_two().max(64);
            Index { mask: n - 1, slots: (0..n).map(|_| AtomicU32::new(0)).collect() }
        }

        /// The index `p` holds, if any.
        pub fn current(p: &AtomicPtr<Index>) -> Option<&'static Index> {
            let q = p.load(Ordering::Acquire);
            // SAFETY: an index pointer holds null or a leaked `Index`, never freed.
            (!q.is_null()).then(|| unsafe { &*q })
        }

        /// The id with hash `h` for which `is` holds.
        pub fn find(&self, h: u64, is: impl Fn(u32) -> bool) -> Option<u32> {
            let mut i = h as usize & self.mask;
            loop {
                match self.slots[i].load(Ordering::Acquire) {
                    0 => return None,
                    v if is(v - 1) => return Some(v - 1),
                    _ => i = (i + 1) & self.mask,
                }
            }
        }

        /// Puts `id` in the first free slot of its probe (writers only).
        pub fn insert(&self, h: u64, id: u32) {
            let mut i = h as usize & self.mask;
            while self.slots[i].load(Ordering::Relaxed) != 0 {
                i = (i + 1) & self.mask;
            }
            self.slots[i].store(id + 1, Ordering::Release);
        }

        /// The index in `p`, grown first (ids below `count - 1` re-inserted by
        /// `hash_of`) unless it has room for `count` ids at most half full,
        /// so that probes stay short (writers only).
        pub fn room_for(p: &AtomicPtr<Index>, count: u32, hash_of: impl Fn(u32) -> Option<u64>) -> &'static Index {
            match Self::current(p) {
                Some(t) if (count as usize) * 2 <= t.slots.len() => t,
                _ => {
                    let grown = Index::with_capacity(count as usize * 2);
                    for i in 0..count.saturating_sub(1) {
                        if let Some(h) = hash_of(i) {
                            grown.insert(h, i);
                        }
                    }
                    let grown: &'static Index = Box::leak(Box::new(grown));
                    p.store(grown as *const Index as *mut Index, Ordering::Release);
                    grown
                }
            }
        }
    }

    /// The slot of `id`, if its segment exists. Every non-null pointer in
    /// `segs[k]` must be a leaked allocation of `FIRST << k` slots.
    pub fn slot_in<T>(segs: &'static [AtomicPtr<T>; SEGMENTS], id: u32) -> Option<&'static T> {
        let (k, off) = locate(id);
        let seg = segs.get(k)?.load(Ordering::Acquire);
        if seg.is_null() {
            return None;
        }
        // SAFETY: segment k was allocated with FIRST << k slots (off is below
        // that by `locate`) and is never freed.
        Some(unsafe { &*seg.add(off) })
    }
}

/// Process-wide node ids: each distinct node name gets a dense `u32` in order
/// of first sight in the process, and its name is read back without a lock.
/// networkdb numbers its peers with these ids (`networkdb::names::NodeNames`):
/// a simulated node reading an owner's name then touches this one table,
/// shared by all nodes and so in cache, instead of its own N-slot list (the
/// stale check of every received table event did that: ~4% of a 1,000-node
/// run in cache misses), and holds a bit per known name instead of ~25 bytes.
///
/// Ids are never reused and names never dropped, like the registry above.
/// The names are kept in segments of 64, 128, 256, ... slots that are
/// allocated once and never move, so a reader needs no lock. The index from
/// name to id is read without a lock too: the simulator's threads look names
/// up on every received event, and a read lock's shared counter cost them
/// more than the lookup (its cache line went back and forth between cores).
mod node_ids {
    use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use super::segments::{locate, slot_in, Index, FIRST, SEGMENTS};

    type Slot = AtomicPtr<Arc<str>>;

    static SEGS: [AtomicPtr<Slot>; SEGMENTS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; SEGMENTS];
    static COUNT: AtomicU32 = AtomicU32::new(0);

    static INDEX: AtomicPtr<Index> = AtomicPtr::new(std::ptr::null_mut());
    /// Held by writers: ids are handed out one at a time.
    static WRITE: Mutex<()> = Mutex::new(());

    fn slot(id: u32) -> Option<&'static Slot> {
        slot_in(&SEGS, id)
    }

    /// How many ids have been handed out.
    pub fn count() -> u32 {
        COUNT.load(Ordering::Relaxed)
    }

    /// The name of an id handed out by [`id`]; `None` for any other.
    pub fn name(id: u32) -> Option<&'static str> {
        let p = slot(id)?.load(Ordering::Acquire);
        // SAFETY: a slot holds null or a leaked `Arc<str>`, never freed.
        (!p.is_null()).then(|| unsafe { &**p })
    }

    fn hash(s: &str) -> u64 {
        crate::fasthash::hash_one(s)
    }

    /// The id of `name`, if it has one.
    pub fn find(name: &str) -> Option<u32> {
        Index::current(&INDEX)?.find(hash(name), |i| name_eq(i, name))
    }

    fn name_eq(i: u32, name: &str) -> bool {
        self::name(i) == Some(name)
    }

    /// The id of `name`, giving it the next one if it has none.
    pub fn id(name: &str) -> u32 {
        if let Some(i) = find(name) {
            return i;
        }
        // A poisoned lock only means a panic elsewhere; the index is
        // consistent after every store.
        let _w = WRITE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = find(name) {
            return i;
        }
        let id = COUNT.load(Ordering::Relaxed);
        let next = id.checked_add(1).expect("more than u32::MAX node names");
        let (k, _) = locate(id);
        if SEGS[k].load(Ordering::Acquire).is_null() {
            let seg: Box<[Slot]> = (0..FIRST << k).map(|_| AtomicPtr::new(std::ptr::null_mut())).collect();
            SEGS[k].store(Box::leak(seg).as_mut_ptr(), Ordering::Release);
        }
        let leaked: &'static mut Arc<str> = Box::leak(Box::new(super::shared_str(name)));
        if let Some(s) = slot(id) {
            s.store(leaked, Ordering::Release);
        }
        let t = Index::room_for(&INDEX, next, |i| self::name(i).map(hash));
        t.insert(hash(name), id);
        COUNT.store(next, Ordering::Relaxed);
        id
    }
}

pub use node_ids::{find as find_node_id, id as node_id, name as node_name};

/// Process-wide socket-address ids, as node ids are for names: memberlist
/// keeps each member's address, and a simulated cluster of N nodes N² of
/// them. A member record holds a 4-byte id instead of a 20-byte address, and
/// reading the address back (on every send) touches one table that all the
/// nodes of the process share. Ids are dense, never reused, and never
/// forgotten: a process sees about as many addresses as its clusters have
/// members.
mod addr_ids {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
    use std::sync::{Mutex, OnceLock};

    type Slot = OnceLock<SocketAddr>;

    static SEGS: [AtomicPtr<Slot>; SEGMENTS] = [const { AtomicPtr::new(std::ptr::null_mut()) }; SEGMENTS];

    static INDEX: AtomicPtr<Index> = AtomicPtr::new(std::ptr::null_mut());
    /// Held by writers: ids are handed out one at a time.
    static WRITE: Mutex<()> = Mutex::new(());
    static COUNT: AtomicU32 = AtomicU32::new(0);

    fn hash(a: &SocketAddr) -> u64 {
        crate::fasthash::hash_one(a)
    }

    /// The id of `a`, if it has one. Without a lock: every member a
    /// simulated node learns is looked up here (N² at set-up), from every core.
    pub fn find(a: &SocketAddr) -> Option<u32> {
        Index::current(&INDEX)?.find(hash(a), |i| get(i).as_ref() == Some(a))
    }

    use super::segments::{locate, slot_in, Index, FIRST, SEGMENTS};

    fn slot(id: u32) -> Option<&'static Slot> {
        slot_in(&SEGS, id)
    }

    /// The address of an id handed out by [`id`]; `None` for any other.
    pub fn get(id: u32) -> Option<SocketAddr> {
        slot(id)?.get().copied()
    }

    /// The id of `a`, giving it the next one if it has none.
    pub fn id(a: SocketAddr) -> u32 {
        if let Some(i) = find(&a) {
            return i;
        }
        // A poisoned lock only means a panic elsewhere; the index is
        // consistent after every store.
        let _w = WRITE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = find(&a) {
            return i;
        }
        let id = COUNT.load(Ordering::Relaxed);
        let next = id.checked_add(1).expect("fewer than 2^32 addresses");
        let (k, _) = locate(id);
        if SEGS[k].load(Ordering::Acquire).is_null() {
            let seg: Box<[Slot]> = (0..FIRST << k).map(|_| OnceLock::new()).collect();
            SEGS[k].store(Box::leak(seg).as_mut_ptr(), Ordering::Release);
        }
        if let Some(s) = slot(id) {
            let _ = s.set(a);
        }
        let t = Index::room_for(&INDEX, next, |i| get(i).map(|x| hash(&x)));
        t.insert(hash(&a), id);
        COUNT.store(next, Ordering::Relaxed);
        id
    }
}

pub use addr_ids::{find as find_addr_id, get as addr_of_id, id as addr_id};

/// Makes `v[id]` exist in `v`, a vector indexed by process-wide node id, filling
/// new slots with `fill`. Room is made at once for every id the process has
/// handed out: such a vector ends up about that long in a cluster whose names
/// the process knows, and one allocation replaces the dozens of copies that
/// growing by an eighth took while a node learnt N members one by one.
pub fn grow_for_id<T: Clone>(v: &mut Vec<T>, id: u32, fill: T) {
    let i = id as usize;
    if v.len() > i {
        return;
    }
    let want = (i + 1).max(node_ids::count() as usize);
    if v.capacity() < want {
        v.reserve_exact(want - v.len());
    }
    v.resize(i + 1, fill);
}

/// Makes room for `additional` more elements growing by an eighth, not by
/// doubling: the per-member vectors of a simulated node hold N elements each,
/// and doubling left up to half of them unused (at 5,000 nodes a vector of
/// 8,192 slots for 5,000 members). Still amortised O(1) per push.
pub fn reserve_gently<T>(v: &mut Vec<T>, additional: usize) {
    if v.capacity() - v.len() < additional {
        v.reserve_exact(additional + v.len() / 8 + 4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_allocation_per_name() {
        let a = shared_str("intern-test-a");
        let b = shared_str("intern-test-a");
        let c = shared_str("intern-test-c");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*c, "intern-test-c");
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn shared_bytes_while_held() {
        let a = shared_bytes(b"shared-bytes-test".to_vec());
        let b = shared_bytes(b"shared-bytes-test".to_vec());
        assert!(Arc::ptr_eq(&a, &b));
        drop((a, b));
        let c = shared_bytes(b"shared-bytes-test".to_vec());
        assert_eq!(&c[..], b"shared-bytes-test");
    }

    #[test]
    fn node_ids_are_stable_and_named() {
        let a = node_id("node-id-test-a");
        let b = node_id("node-id-test-b");
        assert_ne!(a, b);
        assert_eq!(node_id("node-id-test-a"), a);
        assert_eq!(find_node_id("node-id-test-b"), Some(b));
        assert_eq!(find_node_id("node-id-test-never"), None);
        assert_eq!(node_name(a), Some("node-id-test-a"));
        assert_eq!(node_name(u32::MAX), None);
        // Across segment boundaries (64, 192, 448, ...).
        let many: Vec<u32> = (0..500).map(|i| node_id(&format!("node-id-test-{i}"))).collect();
        for (i, &id) in many.iter().enumerate() {
            assert_eq!(node_name(id), Some(format!("node-id-test-{i}").as_str()));
        }
    }

    #[test]
    fn addr_ids_are_stable_and_read_back() {
        let a: std::net::SocketAddr = "10.9.8.7:7946".parse().unwrap();
        let b: std::net::SocketAddr = "[fd00::1]:7946".parse().unwrap();
        let (ia, ib) = (addr_id(a), addr_id(b));
        assert_ne!(ia, ib);
        assert_eq!(addr_id(a), ia);
        assert_eq!(addr_of_id(ia), Some(a));
        assert_eq!(addr_of_id(ib), Some(b));
        assert_eq!(addr_of_id(u32::MAX), None);
        // Past the first segment.
        let many: Vec<u32> = (0..200u16).map(|p| addr_id(std::net::SocketAddr::from(([10, 1, 1, 1], 1000 + p)))).collect();
        for (p, id) in (0..200u16).zip(&many) {
            assert_eq!(addr_of_id(*id), Some(std::net::SocketAddr::from(([10, 1, 1, 1], 1000 + p))));
        }
        // Threads naming the same addresses in opposite orders while the
        // lock-free index grows under them agree on every id.
        let addrs: Vec<std::net::SocketAddr> =
            (0..3000u16).map(|p| std::net::SocketAddr::from(([10, 2, (p >> 8) as u8, p as u8], 7000))).collect();
        let seen: Vec<Vec<u32>> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|t| {
                    let addrs = &addrs;
                    sc.spawn(move || {
                        let order: Vec<usize> =
                            if t % 2 == 0 { (0..addrs.len()).collect() } else { (0..addrs.len()).rev().collect() };
                        let mut ids = vec![0; addrs.len()];
                        for i in order {
                            ids[i] = addr_id(addrs[i]);
                            assert_eq!(addr_of_id(ids[i]), Some(addrs[i]));
                        }
                        ids
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(seen.iter().all(|ids| ids == &seen[0]));
        assert_eq!(seen[0].iter().collect::<std::collections::HashSet<_>>().len(), addrs.len());
    }

    #[test]
    fn node_ids_from_many_threads_agree() {
        // Four threads name the same 3,000 names in different orders while
        // the index grows under the readers: every name gets one id, and
        // every thread reads back that id and that name.
        let names: Vec<String> = (0..3000).map(|i| format!("node-id-race-{i}")).collect();
        let seen: Vec<Vec<u32>> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|t| {
                    let names = &names;
                    sc.spawn(move || {
                        let mut ids = vec![0; names.len()];
                        for k in 0..names.len() {
                            let i = if t % 2 == 0 { k } else { names.len() - 1 - k };
                            ids[i] = node_id(&names[i]);
                            assert_eq!(find_node_id(&names[i]), Some(ids[i]));
                        }
                        ids
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for ids in &seen[1..] {
            assert_eq!(ids, &seen[0]);
        }
        let distinct: std::collections::HashSet<u32> = seen[0].iter().copied().collect();
        assert_eq!(distinct.len(), names.len());
        for (n, &id) in names.iter().zip(&seen[0]) {
            assert_eq!(node_name(id), Some(n.as_str()));
        }
    }

    #[test]
    fn gentle_growth_keeps_little_slack() {
        let mut v: Vec<u64> = Vec::new();
        for i in 0..5_000 {
            reserve_gently(&mut v, 1);
            v.push(i);
        }
        assert!(v.capacity() <= 5_000 + 5_000 / 8 + 4, "{}", v.capacity());
    }
}
