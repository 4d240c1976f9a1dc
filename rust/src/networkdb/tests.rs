//! Scenario tests of [`NetworkDb`]: one test per merge rule, membership
//! changes, partitions healing through bulk sync, and convergence properties.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const MIN: u64 = 60 * SECOND;
const REAP: u64 = 30 * MIN;
const N1: &str = "n1";
const T1: &str = "t1";

// ---- helpers -------------------------------------------------------------------

/// `me`, joined to n1 and in sync, with active peers attached to n1.
fn db_with_peers(me: &str, peers: &[&str]) -> NetworkDb {
    let mut db = NetworkDb::new(me, Config::default());
    db.join_network(N1).unwrap();
    db.mark_in_sync(N1);
    for (i, p) in peers.iter().enumerate() {
        db.node_joined(p, 0);
        let out = db.apply_network_event(&join_ev(p, N1, i as u64 + 1), 0);
        assert!(out.rebroadcast());
    }
    db
}

fn join_ev(node: &str, nid: &str, ltime: u64) -> NetworkEvent {
    NetworkEvent {
        kind: NetworkEventType::Join,
        ltime,
        node_name: node.into(),
        network_id: nid.into(),
    }
}

fn leave_ev(node: &str, nid: &str, ltime: u64) -> NetworkEvent {
    NetworkEvent {
        kind: NetworkEventType::Leave,
        ..join_ev(node, nid, ltime)
    }
}

fn tev(kind: TableEventType, ltime: u64, owner: &str, key: &str, value: &str) -> TableEvent {
    TableEvent {
        kind,
        ltime,
        node_name: owner.into(),
        network_id: N1.into(),
        table_name: T1.into(),
        key: key.into(),
        value: value.as_bytes().to_vec(),
        residual_reap_time: 0,
    }
}

use TableEventType::{Create, Delete, Update};

fn visible(db: &NetworkDb) -> BTreeMap<String, Vec<u8>> {
    db.table_by_network(T1, N1)
        .into_iter()
        .map(|(k, v, _)| (k.to_owned(), v.to_vec()))
        .collect()
}

fn watch_list(out: &[Option<WatchEvent>]) -> Vec<(WatchOp, String, String)> {
    out.iter()
        .flatten()
        .map(|w| {
            (
                w.op,
                w.key.clone(),
                String::from_utf8(w.value.clone()).unwrap(),
            )
        })
        .collect()
}

/// Everything `from` would bulk sync to `to`, merged by `to`.
fn bulk_sync(from: &NetworkDb, to: &mut NetworkDb, now: u64) -> Vec<TableOutcome> {
    let nids: Vec<String> = from
        .common_networks(to.node_name())
        .into_iter()
        .map(String::from)
        .collect();
    let nids: Vec<&str> = nids.iter().map(String::as_str).collect();
    let events = from.bulk_sync_events(&nids, now);
    to.apply_bulk_sync(from.store().clock().time(), &events, now)
}

/// Nodes that all know each other and have all joined n1 (in sync).
fn cluster(names: &[&str]) -> Vec<NetworkDb> {
    let mut dbs: Vec<NetworkDb> = names
        .iter()
        .map(|n| NetworkDb::new(n, Config::default()))
        .collect();
    let joins: Vec<NetworkEvent> = dbs
        .iter_mut()
        .map(|d| d.join_network(N1).unwrap())
        .collect();
    for d in dbs.iter_mut() {
        for n in names {
            d.node_joined(n, 0);
        }
        for j in &joins {
            d.apply_network_event(j, 0);
        }
        d.mark_in_sync(N1);
    }
    dbs
}

// ---- table events: one test per merge rule ------------------------------------


/// Peers as a set: their order is that of the process-wide node ids
/// (`intern::node_id`), which depends on what else the test process named.
fn assert_same_peers(got: Vec<&str>, want: &[&str]) {
    let mut got = got;
    let mut want = want.to_vec();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
}

#[test]
fn rule_witness_table_clock_even_when_ignored() {
    let mut db = db_with_peers("me", &["p1"]);
    let mut ev = tev(Create, 41, "p1", "k", "v");
    ev.network_id = "not-joined".into();
    let out = db.apply_table_event(&ev, false, 0);
    assert_eq!(out.verdict, Verdict::NotInNetwork);
    assert_eq!(db.store().clock().time(), 42);
    let c = db.create_entry(T1, N1, "mine", b"").unwrap();
    assert_eq!(c.event.ltime, 43, "local events order after what was seen");
}

#[test]
fn rule_own_events_are_ignored() {
    let mut db = db_with_peers("me", &["p1"]);
    let out = db.apply_table_event(&tev(Create, 5, "me", "k", "v"), false, 0);
    assert_eq!(out.verdict, Verdict::OwnEvent);
    assert!(!out.changed());
    assert!(db.get_entry(T1, N1, "k").is_err());
}

#[test]
fn rule_ignore_events_for_networks_not_joined() {
    let mut db = NetworkDb::new("me", Config::default());
    db.node_joined("p1", 0);
    let out = db.apply_table_event(&tev(Create, 1, "p1", "k", "v"), false, 0);
    assert_eq!(out.verdict, Verdict::NotInNetwork);
    assert_eq!(out.rebroadcast, None);
    assert!(db.store().is_empty());
}

#[test]
fn rule_ignore_events_for_networks_being_left() {
    let mut db = db_with_peers("me", &["p1"]);
    db.leave_network(N1, 0).unwrap();
    let out = db.apply_table_event(&tev(Create, 10, "p1", "k", "v"), false, 0);
    assert_eq!(out.verdict, Verdict::NotInNetwork);
    assert!(db.store().get(T1, N1, "k").is_none());
}

#[test]
fn rule_ignore_events_whose_owner_is_not_in_the_network() {
    let mut db = db_with_peers("me", &["p1"]);
    // Never heard of.
    let out = db.apply_table_event(&tev(Create, 1, "stranger", "k", "v"), false, 0);
    assert_eq!(out.verdict, Verdict::OwnerNotInNetwork);
    // Known, active, but not attached to n1.
    db.node_joined("p2", 0);
    let out = db.apply_table_event(&tev(Create, 2, "p2", "k", "v"), false, 0);
    assert_eq!(out.verdict, Verdict::OwnerNotInNetwork);
    // Attached, then left the network: its late events are refused.
    db.apply_network_event(&leave_ev("p1", N1, 10), 0);
    let out = db.apply_table_event(&tev(Create, 3, "p1", "k", "v"), false, 0);
    assert_eq!(out.verdict, Verdict::OwnerNotInNetwork);
    assert!(db.store().is_empty());
}

