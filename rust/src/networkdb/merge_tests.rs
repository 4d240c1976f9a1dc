//! networkdb's push/pull and bulk-sync merges read their entries in place and
//! drop the ones that change nothing before building owned events. These
//! tests pin down that entries that do change something still do, and that a
//! bulk sync ends exactly as `NetworkDb::apply_bulk_sync` (every event merged
//! in full) leaves a node.

use std::net::SocketAddr;

use proptest::prelude::*;

use super::convert::{push_pull_to_wire, table_to_wire};
use super::events::{
    NetworkEntry, NetworkEvent, NetworkEventType, NetworkPushPull, TableEvent, TableEventType,
    WatchOp,
};
use super::protocol::{NdbNode, Settings, Trace};
use super::NetworkDb;
use crate::swim::config::{Config, SEC};
use crate::swim::{Delegate, Member};
use crate::wire::memberlist::node_state;
use crate::wire::networkdb::{self as pb, Payload};

const ME: &str = "nm-me";
const NET: &str = "nm-net";
const PEERS: [&str; 3] = ["nm-1", "nm-2", "nm-3"];

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 8, 0, i], 7946))
}

/// A node in NET (in sync), whose memberlist reported PEERS alive, each
/// attached to NET at ltime 5.
fn node() -> NdbNode {
    let mut n = NdbNode::new(0, Config::lan(ME), Settings::default(), addr(100), None, 5);
    assert!(n.join_network(0, NET).is_ok());
    n.core.db.mark_in_sync(NET);
    for (i, p) in PEERS.iter().enumerate() {
        let m = Member {
            name: (*p).into(),
            addr: addr(i as u8 + 1),
            meta: Vec::new(),
            state: node_state::ALIVE,
            incarnation: 1,
        };
        n.core.notify_join(0, &m);
        let ev = NetworkEvent {
            kind: NetworkEventType::Join,
            ltime: 5,
            node_name: (*p).into(),
            network_id: NET.into(),
        };
        assert!(n.core.db.apply_network_event(&ev, 0).rebroadcast());
    }
    n.discard_broadcasts();
    n.take_watch_events();
    n
}

fn entry(node: &str, net: &str, ltime: u64, leaving: bool) -> NetworkEntry {
    NetworkEntry {
        network_id: net.into(),
        ltime,
        node_name: node.into(),
        leaving,
    }
}

fn push_pull(networks: Vec<NetworkEntry>) -> NetworkPushPull {
    NetworkPushPull {
        ltime: 20,
        networks,
        node_name: PEERS[0].into(),
    }
}

/// The peer attachments the node holds, as (node, network, ltime, leaving).
fn attachments(db: &NetworkDb) -> Vec<(String, String, u64, bool)> {
    db.networks()
        .all_attachments()
        .map(|(id, nid, a)| {
            (
                db.name_of(id).to_owned(),
                nid.to_owned(),
                a.ltime,
                a.leaving,
            )
        })
        .collect()
}

fn merge(n: &mut NdbNode, pp: &NetworkPushPull) {
    let bytes = push_pull_to_wire(pp).encode_gossip();
    n.core.merge_remote_state(SEC, &bytes, false);
}

#[test]
fn a_known_push_pull_changes_nothing_but_the_clock() {
    let mut n = node();
    let known: Vec<NetworkEntry> = PEERS.iter().map(|p| entry(p, NET, 5, false)).collect();
    let before = attachments(&n.core.db);
    let mut pp = push_pull(known);
    pp.networks.push(entry(ME, NET, 3, true)); // about this node: never merged
    pp.networks.push(entry(PEERS[1], NET, 4, true)); // older than what is held
    merge(&mut n, &pp);
    assert_eq!(attachments(&n.core.db), before);
    assert!(n.take_watch_events().is_empty());
    assert_eq!(n.core.counters.bad_messages, 0);
    // Every ltime seen was witnessed, the push/pull's own included.
    assert_eq!(n.core.db.networks().clock().time(), 21);
}

