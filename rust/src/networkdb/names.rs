//! String interning: node names, network ids and table names are stored once
//! and referred to by small integer ids everywhere else.

use hashbrown::HashTable;

/// A table of strings, each given a dense `u32` id in order of first sight.
/// The strings are the process-wide shared copies (`intern::shared_str`): in
/// a simulated cluster every node names the same N nodes, and memberlist's
/// member records point at the same allocations.
///
/// Names are never forgotten: an id stays valid (and keeps naming the same
/// string) for the life of the table. The cost of a name is a 16-byte slot
/// in the list (the text is shared) and a 4-byte slot in the index (which
/// holds ids and reads the names from the list): a node of a 10,000-node cluster
/// interns 10,000 node names, so this is per-member memory.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    ids: HashTable<u32>,
    names: Vec<std::sync::Arc<str>>,
    /// The first names again, inline: a store's networks and tables are
    /// usually one or two, looked up for every received event, and scanning
    /// these (whose text is shared and so in cache) follows no pointer to
    /// this node's own list.
    small: [Option<std::sync::Arc<str>>; SMALL],
}

const SMALL: usize = 4;

fn name_hash(s: &str) -> u64 {
    // FNV-1a with a final mix.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

impl Interner {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `name`, adding it if it is new.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.lookup(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("more than u32::MAX interned names");
        crate::intern::reserve_gently(&mut self.names, 1);
        let shared = crate::intern::shared_str(name);
        if let Some(s) = self.small.get_mut(id as usize) {
            *s = Some(shared.clone());
        }
        self.names.push(shared);
        let names = &self.names;
        self.ids.insert_unique(name_hash(name), id, |&i| name_hash(&names[i as usize]));
        id
    }

    /// The id of `name` if it has been seen.
    pub fn lookup(&self, name: &str) -> Option<u32> {
        // A few names (networks, tables): a scan of the inline copies touches
        // less memory than the index does (this runs for every received event).
        if self.names.len() <= SMALL {
            return self.small.iter().flatten().position(|n| **n == *name).map(|i| i as u32);
        }
        self.ids.find(name_hash(name), |&i| &*self.names[i as usize] == name).copied()
    }

    /// The string behind `id`. Panics on an id this table did not hand out.
    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// How many names are held.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether no name has been interned.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The node names one node knows, numbered with the process-wide node ids
/// (`intern::node_id`): a bit per id for "seen here", the names themselves in
/// the process-wide table. Same contract as [`Interner`] (dense ids in order
/// of first sight, never forgotten), except that the order is the process's:
/// in a process with one node (a real one) that is this node's order; a
/// simulator registers its nodes' names first, in its own order.
///
/// Why: per node of an N-node cluster, ~25 bytes a name became 1 bit, and
/// reading an owner's name (the stale check of every received table event
/// compares names on equal Lamport times) touches one table shared by all
/// nodes instead of this node's own list, which missed the cache.
#[derive(Debug, Default, Clone)]
pub struct NodeNames {
    seen: Vec<u64>,
    len: usize,
}

impl NodeNames {
    /// No names seen.
    pub fn new() -> Self {
        Self::default()
    }

    fn has(&self, id: u32) -> bool {
        self.seen.get(id as usize / 64).is_some_and(|w| w >> (id % 64) & 1 == 1)
    }

    /// The id of `name`, adding it if it is new here.
    pub fn intern(&mut self, name: &str) -> u32 {
        let id = crate::intern::node_id(name);
        let w = id as usize / 64;
        if self.seen.len() <= w {
            self.seen.resize(w + 1, 0);
        }
        if self.seen[w] >> (id % 64) & 1 == 0 {
            self.seen[w] |= 1 << (id % 64);
            self.len += 1;
        }
        id
    }

    /// The id of `name` if this node has seen it.
    pub fn lookup(&self, name: &str) -> Option<u32> {
        crate::intern::find_node_id(name).filter(|&id| self.has(id))
    }

    /// The name behind `id`. Panics on an id this table did not hand out.
    pub fn name(&self, id: u32) -> &str {
        match crate::intern::node_name(id) {
            Some(n) if self.has(id) => n,
            _ => panic!("node id {id} was not interned here"),
        }
    }

    /// [`Self::name`] of an id known to be interned here (the owner of a
    /// stored entry): it skips the "seen here" bit, whose word is a cache miss
    /// on a simulated node's cold state, for the stale check of every received
    /// event.
    pub fn name_of_held(&self, id: u32) -> &str {
        debug_assert!(self.has(id), "node id {id} was not interned here");
        crate::intern::node_name(id).unwrap_or_default()
    }

    /// How many names have been seen.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no name has been seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_dense_and_stable() {
        let mut t = Interner::new();
        assert!(t.is_empty());
        assert_eq!(t.intern("a"), 0);
        assert_eq!(t.intern("b"), 1);
        assert_eq!(t.intern("a"), 0);
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup("b"), Some(1));
        assert_eq!(t.lookup("c"), None);
        assert_eq!(t.name(1), "b");
    }

    #[test]
    fn node_names_are_the_process_ids_seen_here() {
        let mut t = NodeNames::new();
        assert!(t.is_empty());
        let a = t.intern("names-test-a");
        assert_eq!(t.intern("names-test-a"), a);
        assert_eq!(t.lookup("names-test-a"), Some(a));
        assert_eq!(t.name(a), "names-test-a");
        // Known to the process, not to this table.
        let b = crate::intern::node_id("names-test-b");
        assert_eq!(t.lookup("names-test-b"), None);
        assert_eq!(t.intern("names-test-b"), b);
        assert_eq!(t.len(), 2);
    }
}