#[test]
fn rule_event_not_newer_is_ignored() {
    let mut db = db_with_peers("me", &["p1", "p2"]);
    assert!(db
        .apply_table_event(&tev(Create, 5, "p1", "k", "a"), false, 0)
        .changed());
    for (ltime, owner) in [(4, "p2"), (5, "p1")] {
        let out = db.apply_table_event(&tev(Update, ltime, owner, "k", "b"), false, 0);
        assert_eq!(out.verdict, Verdict::Stale);
        assert_eq!(out.watch, None);
        assert_eq!(out.rebroadcast, None);
    }
    let out = db.apply_table_event(&tev(Delete, 5, "p1", "k", "a"), false, 0);
    assert_eq!(
        out.verdict,
        Verdict::Stale,
        "equal ltime from the same owner loses, even for a delete"
    );
    assert_eq!(db.get_entry(T1, N1, "k").unwrap(), b"a");
}

#[test]
fn rule_equal_ltime_larger_owner_name_wins() {
    // Two nodes wrote the key at the same Lamport time: every node must pick
    // the same winner whatever the order of arrival.
    for order in [["p1", "p2"], ["p2", "p1"]] {
        let mut db = db_with_peers("me", &["p1", "p2"]);
        for owner in order {
            db.apply_table_event(&tev(Create, 5, owner, "k", owner), false, 0);
        }
        assert_eq!(db.get_entry(T1, N1, "k").unwrap(), b"p2");
    }
}

#[test]
fn rule_newer_event_wins_and_keeps_its_owner() {
    let mut db = db_with_peers("me", &["p1", "p2"]);
    db.apply_table_event(&tev(Create, 5, "p1", "k", "a"), false, 0);
    let out = db.apply_table_event(&tev(Update, 6, "p2", "k", "b"), false, 0);
    assert!(out.changed());
    let v = db.store().get(T1, N1, "k").unwrap();
    assert_eq!(db.name_of(v.owner), "p2");
    assert_eq!((v.ltime, v.value), (6, &b"b"[..]));
}

#[test]
fn rule_delete_of_unknown_entry_is_stored_as_tombstone_silently() {
    let mut db = db_with_peers("me", &["p1"]);
    let mut ev = tev(Delete, 7, "p1", "k", "old");
    ev.residual_reap_time = 600;
    let out = db.apply_table_event(&ev, false, 100);
    assert!(out.changed());
    assert_eq!(out.watch, None, "watchers never saw it");
    let v = db.store().get(T1, N1, "k").unwrap();
    assert!(v.deleting);
    assert_eq!(v.ltime, 7);
    assert_eq!(v.reap_at, Some(100 + 600 * SECOND));
    assert!(db.get_entry(T1, N1, "k").is_err());
}

#[test]
fn rule_tombstone_blocks_late_create() {
    let mut db = db_with_peers("me", &["p1"]);
    db.apply_table_event(&tev(Delete, 7, "p1", "k", ""), false, 0);
    for (kind, ltime) in [(Create, 6), (Update, 7)] {
        let out = db.apply_table_event(&tev(kind, ltime, "p1", "k", "zombie"), false, 0);
        assert_eq!(out.verdict, Verdict::Stale);
        assert_eq!(out.watch, None);
    }
    assert!(db.get_entry(T1, N1, "k").is_err());
    // A genuinely newer create brings the key back.
    let out = db.apply_table_event(&tev(Create, 8, "p1", "k", "new"), false, 0);
    assert_eq!(out.watch.unwrap().op, WatchOp::Create);
    assert_eq!(db.get_entry(T1, N1, "k").unwrap(), b"new");
}

#[test]
fn rule_delete_of_unknown_entry_relayed_only_from_bulk_sync_above_one_sixth() {
    let sixth_secs = (REAP / 6 / SECOND) as i32; // 300 s
    let cases = [
        // (bulk sync, in sync, residual, relayed)
        (false, true, 1800, false), // plain gossip: never
        (true, false, 1800, false), // not in sync yet
        (true, true, 1800, true),
        (true, true, sixth_secs + 1, true),
        (true, true, sixth_secs, false), // not more than 1/6
        (true, true, 1, false),
        (true, true, 0, true), // 0 = unknown: the full interval
    ];
    for (i, &(bulk, in_sync, residual, relayed)) in cases.iter().enumerate() {
        let mut db = NetworkDb::new("me", Config::default());
        db.join_network(N1).unwrap();
        if in_sync {
            db.mark_in_sync(N1);
        }
        db.node_joined("p1", 0);
        db.apply_network_event(&join_ev("p1", N1, 1), 0);
        let mut ev = tev(Delete, 9, "p1", "k", "v");
        ev.residual_reap_time = residual;
        let out = db.apply_table_event(&ev, bulk, 0);
        assert!(out.changed(), "case {i}");
        assert_eq!(out.rebroadcast.is_some(), relayed, "case {i}");
    }
}

#[test]
fn rule_delete_with_zero_residual_gets_full_interval() {
    let mut db = db_with_peers("me", &["p1"]);
    db.apply_table_event(&tev(Create, 1, "p1", "k", "v"), false, 0);
    let out = db.apply_table_event(&tev(Delete, 2, "p1", "k", "v"), false, 50);
    assert_eq!(
        db.store().get(T1, N1, "k").unwrap().reap_at,
        Some(50 + REAP)
    );
    // The relayed copy says so too, instead of passing the 0 on.
    let relay = out.rebroadcast.unwrap();
    assert_eq!(relay.residual_reap_time, 1800);
    // Negative residuals (malformed) are treated as none.
    let mut ev = tev(Delete, 3, "p1", "k2", "v");
    ev.residual_reap_time = -5;
    db.apply_table_event(&ev, false, 0);
    assert_eq!(db.store().get(T1, N1, "k2").unwrap().reap_at, Some(REAP));
}

#[test]
fn rule_rebroadcast_keeps_original_owner_and_event() {
    let mut db = db_with_peers("me", &["p1"]);
    let ev = tev(Create, 3, "p1", "k", "v");
    let out = db.apply_table_event(&ev, false, 0);
    assert_eq!(out.rebroadcast.as_ref(), Some(&ev), "relayed unchanged");
    let mut del = tev(Delete, 4, "p1", "k", "v");
    del.residual_reap_time = 1234;
    let out = db.apply_table_event(&del, false, 0);
    let relay = out.rebroadcast.unwrap();
    assert_eq!(relay.node_name, "p1", "never the relaying node");
    assert_eq!(relay, del, "a residual that was given is passed on as is");
}

