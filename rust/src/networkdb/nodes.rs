//! Cluster membership as networkdb keeps it: each peer node is active,
//! failed (memberlist lost it) or left (it said goodbye, or a new incarnation
//! replaced it), with the network-clock time of its latest node event and,
//! once it is not active, the time at which it is forgotten.


use super::store::NodeId;

/// Where a peer node stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    Active,
    /// Memberlist declared it dead: it may come back, so its state is
    /// suspended rather than dropped.
    Failed,
    /// It left the cluster gracefully (or was replaced): its state is gone.
    Left,
}

/// What is known about one peer node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRecord {
    pub state: NodeState,
    /// Network-clock time of the latest node event seen for it.
    pub ltime: u64,
    /// When a failed or left node is forgotten (µs).
    pub reap_at: Option<std::num::NonZeroU64>,
}

/// What the dense list holds per node: 16 bytes (a node holds one per
/// member, a simulated cluster N²). Reap times, which only failed and left
/// nodes have, are in a side map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Slim {
    state: NodeState,
    ltime: u64,
}

/// The result of a state change request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The node is not known.
    Unknown,
    /// It already was in that state.
    Unchanged,
    /// It moved; `from` is `None` for a node added just now.
    Moved { from: Option<NodeState> },
}

/// All peer nodes this node knows of (not itself).
#[derive(Debug, Clone, Default)]
pub struct Nodes {
    /// By node id. Ids are dense (interned in order of first sight) and a
    /// node of an N-node cluster holds N records, so a vector: 16 bytes a
    /// record where a B-tree took ~70.
    map: Vec<Option<Slim>>,
    /// Reap times of failed and left nodes.
    reap: std::collections::BTreeMap<NodeId, std::num::NonZeroU64>,
    len: usize,
    /// How many are failed, and left (so that "any failed node?" and "any
    /// node to reap?" are O(1)).
    failed: usize,
    left: usize,
}

impl Nodes {
    /// No nodes known.
    pub fn new() -> Self {
        Self::default()
    }

    /// What is known about a node.
    pub fn get(&self, id: NodeId) -> Option<NodeRecord> {
        let s = self.slim(id)?;
        Some(NodeRecord { state: s.state, ltime: s.ltime, reap_at: self.reap.get(&id).copied() })
    }

    fn slim(&self, id: NodeId) -> Option<&Slim> {
        self.map.get(id as usize).and_then(Option::as_ref)
    }

    fn get_mut(&mut self, id: NodeId) -> Option<&mut Slim> {
        self.map.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// Whether the node is known and active.
    pub fn is_active(&self, id: NodeId) -> bool {
        self.slim(id).is_some_and(|r| r.state == NodeState::Active)
    }

    /// Known nodes with their records, by id.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, NodeRecord)> + '_ {
        (0..self.map.len() as NodeId).filter_map(|id| Some((id, self.get(id)?)))
    }

    /// Add a node as active if it is new (memberlist saw it join).
    pub fn add_active(&mut self, id: NodeId) -> Transition {
        if self.slim(id).is_some() {
            return Transition::Unchanged;
        }
        let i = id as usize;
        crate::intern::grow_for_id(&mut self.map, id, None);
        self.map[i] = Some(Slim { state: NodeState::Active, ltime: 0 });
        self.len += 1;
        Transition::Moved { from: None }
    }

