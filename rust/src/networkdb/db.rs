//! [`NetworkDb`]: one node's networkdb state, tying the table store to the
//! network attachments and the cluster membership, with the operations the
//! gossip protocol machine calls. Every call is a pure state transition that
//! returns what to send and what watchers see; sending is the caller's.

use super::events::{
    NetworkEntry, NetworkEntryRef, NetworkEvent, NetworkEventType, NetworkPushPull, NodeEvent,
    NodeEventType, TableEvent, WatchEvent,
};
use super::networks::{NetworkError, NetworkVerdict, Networks};
use super::nodes::{NodeState, Nodes, Transition};
use super::store::{
    EntryView, LocalChange, MergeContext, NodeId, TableError, TableOutcome, TableStore, Verdict,
};
use super::Config;

/// The result of leaving a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkLeave {
    /// To gossip to the cluster.
    pub event: NetworkEvent,
    /// The entries of the network that watchers stop seeing.
    pub watch: Vec<WatchEvent>,
}

/// The result of merging a peer's network event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkOutcome {
    pub verdict: NetworkVerdict,
    /// Entries that went away with a leave.
    pub watch: Vec<WatchEvent>,
}

impl NetworkOutcome {
    /// Whether the attachment changed, in which case libnetwork relays the
    /// event on the cluster-wide network-event queue.
    pub fn rebroadcast(&self) -> bool {
        self.verdict.changed()
    }
}

/// The result of a membership change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeChange {
    /// The node changed state (for a node event from gossip: relay it).
    pub changed: bool,
    /// Entries that watchers stop (or start again) seeing.
    pub watch: Vec<WatchEvent>,
}

/// The result of merging a peer's push/pull state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushPullOutcome {
    /// Whether the sender's node event moved it.
    pub node_changed: bool,
    /// How many attachments changed.
    pub networks_changed: usize,
    pub watch: Vec<WatchEvent>,
}

/// What one reaper pass dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReapCounts {
    /// Tombstones, and entries of failed owners that aged out.
    pub entries: usize,
    /// This node's leaving attachments.
    pub own_networks: usize,
    /// Peers' leaving attachments.
    pub peer_networks: usize,
    /// Failed and left nodes forgotten.
    pub nodes: usize,
}

/// One node's networkdb.
#[derive(Debug, Clone)]
pub struct NetworkDb {
    config: Config,
    me: NodeId,
    store: TableStore,
    networks: Networks,
    nodes: Nodes,
}

impl NetworkDb {
    /// The state of a node named `node_name`, in no network, knowing no peer.
    pub fn new(node_name: &str, config: Config) -> Self {
        let mut store = TableStore::new(config.reap_entry_interval);
        let me = store.intern_node(node_name);
        let networks = Networks::new(config.reap_network_interval);
        Self {
            config,
            me,
            store,
            networks,
            nodes: Nodes::new(),
        }
    }

