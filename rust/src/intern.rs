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
    fn gentle_growth_keeps_little_slack() {
        let mut v: Vec<u64> = Vec::new();
        for i in 0..5_000 {
            reserve_gently(&mut v, 1);
            v.push(i);
        }
        assert!(v.capacity() <= 5_000 + 5_000 / 8 + 4, "{}", v.capacity());
    }
}