#[test]
fn rule_rebroadcast_only_when_network_in_sync() {
    let mut db = NetworkDb::new("me", Config::default());
    db.join_network(N1).unwrap();
    db.node_joined("p1", 0);
    db.apply_network_event(&join_ev("p1", N1, 1), 0);
    let out = db.apply_table_event(&tev(Create, 1, "p1", "a", "v"), false, 0);
    assert!(out.changed() && out.watch.is_some());
    assert_eq!(out.rebroadcast, None, "merged, not relayed before the sync");
    assert!(db.mark_in_sync(N1));
    let out = db.apply_table_event(&tev(Create, 2, "p1", "b", "v"), false, 0);
    assert!(out.rebroadcast.is_some());
    // Bulk-synced events of known entries are relayed too (libnetwork only
    // caps that by the relay queue's length, which is the caller's).
    let out = db.apply_table_event(&tev(Update, 3, "p1", "b", "w"), true, 0);
    assert!(out.rebroadcast.is_some());
}

#[test]
fn rule_watchers_see_changes_from_the_local_point_of_view() {
    // After moby's TestWatch_out_of_order: out-of-order and missing events.
    let mut db = db_with_peers("me", &["p1"]);
    let evs = [
        // Create, (update lost), delete, (recreate lost), delete, (recreate lost), update.
        tev(Create, 4, "p1", "key2", "a"),
        tev(Delete, 6, "p1", "key2", "b"),
        tev(Delete, 8, "p1", "key2", "c"),
        tev(Update, 10, "p1", "key2", "d"),
        // Update before its create.
        tev(Update, 11, "p1", "key3", "b"),
        tev(Create, 10, "p1", "key3", "a"),
        // (Create lost), update, update.
        tev(Update, 13, "p1", "key4", "b"),
        tev(Update, 14, "p1", "key4", "c"),
        // Delete before its create, (recreate lost), delete.
        tev(Delete, 16, "p1", "key5", "a"),
        tev(Create, 15, "p1", "key5", "a"),
        tev(Delete, 18, "p1", "key5", "b"),
    ];
    let outs: Vec<_> = evs
        .iter()
        .map(|e| db.apply_table_event(e, false, 0).watch)
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        watch_list(&outs),
        [
            (WatchOp::Create, s("key2"), s("a")),
            // The delete carries the value watchers saw, not the wire's.
            (WatchOp::Delete, s("key2"), s("a")),
            // An update of a deleted key is a create.
            (WatchOp::Create, s("key2"), s("d")),
            (WatchOp::Create, s("key3"), s("b")),
            (WatchOp::Create, s("key4"), s("b")),
            (WatchOp::Update, s("key4"), s("c")),
            // key5 was never visible.
        ]
    );
}

#[test]
fn rule_failed_owners_events_are_kept_hidden_and_relayed() {
    let mut db = db_with_peers("me", &["p1"]);
    db.node_failed("p1", 0);
    let out = db.apply_table_event(&tev(Create, 2, "p1", "k", "relayed"), false, 10);
    assert!(out.changed());
    assert_eq!(out.watch, None);
    assert!(
        out.rebroadcast.is_some(),
        "keeps flowing while the owner is down"
    );
    let v = db.store().get(T1, N1, "k").unwrap();
    assert!(v.hidden);
    assert_eq!(v.reap_at, Some(10 + REAP), "bounded retention");
    assert!(db.get_entry(T1, N1, "k").is_err());
}

// ---- local operations ------------------------------------------------------------

#[test]
fn local_ops_return_broadcast_and_watch_events() {
    let mut db = db_with_peers("me", &["p1"]);
    let c = db.create_entry(T1, N1, "k", b"v").unwrap();
    assert_eq!(c.event.node_name, "me");
    assert_eq!(c.event.network_id, N1);
    assert_eq!(c.event.table_name, T1);
    assert_eq!((c.watch.op, c.watch.key.as_str()), (WatchOp::Create, "k"));
    let e = db.create_entry(T1, N1, "k", b"v").unwrap_err();
    assert_eq!(
        e.to_string(),
        "entry in table t1 with network id n1 and key k already exists"
    );
    let d = db.delete_entry(T1, N1, "k", 0).unwrap();
    assert_eq!(d.event.residual_reap_time, 1800);
    assert_eq!(
        db.get_entry(T1, N1, "k").unwrap_err(),
        TableError::NotFound {
            table: T1.into(),
            network_id: N1.into(),
            key: "k".into()
        }
    );
    assert!(matches!(
        db.update_entry(T1, N1, "k", b"x"),
        Err(TableError::Deleting { .. })
    ));
    db.create_entry(T1, N1, "k", b"back").unwrap();
    assert_eq!(db.get_entry(T1, N1, "k").unwrap(), b"back");
}

// ---- network attachments ---------------------------------------------------------

#[test]
fn join_network_announces_and_syncs_before_relaying() {
    let mut db = NetworkDb::new("me", Config::default());
    let ev = db.join_network(N1).unwrap();
    assert_eq!(ev, join_ev("me", N1, 1));
    assert!(!db.networks().in_sync(N1));
    assert_eq!(
        db.join_network(N1).unwrap_err(),
        NetworkError::AlreadyJoined {
            network_id: N1.into()
        }
    );
    assert!(db.mark_in_sync(N1));
    assert!(!db.mark_in_sync("n9"));
}

#[test]
fn network_peers_are_active_non_leaving_members() {
    let mut db = db_with_peers("me", &["p1", "p2", "p3"]);
    assert_same_peers(db.network_peers(N1), &["me", "p1", "p2", "p3"]);
    db.apply_network_event(&leave_ev("p2", N1, 20), 0);
    db.node_failed("p3", 0);
    assert_same_peers(db.network_peers(N1), &["me", "p1"]);
    db.node_rejoined("p3", 0);
    assert_same_peers(db.network_peers(N1), &["me", "p1", "p3"]);
    db.leave_network(N1, 0).unwrap();
    assert_same_peers(db.network_peers(N1), &["p1", "p3"]);
    assert!(db.network_peers("n9").is_empty());
}

#[test]
fn network_events_follow_lamport_order() {
    let mut db = db_with_peers("me", &["p1"]);
    let out = db.apply_network_event(&join_ev("p1", N1, 1), 0);
    assert_eq!(out.verdict, NetworkVerdict::Stale);
    assert!(!out.rebroadcast());
    let out = db.apply_network_event(&leave_ev("p1", N1, 5), 0);
    assert_eq!(out.verdict, NetworkVerdict::Left);
    assert!(out.rebroadcast());
    assert_eq!(db.networks().clock().time(), 6);
    // The leave is kept, so a stale join cannot undo it.
    let out = db.apply_network_event(&join_ev("p1", N1, 4), 0);
    assert_eq!(out.verdict, NetworkVerdict::Stale);
    let a = db
        .networks()
        .attachment(db.store().node_id("p1").unwrap(), N1)
        .unwrap();
    assert!(a.leaving);
    assert_eq!(a.reap_at.map(std::num::NonZeroU64::get), Some(REAP + 25 * SECOND));
    // Events about this node, from unknown nodes, or leaves of attachments
    // never seen change nothing.
    let own = db.apply_network_event(&leave_ev("me", N1, 50), 0);
    assert_eq!(own.verdict, NetworkVerdict::OwnEvent);
    assert!(db.networks().is_joined(N1));
    let v = db
        .apply_network_event(&join_ev("stranger", N1, 51), 0)
        .verdict;
    assert_eq!(v, NetworkVerdict::NodeNotActive);
    let v = db.apply_network_event(&leave_ev("p1", "n7", 52), 0).verdict;
    assert_eq!(v, NetworkVerdict::UnknownLeave);
}