#[test]
fn push_pull_entries_that_change_something_are_merged() {
    let mut n = node();
    // p1 gives its entry in NET, which its leave must take away.
    let create = TableEvent {
        kind: TableEventType::Create,
        ltime: 1,
        node_name: PEERS[0].into(),
        network_id: NET.into(),
        table_name: "t".into(),
        key: "k".into(),
        value: b"v".to_vec(),
        residual_reap_time: 0,
    };
    assert!(n.core.db.apply_table_event(&create, false, 0).changed());
    n.take_watch_events();
    let pp = push_pull(vec![
        entry(PEERS[0], NET, 6, true),         // a newer leave
        entry(PEERS[1], "nm-other", 2, false), // a new attachment of an active node
        entry("nm-unknown", NET, 9, false),    // of a node memberlist never reported
        entry(PEERS[2], NET, 5, false),        // known
    ]);
    merge(&mut n, &pp);
    let got = attachments(&n.core.db);
    assert!(
        got.contains(&(PEERS[0].into(), NET.into(), 6, true)),
        "{got:?}"
    );
    assert!(
        got.contains(&(PEERS[1].into(), "nm-other".into(), 2, false)),
        "{got:?}"
    );
    assert!(!got.iter().any(|a| a.0 == "nm-unknown"));
    let w = n.take_watch_events();
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].op, w[0].key.as_str()), (WatchOp::Delete, "k"));
    assert!(n.core.db.network_peers(NET).iter().all(|p| *p != PEERS[0]));
}