    /// This node's name.
    pub fn node_name(&self) -> &str {
        self.store.node_name(self.me)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The table store (entries, tombstones, table clock).
    pub fn store(&self) -> &TableStore {
        &self.store
    }

    /// The network attachments (and network clock).
    pub fn networks(&self) -> &Networks {
        &self.networks
    }

    /// The membership records, by node id ([`Self::name_of`] names them).
    pub fn nodes(&self) -> &Nodes {
        &self.nodes
    }

    /// The name behind a node id handed out by this database.
    pub fn name_of(&self, id: NodeId) -> &str {
        self.store.node_name(id)
    }

    /// The membership state of a peer, by name.
    pub fn node_state(&self, name: &str) -> Option<NodeState> {
        let id = self.store.node_id(name)?;
        self.nodes.get(id).map(|r| r.state)
    }

    // ---- reads ---------------------------------------------------------------

    /// The value of a visible entry. Tombstones and entries hidden because
    /// their owner failed are reported as not found.
    pub fn get_entry(&self, table: &str, network_id: &str, key: &str) -> Result<&[u8], TableError> {
        self.store
            .get_visible(table, network_id, key)
            .ok_or_else(|| TableError::NotFound {
                table: table.into(),
                network_id: network_id.into(),
                key: key.into(),
            })
    }

    /// The visible entries of one table in one network: (key, value, owner).
    pub fn table_by_network(&self, table: &str, network_id: &str) -> Vec<(&str, &[u8], &str)> {
        self.store
            .walk_prefix(table, network_id, "")
            .filter(EntryView::is_visible)
            .map(|v| (v.key, v.value, self.store.node_name(v.owner)))
            .collect()
    }

    // ---- local table operations --------------------------------------------

    /// Create an entry owned by this node (allowed over a tombstone).
    pub fn create_entry(
        &mut self,
        table: &str,
        network_id: &str,
        key: &str,
        value: &[u8],
    ) -> Result<LocalChange, TableError> {
        self.store.create(self.me, table, network_id, key, value)
    }

    /// Update a visible entry; this node becomes its owner.
    pub fn update_entry(
        &mut self,
        table: &str,
        network_id: &str,
        key: &str,
        value: &[u8],
    ) -> Result<LocalChange, TableError> {
        self.store.update(self.me, table, network_id, key, value)
    }

    /// Delete a visible entry, leaving a tombstone for the reap interval.
    pub fn delete_entry(
        &mut self,
        table: &str,
        network_id: &str,
        key: &str,
        now: u64,
    ) -> Result<LocalChange, TableError> {
        self.store.delete(self.me, table, network_id, key, now)
    }

    // ---- remote table events -------------------------------------------------

    /// Merge a table event from a peer (see [`TableStore::merge`] for the
    /// rules). This node's own events are dropped before anything else, as
    /// libnetwork's message handler does. Membership comes from the
    /// attachments: this node must have joined the network and not be
    /// leaving it, and the owner must have a non-leaving attachment to it.
    pub fn apply_table_event(
        &mut self,
        ev: &TableEvent,
        is_bulk_sync: bool,
        now: u64,
    ) -> TableOutcome {
        if ev.node_name == self.node_name() {
            return TableOutcome {
                verdict: Verdict::OwnEvent,
                watch: None,
                rebroadcast: None,
            };
        }
        let nid = ev.network_id.as_str();
        let owner = self
            .store
            .node_id(&ev.node_name)
            .filter(|&id| self.networks.is_attached(id, nid));
        let ctx = MergeContext {
            joined: self.networks.is_joined(nid),
            in_sync: self.networks.in_sync(nid),
            owner,
        };
        self.store.merge(ev, ctx, is_bulk_sync, now)
    }

    /// Whether a peer's table event would be dropped as stale by
    /// [`Self::apply_table_event`] (then only [`Self::witness_table_time`] is
    /// left to do). Not for this node's own events.
    pub fn is_stale_table_event(&self, table: &str, network_id: &str, key: &str, ltime: u64, node: &str) -> bool {
        self.store.is_stale(table, network_id, key, ltime, node)
    }

    /// The table clock witnesses a peer's table time.
    pub fn witness_table_time(&mut self, ltime: u64) {
        self.store.witness(ltime);
    }

    /// Table events for every entry of the given networks (tombstones and
    /// hidden entries included, with residual reap times), to bulk sync.
    pub fn bulk_sync_events(&self, network_ids: &[&str], now: u64) -> Vec<TableEvent> {
        self.store.bulk_sync_events(network_ids, now)
    }

    /// Merge a bulk sync: the table clock witnesses its `ltime` (if not 0),
    /// then each event is merged with `is_bulk_sync`.
    pub fn apply_bulk_sync(
        &mut self,
        ltime: u64,
        events: &[TableEvent],
        now: u64,
    ) -> Vec<TableOutcome> {
        if ltime > 0 {
            self.store.witness(ltime);
        }
        events
            .iter()
            .map(|ev| self.apply_table_event(ev, true, now))
            .collect()
    }

    // ---- this node's networks -------------------------------------------------

    /// Join a network. Returns the event to gossip. The caller then bulk
    /// syncs with [`Self::network_peers`] and calls [`Self::mark_in_sync`]
    /// (libnetwork does so whether or not the sync succeeded).
    pub fn join_network(&mut self, network_id: &str) -> Result<NetworkEvent, NetworkError> {
        let ltime = self.networks.join(network_id)?;
        Ok(NetworkEvent {
            kind: NetworkEventType::Join,
            ltime,
            node_name: self.node_name().to_owned(),
            network_id: network_id.to_owned(),
        })
    }

    /// The seed's updateLocalStateTime: this node's attachments and entries
    /// get fresh Lamport times, so that a node rejoining after a gossip
    /// failure overrides any stale leave or delete its peers still hold.
    pub fn refresh_local_state_time(&mut self) {
        self.networks.refresh_own_times();
        self.store.refresh_owner_times(self.me);
    }

    /// Record that the join-time bulk sync of a network is done: from now on
    /// events of the network are relayed. False if not joined.
    pub fn mark_in_sync(&mut self, network_id: &str) -> bool {
        self.networks.mark_in_sync(network_id)
    }

    /// Leave a network: this node's entries there become tombstones with
    /// fresh ltimes, everyone else's are dropped (see
    /// [`TableStore::leave_network`]); nothing but the network event is sent.
    pub fn leave_network(
        &mut self,
        network_id: &str,
        now: u64,
    ) -> Result<NetworkLeave, NetworkError> {
        let ltime = self.networks.leave(network_id, now)?;
        let watch = self.store.leave_network(self.me, network_id, now);
        Ok(NetworkLeave {
            event: NetworkEvent {
                kind: NetworkEventType::Leave,
                ltime,
                node_name: self.node_name().to_owned(),
                network_id: network_id.to_owned(),
            },
            watch,
        })
    }

    /// The nodes in a network and not leaving it: this node if it has joined,
    /// and the active peers attached to it. What gossip and bulk sync of the
    /// network pick from.
    pub fn network_peers(&self, network_id: &str) -> Vec<&str> {
        let me = self
            .networks
            .is_joined(network_id)
            .then(|| self.node_name());
        me.into_iter()
            .chain(
                self.networks
                    .peers(network_id)
                    .map(|id| self.store.node_name(id)),
            )
            .collect()
    }

    /// How many peers (not this node) gossip of the network picks from.
    pub fn network_peer_count(&self, network_id: &str) -> usize {
        self.networks.peer_count(network_id)
    }

    /// The name of the `i`th peer of [`Self::network_peer_count`] (id order,
    /// as [`Self::network_peers`] lists them after this node).
    pub fn network_peer_at(&self, network_id: &str, i: usize) -> Option<&str> {
        self.networks.peer_at(network_id, i).map(|id| self.store.node_name(id))
    }

    /// The networks a bulk sync with `node` covers: this node's networks in
    /// which `node` has a non-leaving attachment.
    pub fn common_networks(&self, node: &str) -> Vec<&str> {
        match self.store.node_id(node) {
            Some(id) => self.networks.common_networks(id),
            None => Vec::new(),
        }
    }

    // ---- peers' networks -------------------------------------------------------

    /// Merge a peer's join or leave of a network (Lamport comparison; see
    /// [`Networks::apply`]). On a leave the peer's entries in the network are
    /// dropped as [`Config::departed_entries`] says, without broadcasting
    /// anything: every node sees the leave and drops them itself.
    pub fn apply_network_event(&mut self, ev: &NetworkEvent, now: u64) -> NetworkOutcome {
        let leave = ev.kind == NetworkEventType::Leave;
        self.apply_network_change(&ev.node_name, &ev.network_id, leave, ev.ltime, now)
    }

    /// [`Self::apply_network_event`] from borrowed fields: a push/pull's
    /// attachments are merged without building an event for each.
    fn apply_network_change(
        &mut self,
        node_name: &str,
        network_id: &str,
        leave: bool,
        ltime: u64,
        now: u64,
    ) -> NetworkOutcome {
        self.networks.witness(ltime);
        if node_name == self.node_name() {
            return NetworkOutcome {
                verdict: NetworkVerdict::OwnEvent,
                watch: Vec::new(),
            };
        }
        let Some(id) = self.store.node_id(node_name) else {
            // Never seen by memberlist: it can be neither attached nor active.
            let verdict = if leave {
                NetworkVerdict::UnknownLeave
            } else {
                NetworkVerdict::NodeNotActive
            };
            return NetworkOutcome {
                verdict,
                watch: Vec::new(),
            };
        };
        let active = self.nodes.is_active(id);
        let verdict = self
            .networks
            .apply(id, active, network_id, leave, ltime, now);
        let watch = if verdict == NetworkVerdict::Left {
            self.store
                .drop_owner_in_network(id, network_id, self.config.departed_entries, now)
        } else {
            Vec::new()
        };
        NetworkOutcome { verdict, watch }
    }

    /// This node's push/pull state: the network clock and every attachment
    /// it knows (its own and its peers', leaving ones included) with their
    /// ltimes. With `join` (memberlist's join-time exchange) its own
    /// attachments get a fresh ltime first, so that they override any stale
    /// leave a peer still holds for them.
    pub fn local_push_pull(&mut self, join: bool) -> NetworkPushPull {
        let (ltime, me, networks) = self.local_push_pull_refs(join);
        let node_name = me.to_owned();
        let networks = networks
            .into_iter()
            .map(|n| NetworkEntry {
                network_id: n.network_id.to_owned(),
                ltime: n.ltime,
                node_name: n.node_name.to_owned(),
                leaving: n.leaving,
            })
            .collect();
        NetworkPushPull { ltime, networks, node_name }
    }

    /// [`Self::local_push_pull`] as the network clock, this node's name and
    /// views of the attachments (nothing copied): a push/pull lists every
    /// attachment in the cluster, and is encoded straight from these.
    pub fn local_push_pull_refs(&mut self, join: bool) -> (u64, &str, Vec<NetworkEntryRef<'_>>) {
        if join {
            self.networks.refresh_own_times();
        }
        let me = self.node_name();
        let own = self.networks.own_networks().map(|(nid, a)| NetworkEntryRef {
            network_id: nid,
            ltime: a.ltime,
            node_name: me,
            leaving: a.leaving,
        });
        let peers = self.networks.all_attachments().map(|(node, nid, a)| NetworkEntryRef {
            network_id: nid,
            ltime: a.ltime,
            node_name: self.store.node_name(node),
            leaving: a.leaving,
        });
        (self.networks.clock().time(), me, own.chain(peers).collect())
    }

    /// Merge a peer's push/pull state: its node join event (with the
    /// push/pull's ltime), then each attachment as a network event.
    pub fn merge_push_pull(&mut self, pp: &NetworkPushPull, now: u64) -> PushPullOutcome {
        let networks = pp.networks.iter().map(NetworkEntry::as_ref);
        self.merge_push_pull_entries(pp.ltime, &pp.node_name, networks, now)
    }

    /// [`Self::merge_push_pull`] from the push/pull's parts, its attachments
    /// borrowed (as read from the wire): one that changes nothing costs
    /// lookups and no allocation.
    pub fn merge_push_pull_entries<'a>(
        &mut self,
        ltime: u64,
        node_name: &str,
        networks: impl IntoIterator<Item = NetworkEntryRef<'a>>,
        now: u64,
    ) -> PushPullOutcome {
        let node = self.apply_node_event(
            &NodeEvent {
                kind: NodeEventType::Join,
                ltime,
                node_name: node_name.to_owned(),
            },
            now,
        );
        let mut out = PushPullOutcome {
            node_changed: node.changed,
            networks_changed: 0,
            watch: node.watch,
        };
        for n in networks {
            let r = self.apply_network_change(n.node_name, n.network_id, n.leaving, n.ltime, now);
            if r.verdict.changed() {
                out.networks_changed += 1;
            }
            out.watch.extend(r.watch);
        }
        out
    }