#[test]
fn peer_leaving_network_drops_its_entries_without_broadcast() {
    let mut db = db_with_peers("me", &["p1", "p2"]);
    db.apply_table_event(&tev(Create, 1, "p1", "a", "va"), false, 0);
    db.apply_table_event(&tev(Create, 2, "p1", "b", "vb"), false, 0);
    db.apply_table_event(&tev(Delete, 3, "p1", "b", "vb"), false, 0);
    db.apply_table_event(&tev(Create, 4, "p2", "c", "vc"), false, 0);
    db.create_entry(T1, N1, "mine", b"m").unwrap();

    let out = db.apply_network_event(&leave_ev("p1", N1, 10), 0);
    // Only what watchers saw is reported; no table event is produced.
    assert_eq!(out.watch.len(), 1);
    assert_eq!(
        (out.watch[0].op, out.watch[0].key.as_str()),
        (WatchOp::Delete, "a")
    );
    let p1 = db.store().node_id("p1").unwrap();
    assert_eq!(
        db.store().owner_entries(p1, N1).count(),
        0,
        "no forged tombstones"
    );
    assert_eq!(visible(&db).len(), 2);
}

#[test]
fn leave_rejoin_out_of_order_is_accepted() {
    // moby issue 47728 / TestLeaveRejoinOutOfOrder: p1 leaves, rejoins and
    // creates; its create reaches us before the leave, and again after.
    let run = |mode| {
        let cfg = Config {
            departed_entries: mode,
            ..Config::default()
        };
        let mut db = NetworkDb::new("me", cfg);
        db.join_network(N1).unwrap();
        db.mark_in_sync(N1);
        db.node_joined("p1", 0);
        db.apply_network_event(&join_ev("p1", N1, 1), 0);
        db.apply_table_event(&tev(Create, 1, "p1", "key1", "a"), false, 0);
        db.apply_network_event(&leave_ev("p1", N1, 2), 0);
        db.apply_network_event(&join_ev("p1", N1, 3), 0);
        db.apply_table_event(&tev(Create, 1, "p1", "key1", "a"), true, 0);
        db.get_entry(T1, N1, "key1").map(<[u8]>::to_vec)
    };
    assert_eq!(run(DepartedEntries::Remove), Ok(b"a".to_vec()));
    // The older behaviour forges a tombstone with the entry's ltime, which
    // then rejects the live entry for good.
    assert!(run(DepartedEntries::Tombstone).is_err());
}

#[test]
fn forged_tombstone_mode_marks_and_reaps() {
    let cfg = Config {
        departed_entries: DepartedEntries::Tombstone,
        ..Config::default()
    };
    let mut db = NetworkDb::new("me", cfg);
    db.join_network(N1).unwrap();
    db.node_joined("p1", 0);
    db.apply_network_event(&join_ev("p1", N1, 1), 0);
    db.apply_table_event(&tev(Create, 1, "p1", "k", "v"), false, 0);
    let out = db.apply_network_event(&leave_ev("p1", N1, 2), 10);
    assert_eq!(out.watch.len(), 1);
    let v = db.store().get(T1, N1, "k").unwrap();
    assert!(v.deleting);
    assert_eq!(db.name_of(v.owner), "p1", "still the departed owner's");
    assert_eq!(v.reap_at, Some(10 + REAP));
    assert_eq!(db.reap(10 + REAP).entries, 1);
}

#[test]
fn leaving_a_network_tombstones_own_entries_and_drops_others() {
    let mut db = db_with_peers("me", &["p1"]);
    db.apply_table_event(&tev(Create, 1, "p1", "theirs", "t"), false, 0);
    db.create_entry(T1, N1, "mine", b"m").unwrap();
    let left = db.leave_network(N1, 7).unwrap();
    assert_eq!(left.event.kind, NetworkEventType::Leave);
    assert_eq!(left.event.node_name, "me");
    assert_eq!(left.watch.len(), 2);
    assert!(db.store().get(T1, N1, "theirs").is_none());
    let mine = db.store().get(T1, N1, "mine").unwrap();
    assert!(mine.deleting && mine.ltime > 2);
    assert_eq!(mine.reap_at, Some(7 + REAP));
    assert!(matches!(
        db.leave_network(N1, 8),
        Err(NetworkError::NotJoined { .. })
    ));
}

#[test]
fn quick_leave_and_rejoin_propagates_own_deletes_by_bulk_sync() {
    // b misses a's leave; a's tombstones reach it in the join-time sync.
    let mut dbs = cluster(&["a", "b"]);
    let mut b = dbs.pop().unwrap();
    let mut a = dbs.pop().unwrap();
    let c = a.create_entry(T1, N1, "ep", b"v").unwrap();
    b.apply_table_event(&c.event, false, 0);
    a.leave_network(N1, 0).unwrap(); // the leave event is lost
    let rejoin = a.join_network(N1).unwrap();
    b.apply_network_event(&rejoin, 0);
    bulk_sync(&a, &mut b, 0);
    assert!(b.get_entry(T1, N1, "ep").is_err());
    assert!(b.store().get(T1, N1, "ep").unwrap().deleting);
}

