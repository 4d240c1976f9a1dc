//! String interning: node names, network ids and table names are stored once
//! and referred to by small integer ids everywhere else.

use std::collections::HashMap;
use std::sync::Arc;

/// A table of strings, each given a dense `u32` id in order of first sight.
///
/// Names are never forgotten: an id stays valid (and keeps naming the same
/// string) for the life of the table. The cost of a name is one shared
/// allocation plus two map slots; a store that sees thousands of node names
/// over its life holds a few hundred KiB here.
#[derive(Debug, Default, Clone)]
pub struct Interner {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Interner {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `name`, adding it if it is new.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("more than u32::MAX interned names");
        let shared: Arc<str> = Arc::from(name);
        self.names.push(shared.clone());
        self.ids.insert(shared, id);
        id
    }

    /// The id of `name` if it has been seen.
    pub fn lookup(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
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
}