    // ---- membership ------------------------------------------------------------

    /// This node's own node event (join or leave of the cluster), stamped
    /// with a tick of the network clock, to gossip.
    pub fn node_event(&mut self, kind: NodeEventType) -> NodeEvent {
        NodeEvent {
            kind,
            ltime: self.networks.tick(),
            node_name: self.node_name().to_owned(),
        }
    }

    /// Memberlist reports `name` alive (its `NotifyJoin`). A node never seen
    /// becomes an active member, with no attachments yet; a failed or left
    /// node is a rejoin ([`Self::node_rejoined`]). This node is ignored. (A
    /// new incarnation of a node under another name is the caller's to spot,
    /// by address: libnetwork then calls [`Self::node_left`] for the old name.)
    pub fn node_joined(&mut self, name: &str, now: u64) -> NodeChange {
        if name == self.node_name() {
            return NodeChange::default();
        }
        let id = self.store.intern_node(name);
        match self.nodes.add_active(id) {
            Transition::Moved { .. } => NodeChange {
                changed: true,
                watch: Vec::new(),
            },
            _ => self.node_rejoined(name, now),
        }
    }

    /// A failed or left node is back. A failed node's suspended state comes
    /// back as it was last merged: it is a gossip peer again of the networks
    /// it was attached to, and its remembered entries are visible again
    /// (watchers see a create for each) with no need for anything to be
    /// re-sent. A left node had its state dropped: it just becomes active and
    /// rebuilds its attachments through gossip. No-op for an active or
    /// unknown node.
    pub fn node_rejoined(&mut self, name: &str, now: u64) -> NodeChange {
        let Some(id) = self.peer_id(name) else {
            return NodeChange::default();
        };
        let reap = self.config.node_reap_interval;
        match self.nodes.set_state(id, NodeState::Active, now, reap) {
            Transition::Moved { .. } => {
                self.networks.restore_node(id);
                NodeChange {
                    changed: true,
                    watch: self.store.restore_owner(id),
                }
            }
            _ => NodeChange::default(),
        }
    }