#[test]
fn push_pull_lists_every_attachment_with_ltimes() {
    let mut db = db_with_peers("me", &["p1", "p2"]);
    db.join_network("n2").unwrap();
    db.leave_network("n2", 0).unwrap();
    db.apply_network_event(&leave_ev("p2", N1, 10), 0);
    let pp = db.local_push_pull(false);
    assert_eq!(pp.node_name, "me");
    assert_eq!(pp.ltime, db.networks().clock().time());
    let got: Vec<_> = pp
        .networks
        .iter()
        .map(|e| {
            (
                e.node_name.as_str(),
                e.network_id.as_str(),
                e.ltime,
                e.leaving,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("me", N1, 1, false),
            ("me", "n2", 5, true),
            ("p1", N1, 1, false),
            ("p2", N1, 10, true),
        ]
    );
    // On a join-time exchange own attachments get a fresh ltime.
    let pp = db.local_push_pull(true);
    let own: Vec<_> = pp
        .networks
        .iter()
        .filter(|e| e.node_name == "me")
        .map(|e| e.ltime)
        .collect();
    assert_eq!(own, [12, 12]);
}

#[test]
fn merging_push_pull_applies_each_attachment() {
    let mut a = db_with_peers("a", &["p1"]);
    a.node_joined("b", 0);
    let mut b = NetworkDb::new("b", Config::default());
    b.join_network(N1).unwrap();
    b.node_joined("a", 0);
    b.node_joined("p1", 0);
    b.node_joined("p9", 0);
    b.apply_network_event(&join_ev("p9", N1, 1), 0);
    let pp = b.local_push_pull(true);
    let out = a.merge_push_pull(&pp, 0);
    // b's own n1 attachment is new; p9 is unknown to a's memberlist.
    assert_eq!(out.networks_changed, 1);
    assert_same_peers(a.network_peers(N1), &["a", "p1", "b"]);
    // And the other way round: b learns p1's attachment, and a's.
    let out = b.merge_push_pull(&a.local_push_pull(false), 0);
    assert_eq!(out.networks_changed, 2);
    assert_same_peers(b.network_peers(N1), &["b", "a", "p1", "p9"]);
    assert!(a.networks().clock().time() >= pp.ltime);
}

#[test]
fn push_pull_with_fresh_times_overrides_a_stale_leave() {
    let mut dbs = cluster(&["a", "b"]);
    let mut b = dbs.pop().unwrap();
    let mut a = dbs.pop().unwrap();
    let left = a.leave_network(N1, 0).unwrap();
    b.apply_network_event(&left.event, 0);
    let rejoin = a.join_network(N1).unwrap(); // lost on the way to b
    assert!(rejoin.ltime > left.event.ltime);
    assert_same_peers(b.network_peers(N1), &["b"]);
    b.merge_push_pull(&a.local_push_pull(true), 0);
    assert_same_peers(b.network_peers(N1), &["b", "a"]);
}

#[test]
fn common_networks_for_bulk_sync() {
    let mut db = db_with_peers("me", &["p1"]);
    db.join_network("n2").unwrap();
    db.apply_network_event(&join_ev("p1", "n2", 9), 0);
    db.apply_network_event(&join_ev("p1", "n3", 10), 0);
    assert_eq!(db.common_networks("p1"), [N1, "n2"]);
    db.apply_network_event(&leave_ev("p1", "n2", 11), 0);
    assert_eq!(db.common_networks("p1"), [N1]);
    assert!(db.common_networks("nobody").is_empty());
}

// ---- membership --------------------------------------------------------------------

#[test]
fn node_failed_hides_entries_and_keeps_attachments() {
    let mut db = db_with_peers("me", &["p1"]);
    db.apply_table_event(&tev(Create, 1, "p1", "k", "v"), false, 0);
    let out = db.node_failed("p1", 5);
    assert!(out.changed);
    assert_eq!(out.watch.len(), 1);
    assert_eq!(out.watch[0].op, WatchOp::Delete);
    assert_eq!(db.node_state("p1"), Some(NodeState::Failed));
    assert!(db.get_entry(T1, N1, "k").is_err());
    assert!(db.table_by_network(T1, N1).is_empty());
    let v = db.store().get(T1, N1, "k").unwrap();
    assert_eq!(v.reap_at, Some(5 + REAP));
    assert_same_peers(db.network_peers(N1), &["me"]);
    let p1 = db.store().node_id("p1").unwrap();
    assert!(db.networks().is_attached(p1, N1));
    assert!(
        !db.node_failed("p1", 6).changed,
        "only an active node fails"
    );
}

#[test]
fn node_rejoined_restores_entries_and_peers_without_resend() {
    let mut db = db_with_peers("me", &["p1"]);
    db.apply_table_event(&tev(Create, 1, "p1", "k", "v"), false, 0);
    db.node_failed("p1", 0);
    // A relay from a node that still reaches p1.
    db.apply_table_event(&tev(Update, 2, "p1", "k", "fresher"), false, 0);
    let out = db.node_joined("p1", 10);
    assert!(out.changed);
    assert_eq!(out.watch.len(), 1);
    assert_eq!(out.watch[0].op, WatchOp::Create);
    assert_eq!(out.watch[0].value, b"fresher");
    assert_eq!(db.get_entry(T1, N1, "k").unwrap(), b"fresher");
    assert_eq!(db.store().get(T1, N1, "k").unwrap().reap_at, None);
    assert_same_peers(db.network_peers(N1), &["me", "p1"]);
    assert!(!db.node_rejoined("p1", 11).changed, "already active");
}

#[test]
fn entry_deleted_while_owner_down_stays_deleted() {
    let mut db = db_with_peers("me", &["p1"]);
    db.apply_table_event(&tev(Create, 2, "p1", "k", "v1"), false, 0);
    db.node_failed("p1", 0);
    let out = db.apply_table_event(&tev(Delete, 3, "p1", "k", "v1"), false, 0);
    assert_eq!(out.watch, None, "watchers were told when p1 failed");
    let back = db.node_rejoined("p1", 0);
    assert!(back.watch.is_empty());
    assert!(db.get_entry(T1, N1, "k").is_err());
}

#[test]
fn hidden_entries_do_not_exist_for_local_operations() {
    let mut db = db_with_peers("me", &["p1"]);
    db.apply_table_event(&tev(Create, 2, "p1", "key1", "remote"), false, 0);
    db.apply_table_event(&tev(Create, 2, "p1", "key2", "remote"), false, 0);
    db.node_failed("p1", 0);
    let c = db.create_entry(T1, N1, "key1", b"local").unwrap();
    assert_eq!(c.watch.op, WatchOp::Create);
    assert!(matches!(
        db.update_entry(T1, N1, "key2", b"x"),
        Err(TableError::NotFound { .. })
    ));
    assert!(matches!(
        db.delete_entry(T1, N1, "key2", 0),
        Err(TableError::NotFound { .. })
    ));
    db.node_rejoined("p1", 0);
    let out = db.apply_table_event(&tev(Create, 2, "p1", "key1", "remote"), false, 0);
    assert_eq!(out.verdict, Verdict::Stale);
    assert_eq!(db.get_entry(T1, N1, "key1").unwrap(), b"local");
    assert_eq!(db.get_entry(T1, N1, "key2").unwrap(), b"remote");
}

#[test]
fn update_of_failed_owners_key_by_active_node_is_a_create() {
    let mut db = db_with_peers("me", &["p1", "p2"]);
    db.apply_table_event(&tev(Create, 1, "p1", "k", "a"), false, 0);
    db.node_failed("p1", 0);
    let out = db.apply_table_event(&tev(Update, 2, "p2", "k", "b"), false, 0);
    assert_eq!(out.watch.unwrap().op, WatchOp::Create, "watchers saw it go");
    // And a newer event of the failed owner hides the key again.
    let out = db.apply_table_event(&tev(Update, 3, "p1", "k", "c"), false, 0);
    let w = out.watch.unwrap();
    assert_eq!((w.op, w.value.as_slice()), (WatchOp::Delete, &b"b"[..]));
}

#[test]
fn node_left_drops_everything_it_owned() {
    let mut db = db_with_peers("me", &["p1"]);
    db.apply_table_event(&tev(Create, 1, "p1", "a", "va"), false, 0);
    db.apply_table_event(&tev(Create, 2, "p1", "b", "vb"), false, 0);
    db.apply_table_event(&tev(Delete, 3, "p1", "b", "vb"), false, 0);
    let out = db.node_left("p1", 0);
    assert!(out.changed);
    assert_eq!(out.watch.len(), 1);
    assert!(db.store().is_empty(), "tombstones go too");
    let p1 = db.store().node_id("p1").unwrap();
    assert_eq!(db.networks().attachments_of(p1).count(), 0);
    assert_eq!(db.node_state("p1"), Some(NodeState::Left));
    // Its late events are refused: it is attached to nothing.
    let out = db.apply_table_event(&tev(Create, 9, "p1", "a", "zombie"), false, 0);
    assert_eq!(out.verdict, Verdict::OwnerNotInNetwork);
    let out = db.apply_network_event(&join_ev("p1", N1, 20), 0);
    assert_eq!(out.verdict, NetworkVerdict::NodeNotActive);
    assert!(!db.node_left("p1", 0).changed);
}

#[test]
fn failed_then_left_drops_remembered_state_silently() {
    let mut db = db_with_peers("me", &["p1"]);
    db.apply_table_event(&tev(Create, 1, "p1", "k", "v"), false, 0);
    assert_eq!(db.node_failed("p1", 0).watch.len(), 1);
    let out = db.node_left("p1", 0);
    assert!(out.changed);
    assert!(out.watch.is_empty(), "watchers were told once, on failure");
    assert!(db.store().is_empty());
    assert!(!db.store().is_suspended(db.store().node_id("p1").unwrap()));
}

#[test]
fn node_events_from_gossip() {
    let mut db = db_with_peers("me", &["p1"]);
    db.apply_table_event(&tev(Create, 1, "p1", "k", "v"), false, 0);
    let leave = NodeEvent {
        kind: NodeEventType::Leave,
        ltime: 5,
        node_name: "p1".into(),
    };
    let join = NodeEvent {
        kind: NodeEventType::Join,
        ..leave.clone()
    };
    assert!(
        !db.apply_node_event(&join, 0).changed,
        "liveness is memberlist's"
    );
    // Same ltime again: stale.
    assert!(!db.apply_node_event(&leave, 0).changed);
    let leave = NodeEvent { ltime: 6, ..leave };
    let out = db.apply_node_event(&leave, 0);
    assert!(out.changed);
    assert_eq!(out.watch.len(), 1);
    assert_eq!(db.node_state("p1"), Some(NodeState::Left));
    assert!(db.networks().clock().time() > 6);
    let unknown = NodeEvent {
        node_name: "who".into(),
        ltime: 99,
        ..leave
    };
    assert!(!db.apply_node_event(&unknown, 0).changed);
    let own = db.node_event(NodeEventType::Join);
    assert_eq!(own.node_name, "me");
    assert!(own.ltime > 99);
}

#[test]
fn this_node_is_not_its_own_peer() {
    let mut db = NetworkDb::new("me", Config::default());
    assert!(!db.node_joined("me", 0).changed);
    assert!(!db.node_failed("me", 0).changed);
    assert!(!db.node_left("me", 0).changed);
    assert_eq!(db.node_state("me"), None);
    assert!(db.nodes().is_empty());
}

// ---- reaping ---------------------------------------------------------------------

#[test]
fn reap_removes_expired_tombstones_then_attachments_then_nodes() {
    let mut db = db_with_peers("me", &["p1", "p2"]);
    db.create_entry(T1, N1, "k", b"v").unwrap();
    db.delete_entry(T1, N1, "k", 0).unwrap();
    db.apply_network_event(&leave_ev("p1", N1, 10), 0);
    db.join_network("n2").unwrap();
    db.leave_network("n2", 0).unwrap();
    db.node_failed("p2", 0);

    assert_eq!(db.reap(REAP - 1), ReapCounts::default());
    let r = db.reap(REAP);
    assert_eq!((r.entries, r.own_networks, r.peer_networks), (1, 0, 0));
    let r = db.reap(REAP + 25 * SECOND);
    assert_eq!((r.own_networks, r.peer_networks, r.nodes), (1, 1, 0));
    assert!(db.networks().own("n2").is_none());
    assert!(db.networks().own(N1).is_some());
    let r = db.reap(24 * 3600 * SECOND);
    assert_eq!(r.nodes, 1);
    assert_eq!(db.node_state("p2"), None);
    assert_eq!(db.node_state("p1"), Some(NodeState::Active));
}

#[test]
fn failed_node_entries_age_out_and_reaped_node_takes_its_state() {
    let mut db = db_with_peers("me", &["p1", "p2"]);
    db.apply_table_event(&tev(Create, 1, "p1", "k", "v"), false, 0);
    db.apply_table_event(&tev(Create, 2, "p2", "k2", "v"), false, 0);
    db.node_failed("p1", 0);
    db.node_failed("p2", 0);
    assert_eq!(db.reap(REAP).entries, 2);
    assert!(
        db.node_rejoined("p1", REAP).watch.is_empty(),
        "nothing to restore"
    );
    // p2 never comes back: after the node interval its attachments go too.
    let p2 = db.store().node_id("p2").unwrap();
    assert!(db.networks().is_attached(p2, N1));
    assert_eq!(db.reap(24 * 3600 * SECOND).nodes, 1);
    assert!(!db.networks().is_attached(p2, N1));
    assert_same_peers(db.network_peers(N1), &["me", "p1"]);
}

#[test]
fn config_intervals() {
    let c = Config::default();
    assert_eq!(c.reap_entry_interval, 30 * MIN);
    assert_eq!(c.reap_period, 5 * SECOND);
    assert_eq!(c.reap_network_interval, 30 * MIN + 25 * SECOND);
    assert_eq!(c.node_reap_interval, 24 * 3600 * SECOND);
    assert_eq!(c.departed_entries, DepartedEntries::Remove);
    let c = Config::with_reap_entry_interval(60 * SECOND);
    assert_eq!(c.reap_network_interval, 85 * SECOND);
}

// ---- bulk sync and partitions ----------------------------------------------------

#[test]
fn bulk_sync_carries_tombstones_with_residual_reap_time() {
    let mut dbs = cluster(&["a", "b"]);
    let mut b = dbs.pop().unwrap();
    let mut a = dbs.pop().unwrap();
    a.create_entry(T1, N1, "live", b"1").unwrap();
    a.create_entry(T1, N1, "dead", b"2").unwrap();
    a.delete_entry(T1, N1, "dead", 0).unwrap();
    let outs = bulk_sync(&a, &mut b, 10 * MIN);
    assert!(outs.iter().all(TableOutcome::changed));
    assert_eq!(visible(&b).len(), 1);
    let dead = b.store().get(T1, N1, "dead").unwrap();
    assert!(dead.deleting);
    assert_eq!(b.name_of(dead.owner), "a");
    // It dies when a's does, not a whole interval later.
    assert_eq!(dead.reap_at, Some(REAP));
    assert!(b.store().clock().time() >= a.store().clock().time());
}

/// The brief's scenario: two nodes, a partition during which one side
/// deletes an entry; after the heal the tombstone reaches the other side by
/// bulk sync, and the other side's re-sent old create does not resurrect it,
/// whichever arrives first. Memberlist does not notice this partition (only
/// gossip and bulk syncs are lost), so nobody is suspended.
#[test]
fn partition_heal_tombstone_beats_old_create() {
    for create_first in [true, false] {
        let mut dbs = cluster(&["a", "b"]);
        let mut b = dbs.pop().unwrap();
        let mut a = dbs.pop().unwrap();
        let mut now = 0;
        let c = b.create_entry(T1, N1, "ep", b"v").unwrap();
        a.apply_table_event(&c.event, false, now);
        assert_eq!(visible(&a).len(), 1);

        // Partition: a deletes; the gossip and every periodic bulk sync
        // (every 30 s) are lost, while both reap every 5 s.
        now += MIN;
        a.delete_entry(T1, N1, "ep", now).unwrap();
        while now < 12 * MIN {
            now += 5 * SECOND;
            a.reap(now);
            b.reap(now);
            let _lost = a.bulk_sync_events(&[N1], now);
        }
        assert_eq!(visible(&b).len(), 1, "b still has it");
        assert!(
            a.store().get(T1, N1, "ep").unwrap().deleting,
            "a's tombstone survives"
        );

        // Heal.
        if create_first {
            // b's old create (gossip relay or bulk sync) reaches a first.
            let out = a.apply_table_event(&c.event, false, now);
            assert_eq!(out.verdict, Verdict::Stale);
            bulk_sync(&b, &mut a, now);
        }
        let outs = bulk_sync(&a, &mut b, now);
        let w: Vec<_> = outs.iter().filter_map(|o| o.watch.as_ref()).collect();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].op, WatchOp::Delete);
        // b re-sends everything it has, and the old create once more.
        bulk_sync(&b, &mut a, now);
        let out = a.apply_table_event(&c.event, true, now);
        assert_eq!(out.verdict, Verdict::Stale);
        let out = b.apply_table_event(&c.event, true, now);
        assert_eq!(out.verdict, Verdict::OwnEvent);
        assert!(visible(&a).is_empty() && visible(&b).is_empty());
        // Both tombstones die together, when a's was due.
        let due = MIN + REAP;
        assert_eq!(b.store().get(T1, N1, "ep").unwrap().reap_at, Some(due));
        assert_eq!(a.reap(due).entries + b.reap(due).entries, 2);
        assert!(a.store().is_empty() && b.store().is_empty());
    }
}