    /// Move a known node to `state`. Becoming active clears its reap time;
    /// becoming failed or left sets one `reap_interval` from `now`, unless it
    /// already had one (failed, then left, keeps the first deadline).
    pub fn set_state(
        &mut self,
        id: NodeId,
        state: NodeState,
        now: u64,
        reap_interval: u64,
    ) -> Transition {
        let Some(rec) = self.map.get_mut(id as usize).and_then(Option::as_mut) else {
            return Transition::Unknown;
        };
        if rec.state == state {
            return Transition::Unchanged;
        }
        let from = rec.state;
        rec.state = state;
        match from {
            NodeState::Failed => self.failed -= 1,
            NodeState::Left => self.left -= 1,
            NodeState::Active => {}
        }
        match state {
            NodeState::Failed => self.failed += 1,
            NodeState::Left => self.left += 1,
            NodeState::Active => {}
        }
        if state == NodeState::Active {
            self.reap.remove(&id);
        } else if let std::collections::btree_map::Entry::Vacant(e) = self.reap.entry(id) {
            if let Some(t) = super::networks::reap_time(now.saturating_add(reap_interval)) {
                e.insert(t);
            }
        }
        Transition::Moved { from: Some(from) }
    }

    /// Record the ltime of a node event; false (and nothing recorded) if the
    /// node is unknown or the event is not newer than the last one seen.
    pub fn witness_event(&mut self, id: NodeId, ltime: u64) -> bool {
        match self.get_mut(id) {
            Some(rec) if rec.ltime < ltime => {
                rec.ltime = ltime;
                true
            }
            _ => false,
        }
    }

    /// Forget failed and left nodes whose reap time has come; returns them
    /// with the state they were in.
    pub fn reap(&mut self, now: u64) -> Vec<(NodeId, NodeState)> {
        if self.failed + self.left == 0 {
            return Vec::new();
        }
        let due: Vec<(NodeId, NodeState)> = self
            .reap
            .iter()
            .filter(|(_, t)| t.get() <= now)
            .filter_map(|(&id, _)| Some((id, self.slim(id)?.state)))
            .collect();
        for (id, state) in &due {
            self.map[*id as usize] = None;
            self.reap.remove(id);
            self.len -= 1;
            match state {
                NodeState::Failed => self.failed -= 1,
                NodeState::Left => self.left -= 1,
                NodeState::Active => {}
            }
        }
        due
    }

    /// How many known nodes are failed.
    pub fn failed_count(&self) -> usize {
        self.failed
    }

    /// How many nodes are known.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no node is known.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_and_reap_deadlines() {
        let mut n = Nodes::new();
        assert!(n.is_empty());
        assert_eq!(
            n.set_state(1, NodeState::Failed, 0, 100),
            Transition::Unknown
        );
        assert_eq!(n.add_active(1), Transition::Moved { from: None });
        assert_eq!(n.add_active(1), Transition::Unchanged);
        assert!(n.is_active(1));
        assert_eq!(
            n.set_state(1, NodeState::Active, 0, 100),
            Transition::Unchanged
        );
        assert_eq!(
            n.set_state(1, NodeState::Failed, 10, 100),
            Transition::Moved {
                from: Some(NodeState::Active)
            }
        );
        assert_eq!(n.get(1).unwrap().reap_at.map(std::num::NonZeroU64::get), Some(110));
        // Failed, then left: the first deadline stays.
        assert_eq!(n.failed_count(), 1);
        n.set_state(1, NodeState::Left, 50, 100);
        assert_eq!(n.failed_count(), 0);
        assert_eq!(n.get(1).unwrap().reap_at.map(std::num::NonZeroU64::get), Some(110));
        n.set_state(1, NodeState::Active, 60, 100);
        assert_eq!(n.get(1).unwrap().reap_at, None);
        n.set_state(1, NodeState::Left, 70, 100);
        assert!(n.reap(169).is_empty());
        assert_eq!(n.reap(170), vec![(1, NodeState::Left)]);
        assert!(n.get(1).is_none());
    }

    #[test]
    fn node_event_ltimes() {
        let mut n = Nodes::new();
        assert!(!n.witness_event(3, 5));
        n.add_active(3);
        assert!(n.witness_event(3, 5));
        assert!(!n.witness_event(3, 5));
        assert!(!n.witness_event(3, 4));
        assert!(n.witness_event(3, 6));
        assert_eq!(n.iter().count(), 1);
        assert_eq!(n.len(), 1);
    }
}