    /// Memberlist declared an active node dead (its `NotifyLeave` for a node
    /// that did not say goodbye). The node may be only cut off, so its state
    /// is suspended, not dropped: it stops being a gossip peer of its
    /// networks but its attachments are kept; its live entries are hidden
    /// from reads and watchers (who see a delete for each) but kept, still
    /// merged and relayed when peers that can reach it send them, and they
    /// age out after [`Config::reap_entry_interval`], so that none outlives
    /// a tombstone that would have deleted it. If the node does not come back
    /// within [`Config::node_reap_interval`], the reaper drops everything
    /// left of it. No-op for a node that is not active.
    pub fn node_failed(&mut self, name: &str, now: u64) -> NodeChange {
        let Some(id) = self.peer_id(name) else {
            return NodeChange::default();
        };
        if !self.nodes.is_active(id) {
            return NodeChange::default();
        }
        let reap = self.config.node_reap_interval;
        self.nodes.set_state(id, NodeState::Failed, now, reap);
        self.networks.suspend_node(id);
        NodeChange {
            changed: true,
            watch: self.store.suspend_owner(id, now),
        }
    }

    /// The node left the cluster for good (its leave node event, or a new
    /// incarnation replaced it). All its entries, tombstones included, are
    /// removed and its attachments forgotten, without broadcasting anything:
    /// every node drops them on seeing the leave. Watchers see a delete for
    /// each entry still visible (none if it had failed: they were told
    /// then). The node is remembered as left until reaped, so that stale
    /// events about it are recognised. No-op for a node already left.
    pub fn node_left(&mut self, name: &str, now: u64) -> NodeChange {
        let Some(id) = self.peer_id(name) else {
            return NodeChange::default();
        };
        let reap = self.config.node_reap_interval;
        match self.nodes.set_state(id, NodeState::Left, now, reap) {
            Transition::Moved { .. } => {
                let watch = self.store.drop_owner(id);
                self.networks.forget_node(id);
                NodeChange {
                    changed: true,
                    watch,
                }
            }
            _ => NodeChange::default(),
        }
    }