/// Three nodes; memberlist notices the partition {b} | {a, c}. The owner c
/// deletes its entry while b is cut off; b keeps its copy hidden. After the
/// heal b shows its remembered copy again until a bulk sync from a brings the
/// tombstone (libnetwork does the same), and b's old create cannot
/// resurrect the entry anywhere.
#[test]
fn partition_with_failure_detection_converges_on_the_delete() {
    let mut dbs = cluster(&["a", "b", "c"]);
    let mut c = dbs.pop().unwrap();
    let mut b = dbs.pop().unwrap();
    let mut a = dbs.pop().unwrap();
    let created = c.create_entry(T1, N1, "ep", b"v").unwrap();
    a.apply_table_event(&created.event, false, 0);
    b.apply_table_event(&created.event, false, 0);

    let mut now = 30 * SECOND;
    a.node_failed("b", now);
    c.node_failed("b", now);
    assert_eq!(b.node_failed("a", now).watch.len(), 0);
    assert_eq!(
        b.node_failed("c", now).watch.len(),
        1,
        "c's entry hidden on b"
    );

    now += MIN;
    let del = c.delete_entry(T1, N1, "ep", now).unwrap();
    a.apply_table_event(&del.event, false, now);
    now += 10 * MIN;
    for db in [&mut a, &mut b, &mut c] {
        db.reap(now);
    }

    // Heal: memberlist first, then b's and a's bulk syncs.
    a.node_joined("b", now);
    c.node_joined("b", now);
    b.node_joined("a", now);
    let back = b.node_joined("c", now);
    assert_eq!(back.watch.len(), 1, "b shows its remembered copy again");
    for o in bulk_sync(&b, &mut a, now) {
        assert!(!o.changed(), "b's old create changes nothing on a");
    }
    let outs = bulk_sync(&a, &mut b, now);
    assert!(outs
        .iter()
        .any(|o| o.watch.as_ref().is_some_and(|w| w.op == WatchOp::Delete)));
    bulk_sync(&b, &mut c, now);
    for db in [&a, &b, &c] {
        assert!(visible(db).is_empty(), "{} shows it", db.node_name());
        assert!(db.store().get(T1, N1, "ep").unwrap().deleting);
    }
}