#[test]
fn a_push_pull_that_is_not_one_is_a_bad_message() {
    let mut n = node();
    let ev = NetworkEvent {
        kind: NetworkEventType::Join,
        ltime: 1,
        node_name: "x".into(),
        network_id: NET.into(),
    };
    let not_pp = super::convert::network_to_wire(&ev).encode_gossip();
    n.core.merge_remote_state(SEC, &not_pp, false);
    n.core
        .merge_remote_state(SEC, &[0x08, 0x03, 0x12, 0x05, 0x0a], false);
    assert_eq!(n.core.counters.bad_messages, 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Through the wire (read in place) a push/pull leaves the node as
    /// `NetworkDb::merge_push_pull` on the decoded, owned state does.
    #[test]
    fn push_pull_merges_as_the_owned_state(entries in proptest::collection::vec(arb_entry(), 0..16)) {
        let mut n = node();
        let mut reference = n.core.db.clone();
        let pp = push_pull(entries);
        let out = reference.merge_push_pull(&pp, SEC);
        merge(&mut n, &pp);
        prop_assert_eq!(attachments(&n.core.db), attachments(&reference));
        prop_assert_eq!(n.core.db.networks().clock().time(), reference.networks().clock().time());
        prop_assert_eq!(n.take_watch_events(), out.watch);
    }
}

fn arb_entry() -> impl Strategy<Value = NetworkEntry> {
    let nodes = prop_oneof![
        Just(PEERS[0]),
        Just(PEERS[1]),
        Just(PEERS[2]),
        Just(ME),
        Just("nm-unknown")
    ];
    let nets = prop_oneof![Just(NET), Just("nm-other")];
    (nodes, nets, 3u64..9, any::<bool>())
        .prop_map(|(node, net, ltime, leaving)| entry(node, net, ltime, leaving))
}

// ---- bulk sync -------------------------------------------------------------------

fn arb_table_event() -> impl Strategy<Value = TableEvent> {
    let owners = prop_oneof![4 => Just(PEERS[0]), 2 => Just(PEERS[1]), 1 => Just(ME), 1 => Just("nm-unknown")];
    let kinds = prop_oneof![
        Just(TableEventType::Create),
        Just(TableEventType::Update),
        Just(TableEventType::Delete)
    ];
    let nets = prop_oneof![6 => Just(NET), 1 => Just("nm-other")];
    let keys = prop_oneof![Just("k1"), Just("k2"), Just("k3")];
    (
        owners,
        kinds,
        nets,
        keys,
        1u64..8,
        0i32..3,
        prop_oneof![Just("a"), Just("b")],
    )
        .prop_map(
            |(owner, kind, net, key, ltime, residual, value)| TableEvent {
                kind,
                ltime,
                node_name: owner.into(),
                network_id: net.into(),
                table_name: "t".into(),
                key: key.into(),
                value: value.as_bytes().to_vec(),
                residual_reap_time: residual,
            },
        )
}

/// Every stored entry of NET, and the table clock.
fn store_state(db: &NetworkDb) -> (Vec<String>, u64) {
    let entries = db
        .store()
        .network_entries(NET)
        .map(|e| format!("{e:?}"))
        .collect();
    (entries, db.store().clock().time())
}

fn bulk_sync_bytes(l_time: u64, events: &[TableEvent], invalid_kind: bool) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = events
        .iter()
        .map(|e| table_to_wire(e).encode_gossip())
        .collect();
    if invalid_kind {
        // A table event of kind 0 (INVALID): counted as bad, not merged.
        let mut bad = table_to_wire(&events[0]);
        bad.r#type = pb::TableEventType(0);
        parts.insert(1.min(parts.len()), bad.encode_gossip());
    }
    let bsm = pb::BulkSyncMessage {
        l_time,
        unsolicited: false,
        node_name: PEERS[1].into(),
        networks: vec![NET.into()],
        payload: pb::make_compound(&parts),
    };
    bsm.encode_gossip()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A bulk sync merged by the node (events already held only witnessed,
    /// in their turn) ends as `NetworkDb::apply_bulk_sync` (every event merged
    /// in full) leaves the data model: same entries, same clock, the same
    /// watch events and traced changes in the same order.
    #[test]
    fn bulk_sync_merges_as_apply_bulk_sync(
        held in proptest::collection::vec(arb_table_event(), 0..8),
        sync in proptest::collection::vec(arb_table_event(), 1..12),
        l_time in 0u64..12,
        invalid_kind in any::<bool>(),
    ) {
        let mut n = node();
        for e in &held {
            let _ = n.core.db.apply_table_event(e, false, 0);
        }
        n.take_watch_events();
        n.set_tracing(true);
        let mut reference = n.core.db.clone();
        let outs = reference.apply_bulk_sync(l_time, &sync, SEC);
        let bad_before = n.core.counters.bad_messages;
        n.core.receive_for_test(SEC, &bulk_sync_bytes(l_time, &sync, invalid_kind));
        prop_assert_eq!(store_state(&n.core.db), store_state(&reference));
        let want_watch: Vec<_> = outs.iter().filter_map(|o| o.watch.clone()).collect();
        prop_assert_eq!(n.take_watch_events(), want_watch);
        let want_trace: Vec<Trace> = sync
            .iter()
            .zip(&outs)
            .filter(|(_, o)| o.changed())
            .map(|(e, _)| Trace::Table { key: e.key.clone(), ltime: e.ltime, deleting: e.kind == TableEventType::Delete })
            .collect();
        prop_assert_eq!(n.take_trace(), want_trace);
        prop_assert_eq!(n.core.counters.table_events_in, sync.len() as u64);
        prop_assert_eq!(n.core.counters.table_events_applied, outs.iter().filter(|o| o.changed()).count() as u64);
        let relays = outs.iter().filter(|o| o.rebroadcast.as_ref().is_some_and(|r| r.network_id == NET)).count();
        prop_assert_eq!(n.core.counters.relayed, relays as u64);
        prop_assert_eq!(n.core.counters.bad_messages - bad_before, u64::from(invalid_kind));
    }
}

#[test]
fn a_bulk_sync_of_known_entries_only_moves_the_clock() {
    let mut n = node();
    let ev = |ltime, value: &str| TableEvent {
        kind: TableEventType::Create,
        ltime,
        node_name: PEERS[0].into(),
        network_id: NET.into(),
        table_name: "t".into(),
        key: "k".into(),
        value: value.as_bytes().to_vec(),
        residual_reap_time: 0,
    };
    assert!(n.core.db.apply_table_event(&ev(4, "v"), false, 0).changed());
    n.take_watch_events();
    n.set_tracing(true);
    let before = store_state(&n.core.db);
    // Held, then older (stale), then a newer one that must still be merged.
    n.core
        .receive_for_test(SEC, &bulk_sync_bytes(0, &[ev(4, "v"), ev(2, "old")], false));
    assert_eq!(store_state(&n.core.db).0, before.0);
    assert_eq!(store_state(&n.core.db).1, before.1.max(5));
    assert!(n.take_watch_events().is_empty() && n.take_trace().is_empty());
    n.core.receive_for_test(
        SEC,
        &bulk_sync_bytes(9, &[ev(4, "v"), ev(6, "new"), ev(5, "late")], false),
    );
    assert_eq!(n.core.db.get_entry("t", NET, "k"), Ok(&b"new"[..]));
    assert_eq!(
        n.take_trace(),
        [Trace::Table {
            key: "k".into(),
            ltime: 6,
            deleting: false
        }]
    );
    assert_eq!(n.core.db.store().clock().time(), 10);
}