    /// Merge a peer's node event (libnetwork's `handleNodeEvent`): the
    /// network clock witnesses it; it counts only for a known node and if
    /// newer than the last one seen for it; it acts only on an active node,
    /// for which a leave means [`Self::node_left`] (a join changes nothing:
    /// memberlist decides liveness). `changed` says whether to relay it.
    pub fn apply_node_event(&mut self, ev: &NodeEvent, now: u64) -> NodeChange {
        self.networks.witness(ev.ltime);
        let Some(id) = self.peer_id(&ev.node_name) else {
            return NodeChange::default();
        };
        if !self.nodes.witness_event(id, ev.ltime) || !self.nodes.is_active(id) {
            return NodeChange::default();
        }
        match ev.kind {
            NodeEventType::Join => NodeChange::default(),
            NodeEventType::Leave => self.node_left(&ev.node_name, now),
        }
    }

    /// Whether `ev` is a `Join` fresher than the latest event of a node held
    /// as failed or left (which [`Self::apply_node_event`] ignores, as
    /// libnetwork does: the caller revives the node if memberlist has it
    /// alive).
    pub fn join_revives(&self, ev: &NodeEvent) -> bool {
        ev.kind == NodeEventType::Join
            && self
                .peer_id(&ev.node_name)
                .and_then(|id| self.nodes.get(id))
                .is_some_and(|r| r.state != NodeState::Active && r.ltime < ev.ltime)
    }

    fn peer_id(&self, name: &str) -> Option<NodeId> {
        self.store.node_id(name).filter(|&id| id != self.me)
    }

    // ---- reaping ---------------------------------------------------------------

    /// Drop what has expired: tombstones and aged-out entries of failed
    /// owners first, then leaving attachments, then failed and left nodes
    /// whose node reap interval is over (a failed node's remaining
    /// attachments and entries go with it, silently: watchers were told
    /// when it failed).
    pub fn reap(&mut self, now: u64) -> ReapCounts {
        let entries = self.store.reap(now);
        let (own_networks, peer_networks) = self.networks.reap(now);
        let gone = self.nodes.reap(now);
        for &(id, _) in &gone {
            self.store.drop_owner(id);
            self.networks.forget_node(id);
        }
        ReapCounts {
            entries,
            own_networks,
            peer_networks,
            nodes: gone.len(),
        }
    }
}