/// If the partition outlasts the reap interval, the tombstone is gone, but so
/// is the cut-off side's hidden copy: nothing is left to resurrect.
#[test]
fn partition_longer_than_reap_interval_leaves_nothing_to_resurrect() {
    let mut dbs = cluster(&["a", "b", "c"]);
    let mut c = dbs.pop().unwrap();
    let mut b = dbs.pop().unwrap();
    let mut a = dbs.pop().unwrap();
    let created = c.create_entry(T1, N1, "ep", b"v").unwrap();
    a.apply_table_event(&created.event, false, 0);
    b.apply_table_event(&created.event, false, 0);
    let mut now = 30 * SECOND;
    a.node_failed("b", now);
    c.node_failed("b", now);
    b.node_failed("a", now);
    b.node_failed("c", now);
    now += MIN;
    let del = c.delete_entry(T1, N1, "ep", now).unwrap();
    a.apply_table_event(&del.event, false, now);
    while now < 45 * MIN {
        now += 5 * SECOND;
        for db in [&mut a, &mut b, &mut c] {
            db.reap(now);
        }
    }
    for db in [&a, &b, &c] {
        assert!(db.store().get(T1, N1, "ep").is_none(), "{}", db.node_name());
    }
    a.node_joined("b", now);
    c.node_joined("b", now);
    b.node_joined("a", now);
    assert!(b.node_joined("c", now).watch.is_empty());
    bulk_sync(&b, &mut a, now);
    bulk_sync(&a, &mut b, now);
    for db in [&a, &b, &c] {
        assert!(visible(db).is_empty());
    }
}

// ---- convergence properties ---------------------------------------------------

const OWNERS: [&str; 3] = ["p0", "p1", "p2"];

/// A random table event on one of 4 keys, owned by one of three peers.
fn arb_events() -> impl Strategy<Value = Vec<TableEvent>> {
    prop::collection::vec(
        (
            0..4usize,
            0..3usize,
            0..3u8,
            0..4u8,
            prop_oneof![Just(0i32), 1..3600i32],
        ),
        1..40,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (key, owner, kind, value, residual))| {
                let kind = [Create, Update, Delete][kind as usize];
                let mut ev = tev(
                    kind,
                    // Distinct ltimes: networkdb has no tie-break, so two
                    // events with the same ltime for a key would leave each
                    // node with whichever it saw first.
                    i as u64 + 1,
                    OWNERS[owner],
                    &format!("k{key}"),
                    &format!("v{value}"),
                );
                if kind == Delete {
                    ev.residual_reap_time = residual;
                }
                ev
            })
            .collect()
    })
}

/// The full stored state: key → (ltime, deleting, owner, value, reap_at).
type Full = BTreeMap<String, (u64, bool, String, Vec<u8>, Option<u64>)>;

fn full_state(db: &NetworkDb) -> Full {
    db.store()
        .network_entries(N1)
        .map(|v| {
            (
                v.key.to_owned(),
                (
                    v.ltime,
                    v.deleting,
                    db.name_of(v.owner).to_owned(),
                    v.value.to_vec(),
                    v.reap_at,
                ),
            )
        })
        .collect()
}

/// What highest-ltime-wins gives for a set of events.
fn expected(events: &[TableEvent]) -> BTreeMap<String, (u64, bool, String, Vec<u8>)> {
    let mut out: BTreeMap<String, (u64, bool, String, Vec<u8>)> = BTreeMap::new();
    for ev in events {
        let newer = out.get(&ev.key).is_none_or(|(lt, ..)| *lt < ev.ltime);
        if newer {
            out.insert(
                ev.key.clone(),
                (
                    ev.ltime,
                    ev.kind == Delete,
                    ev.node_name.clone(),
                    ev.value.clone(),
                ),
            );
        }
    }
    out
}

/// Replays watch events on a map, checking each makes sense there.
fn watcher(events: impl IntoIterator<Item = WatchEvent>) -> BTreeMap<String, Vec<u8>> {
    let mut seen = BTreeMap::new();
    for w in events {
        match w.op {
            WatchOp::Create => {
                assert!(seen.insert(w.key.clone(), w.value.clone()).is_none(), "{w}")
            }
            WatchOp::Update => {
                assert!(seen.insert(w.key.clone(), w.value.clone()).is_some(), "{w}")
            }
            WatchOp::Delete => assert_eq!(seen.remove(&w.key), Some(w.value), "{}", w.key),
        }
    }
    seen
}

fn apply_all(db: &mut NetworkDb, events: &[TableEvent]) -> Vec<WatchEvent> {
    events
        .iter()
        .filter_map(|e| db.apply_table_event(e, false, 0).watch)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The same events in two different orders leave two stores in the same
    /// state, which is the highest-ltime event per key (tombstones included),
    /// and their watchers end up seeing exactly the visible entries.
    #[test]
    fn any_order_converges_to_highest_ltime(
        (x_order, y_order) in arb_events().prop_flat_map(|evs| {
            (Just(evs.clone()).prop_shuffle(), Just(evs).prop_shuffle())
        })
    ) {
        let mut x = db_with_peers("x", &OWNERS);
        let mut y = db_with_peers("y", &OWNERS);
        let wx = apply_all(&mut x, &x_order);
        let wy = apply_all(&mut y, &y_order);

        let fx = full_state(&x);
        prop_assert_eq!(&fx, &full_state(&y));
        let want = expected(&x_order);
        let got: BTreeMap<_, _> = fx
            .iter()
            .map(|(k, (lt, del, o, v, _))| (k.clone(), (*lt, *del, o.clone(), v.clone())))
            .collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(watcher(wx), visible(&x));
        prop_assert_eq!(watcher(wy), visible(&y));
        x.store().check_invariants();

        // Reaping drops every tombstone and only those, on both alike.
        let far = 10 * REAP;
        x.reap(far);
        y.reap(far);
        prop_assert_eq!(full_state(&x), full_state(&y));
        prop_assert!(x.store().network_entries(N1).all(|v| !v.deleting));
        x.store().check_invariants();
    }

    /// Two stores that each saw part of the events (in any order) agree after
    /// one bulk sync each way.
    #[test]
    fn bulk_sync_both_ways_converges(
        (events, split) in arb_events().prop_flat_map(|evs| {
            let n = evs.len();
            (Just(evs).prop_shuffle(), prop::collection::vec(0..3u8, n))
        })
    ) {
        let mut x = db_with_peers("x", &OWNERS);
        let mut y = db_with_peers("y", &OWNERS);
        x.node_joined("y", 0);
        x.apply_network_event(&join_ev("y", N1, 10), 0);
        y.node_joined("x", 0);
        y.apply_network_event(&join_ev("x", N1, 10), 0);
        let mut wx = Vec::new();
        let mut wy = Vec::new();
        for (ev, to) in events.iter().zip(&split) {
            if *to != 1 {
                wx.extend(x.apply_table_event(ev, false, 0).watch);
            }
            if *to != 0 {
                wy.extend(y.apply_table_event(ev, false, 0).watch);
            }
        }
        wy.extend(bulk_sync(&x, &mut y, 0).into_iter().filter_map(|o| o.watch));
        wx.extend(bulk_sync(&y, &mut x, 0).into_iter().filter_map(|o| o.watch));
        prop_assert_eq!(full_state(&x), full_state(&y));
        let got: BTreeMap<_, _> = full_state(&x)
            .into_iter()
            .map(|(k, (lt, del, o, v, _))| (k, (lt, del, o, v)))
            .collect();
        prop_assert_eq!(got, expected(&events));
        prop_assert_eq!(watcher(wx), visible(&x));
        prop_assert_eq!(watcher(wy), visible(&y));
    }
}
