//! networkdb clusters on the virtual network: the protocol machine end to end,
//! including the recovery and correctness properties of the issue.

use std::net::SocketAddr;

use super::convert::node_to_wire;
use super::events::{NodeEvent, NodeEventType};
use super::nodes::NodeState;
use super::protocol::{NdbNode, Settings};
use crate::sim::{Sim, SimConfig};
use crate::swim::config::{Config, SEC};
use crate::wire::memberlist::node_state;

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 1, (i / 250) as u8, (i % 250 + 1) as u8], 7946))
}

fn node(i: usize, seed: u64) -> NdbNode {
    let name = format!("n{i}");
    let s = Settings { reap_entry_interval: 60 * SEC, bulk_sync_interval: 10 * SEC, ..Settings::default() };
    NdbNode::new(0, Config::lan(&name), s, addr(i), None, seed * 7919 + i as u64)
}

/// N nodes, all joined through node 0 and attached to network "net".
fn cluster(n: usize, seed: u64) -> Sim<NdbNode> {
    let mut sim = Sim::new(SimConfig { seed, ..Default::default() });
    for i in 0..n {
        sim.add(node(i, seed));
    }
    for i in 1..n {
        sim.with(i, |m, now| m.join(now, &[addr(0)]));
    }
    let all: Vec<usize> = (0..n).collect();
    assert!(sim.run_until_cond(50_000, 20 * SEC, |s| members_converged(s, &all)), "membership did not form");
    for i in 0..n {
        sim.with(i, |m, now| m.join_network(now, "net").map_err(|e| e.to_string())).unwrap().unwrap();
    }
    // Usually within a second; when every copy of a network join missed
    // some node (4 transmissions to 3 of 5 peers each), the next bulk sync
    // or push/pull brings it (59 seeds: 0.3 s at the median, 23 s at most).
    assert!(sim.run_until_cond(50_000, sim.now + 60 * SEC, |s| networks_converged(s, &all, "net")));
    sim
}

fn members_converged(s: &Sim<NdbNode>, live: &[usize]) -> bool {
    live.iter().all(|&i| {
        s.node(i).is_some_and(|m| {
            m.ml.members().iter().filter(|x| x.state == node_state::ALIVE).count() == live.len()
        })
    })
}

fn networks_converged(s: &Sim<NdbNode>, live: &[usize], nid: &str) -> bool {
    live.iter().all(|&i| s.node(i).is_some_and(|m| m.network_peers(nid).len() == live.len()))
}

fn value_everywhere(s: &Sim<NdbNode>, live: &[usize], key: &str, want: Option<&[u8]>) -> bool {
    live.iter().all(|&i| {
        s.node(i).is_some_and(|m| m.core.db.get_entry("t", "net", key).ok() == want)
    })
}

#[test]
fn creates_updates_deletes_converge_on_ten_nodes() {
    let mut sim = cluster(10, 1);
    let all: Vec<usize> = (0..10).collect();
    sim.with(3, |m, now| m.create_entry(now, "t", "net", "k1", b"v1")).unwrap().unwrap();
    let t0 = sim.now;
    assert!(sim.run_until_cond(10_000, t0 + 10 * SEC, |s| value_everywhere(s, &all, "k1", Some(b"v1"))));
    assert!(sim.now - t0 < 2 * SEC, "create took {} us", sim.now - t0);
    sim.with(3, |m, now| m.update_entry(now, "t", "net", "k1", b"v2")).unwrap().unwrap();
    assert!(sim.run_until_cond(10_000, sim.now + 10 * SEC, |s| value_everywhere(s, &all, "k1", Some(b"v2"))));
    sim.with(3, |m, now| m.delete_entry(now, "t", "net", "k1")).unwrap().unwrap();
    assert!(sim.run_until_cond(10_000, sim.now + 10 * SEC, |s| value_everywhere(s, &all, "k1", None)));
    // Watchers of a remote node saw create, update, delete in order.
    let evs = sim.with(7, |m, _| m.take_watch_events()).unwrap_or_default();
    let k1: Vec<_> = evs.iter().filter(|e| e.key == "k1").map(|e| e.op).collect();
    use super::WatchOp::*;
    assert_eq!(k1, vec![Create, Update, Delete]);
}

#[test]
fn gossip_packets_never_exceed_the_buffer() {
    let mut sim = cluster(5, 2);
    for k in 0..300 {
        let key = format!("key-{k:04}");
        sim.with(k % 5, |m, now| m.create_entry(now, "t", "net", &key, &[7u8; 90])).unwrap().unwrap();
    }
    let all: Vec<usize> = (0..5).collect();
    assert!(sim.run_until_cond(50_000, sim.now + 60 * SEC, |s| all
        .iter()
        .all(|&i| s.node(i).is_some_and(|m| m.core.db.table_by_network("t", "net").len() == 300))));
    for i in 0..5 {
        let m = sim.node(i).unwrap();
        assert!(m.core.counters.largest_gossip <= 1400, "gossip of {} bytes", m.core.counters.largest_gossip);
    }
}

#[test]
fn conflicting_writes_resolve_by_lamport_time() {
    let mut sim = cluster(4, 3);
    let all: Vec<usize> = (0..4).collect();
    sim.with(0, |m, now| m.create_entry(now, "t", "net", "k", b"first")).unwrap().unwrap();
    assert!(sim.run_until_cond(10_000, sim.now + 10 * SEC, |s| value_everywhere(s, &all, "k", Some(b"first"))));
    // Two updates at once from different nodes: the higher ltime wins everywhere.
    sim.with(1, |m, now| m.update_entry(now, "t", "net", "k", b"one")).unwrap().unwrap();
    sim.with(2, |m, now| m.update_entry(now, "t", "net", "k", b"two")).unwrap().unwrap();
    sim.run_until(sim.now + 10 * SEC);
    let vals: Vec<Vec<u8>> =
        all.iter().map(|&i| sim.node(i).unwrap().core.db.get_entry("t", "net", "k").unwrap().to_vec()).collect();
    assert!(vals.windows(2).all(|w| w[0] == w[1]), "{vals:?}");
}

#[test]
fn deleted_entry_does_not_come_back_after_partition() {
    let mut sim = cluster(6, 4);
    let all: Vec<usize> = (0..6).collect();
    sim.with(0, |m, now| m.create_entry(now, "t", "net", "k", b"v")).unwrap().unwrap();
    assert!(sim.run_until_cond(10_000, sim.now + 10 * SEC, |s| value_everywhere(s, &all, "k", Some(b"v"))));
    sim.set_groups(&[0, 0, 0, 1, 1, 1]);
    sim.with(0, |m, now| m.delete_entry(now, "t", "net", "k")).unwrap().unwrap();
    sim.run_until(sim.now + 40 * SEC);
    // The other side still holds it, live (hidden while its owner is believed
    // failed); heal and wait.
    assert!(sim.node(4).unwrap().core.db.store().get("t", "net", "k").is_some_and(|v| !v.deleting));
    sim.heal();
    assert!(sim.run_until_cond(100_000, sim.now + 120 * SEC, |s| members_converged(s, &all)
        && value_everywhere(s, &all, "k", None)));
    sim.run_until(sim.now + 30 * SEC);
    assert!(value_everywhere(&sim, &all, "k", None), "the deleted entry came back");
}

#[test]
fn seed_scenario_node_whose_peers_all_failed_rejoins_by_itself() {
    let mut sim = cluster(5, 5);
    let all: Vec<usize> = (0..5).collect();
    // Node 4 is cut off from everyone (both ways) long enough for both sides
    // to declare the other dead.
    for j in 0..4 {
        sim.block(4, j);
        sim.block(j, 4);
    }
    assert!(sim.run_until_cond(100_000, sim.now + 60 * SEC, |s| s
        .node(4)
        .is_some_and(|m| m.cluster_peers().len() == 1)));
    // An entry written on the cut-off node while alone.
    sim.with(4, |m, now| m.create_entry(now, "t", "net", "lonely", b"x")).unwrap().unwrap();
    sim.heal();
    // Nobody calls join: the reconnect loop through failed nodes must heal it.
    assert!(sim.run_until_cond(100_000, sim.now + 60 * SEC, |s| members_converged(s, &all)
        && networks_converged(s, &all, "net")
        && value_everywhere(s, &all, "lonely", Some(b"x"))));
}

#[test]
fn crashed_node_restarted_catches_up() {
    let mut sim = cluster(5, 6);
    sim.with(1, |m, now| m.create_entry(now, "t", "net", "a", b"1")).unwrap().unwrap();
    sim.run_until(sim.now + 3 * SEC);
    sim.crash(4);
    sim.with(1, |m, now| m.create_entry(now, "t", "net", "b", b"2")).unwrap().unwrap();
    sim.run_until(sim.now + 20 * SEC);
    let now = sim.now;
    let mut fresh = node(4, 66);
    let _ = now;
    fresh.join(sim.now, &[addr(0)]);
    sim.replace(4, fresh);
    sim.with(4, |m, now| m.join_network(now, "net")).unwrap().unwrap();
    let all: Vec<usize> = (0..5).collect();
    assert!(sim.run_until_cond(50_000, sim.now + 60 * SEC, |s| value_everywhere(s, &all, "a", Some(b"1"))
        && value_everywhere(s, &all, "b", Some(b"2"))));
}

#[test]
fn tombstones_are_reaped() {
    let mut sim = cluster(3, 7);
    sim.with(0, |m, now| m.create_entry(now, "t", "net", "k", b"v")).unwrap().unwrap();
    sim.run_until(sim.now + 3 * SEC);
    sim.with(0, |m, now| m.delete_entry(now, "t", "net", "k")).unwrap().unwrap();
    sim.run_until(sim.now + 3 * SEC);
    assert!((0..3).all(|i| sim.node(i).unwrap().core.db.store().len() == 1), "tombstone kept");
    sim.run_until(sim.now + 70 * SEC);
    assert!((0..3).all(|i| sim.node(i).unwrap().core.db.store().is_empty()), "tombstone not reaped");
}

#[test]
fn new_name_on_an_old_address_purges_the_old_record() {
    let mut sim = cluster(4, 8);
    sim.with(3, |m, now| m.create_entry(now, "t", "net", "old", b"o")).unwrap().unwrap();
    sim.run_until(sim.now + 3 * SEC);
    // Node 3 restarts at once under a new name on the same address.
    sim.crash(3);
    let mut fresh = NdbNode::new(sim.now, Config::lan("n3-reborn"), Settings::default(), addr(3), None, 99);
    fresh.join(sim.now, &[addr(0)]);
    sim.replace(3, fresh);
    let live: Vec<usize> = (0..3).collect();
    assert!(sim.run_until_cond(50_000, sim.now + 30 * SEC, |s| live.iter().all(|&i| s
        .node(i)
        .is_some_and(|m| m.core.db.node_state("n3") == Some(super::NodeState::Left)
            && m.core.db.get_entry("t", "net", "old").is_err()))));
}

#[test]
fn periodic_rejoin_through_bootstrap_heals_a_split() {
    let mut sim = Sim::new(SimConfig { seed: 9, ..Default::default() });
    // Reconnecting through failed nodes is off (hour-long retry), so only the
    // periodic rejoin through the bootstrap node can merge the halves.
    let s = Settings { retry_interval: 3600 * SEC, rejoin_interval: 5 * SEC, ..Settings::default() };
    for i in 0..4 {
        let cfg = Config::lan(&format!("n{i}"));
        sim.add(NdbNode::new(0, cfg, s.clone(), addr(i), None, 900 + i as u64));
    }
    for i in 1..4 {
        sim.with(i, |m, now| m.join(now, &[addr(0)]));
    }
    let all: Vec<usize> = (0..4).collect();
    assert!(sim.run_until_cond(50_000, 20 * SEC, |s| members_converged(s, &all)));
    sim.set_groups(&[0, 0, 1, 1]);
    assert!(sim.run_until_cond(100_000, sim.now + 90 * SEC, |s| (0..4)
        .all(|i| s.node(i).is_some_and(|m| m.cluster_peers().len() == 2))));
    sim.heal();
    assert!(sim.run_until_cond(100_000, sim.now + 60 * SEC, |s| members_converged(s, &all)));
}

#[test]
fn joining_a_network_with_many_entries_does_not_flood_the_queue() {
    let mut sim = cluster(3, 10);
    sim.with(0, |m, now| m.join_network(now, "big")).unwrap().unwrap();
    sim.with(1, |m, now| m.join_network(now, "big")).unwrap().unwrap();
    for k in 0..3000 {
        let key = format!("k{k}");
        sim.with(k % 2, |m, now| m.create_entry(now, "t", "big", &key, b"v")).unwrap().unwrap();
    }
    sim.run_until(sim.now + 60 * SEC);
    // Node 2 joins late: it learns all 3000 by bulk sync, and relays at most
    // the queue threshold of them instead of re-gossiping everything.
    sim.with(2, |m, now| m.join_network(now, "big")).unwrap().unwrap();
    assert!(sim.run_until_cond(50_000, sim.now + 30 * SEC, |s| s
        .node(2)
        .is_some_and(|m| m.core.db.table_by_network("t", "big").len() == 3000)));
    let m = sim.node(2).unwrap();
    assert!(m.table_queue_peak() <= m.core.s.max_queue_on_sync + 1, "queue peaked at {}", m.table_queue_peak());
}

#[test]
fn bulk_sync_carries_network_attachments() {
    // b has never heard of c's attachment to the network; a bulk sync from a
    // (who knows it) alone makes b accept c's entries.
    let mut sim = cluster(3, 12);
    sim.with(2, |m, now| m.create_entry(now, "t", "net", "from-c", b"c")).unwrap().unwrap();
    assert!(sim.run_until_cond(10_000, sim.now + 10 * SEC, |s| s
        .node(0)
        .is_some_and(|m| m.core.db.get_entry("t", "net", "from-c").is_ok())));
    let now = sim.now;
    let mut b = node(5, 77);
    b.core.db.node_joined("n0", now);
    b.core.db.node_joined("n2", now);
    b.join_network(now, "net").unwrap();
    let a = sim.node_mut(0).unwrap();
    a.core.bulk_sync_for_test(now, &["net".to_string()], "n5");
    let payload = a.core.take_reliable_for_test();
    assert_eq!(payload.len(), 1);
    b.core.receive_for_test(now, &payload[0]);
    assert_eq!(b.core.db.get_entry("t", "net", "from-c").ok(), Some(&b"c"[..]));
    // Only the owners' attachments (and the sender's) ride along: b learns
    // c's attachment, not n1's (which owns nothing).
    assert!(b.core.db.networks().attachment(b.core.db.store().node_id("n2").unwrap(), "net").is_some());
    assert!(b.core.db.store().node_id("n1").is_none_or(|id| b.core.db.networks().attachment(id, "net").is_none()));
}

mod fuzz {
    use super::*;
    use crate::wire::memberlist::{encode_message, encode_stream, Message};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No bytes from the network can crash a node: raw packets, raw
        /// streams, and well-framed memberlist user messages carrying
        /// arbitrary networkdb payloads.
        #[test]
        fn arbitrary_input_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut n = node(0, 1);
            n.join_network(0, "net").ok();
            let from = addr(9);
            n.handle_packet(1, from, &raw);
            let _ = n.handle_stream(2, from, &raw);
            let _ = n.stream_frame_len(&raw);
            let user = encode_message(&Message::User(raw.clone()));
            n.handle_packet(3, from, &user);
            let _ = n.handle_stream(4, from, &encode_stream(&Message::User(raw.clone()), false));
            n.handle_timeout(5_000_000);
            let _ = n.take_actions();
        }

        /// Truncations and bit flips of real traffic.
        #[test]
        fn mutated_real_traffic_never_panics(cut in 0usize..400, flip in 0usize..400, bit in 0u8..8) {
            let mut sim = cluster(3, 11);
            sim.with(0, |m, now| m.create_entry(now, "t", "net", "k", b"v")).unwrap().unwrap();
            let mut n = node(5, 3);
            n.join_network(0, "net").ok();
            let mut victim = node(6, 4);
            victim.join(0, &[addr(0)]);
            victim.join_network(0, "net").ok();
            victim.create_entry(0, "t", "net", "x", &[1; 50]).ok();
            victim.handle_timeout(1_000_000);
            for a in victim.take_actions() {
                let data = match a {
                    crate::swim::Action::Packet { data, .. } | crate::swim::Action::Stream { data, .. } => data,
                };
                let mut d = data.clone();
                if !d.is_empty() {
                    let i = flip % d.len();
                    d[i] ^= 1 << bit;
                }
                d.truncate(cut.min(d.len()));
                n.handle_packet(2, addr(6), &d);
                let _ = n.handle_stream(3, addr(6), &d);
            }
            let _ = sim;
        }
    }
}

/// Hands node `i` a networkdb node event as if gossip brought it.
fn deliver_node_event(sim: &mut Sim<NdbNode>, i: usize, kind: NodeEventType, name: &str, ltime: u64) {
    use crate::swim::Delegate;
    use crate::wire::networkdb::Payload;
    let e = NodeEvent { kind, ltime, node_name: name.to_owned() };
    let buf = node_to_wire(&e).encode_gossip();
    sim.with(i, |m, now| {
        m.core.notify_msg(now, &buf);
        m.handle_timeout(now);
    });
}

#[test]
fn late_leave_of_a_previous_life_does_not_outlive_the_rejoin() {
    let mut sim = cluster(4, 12);
    let all: Vec<usize> = (0..4).collect();
    // A Leave of n3 newer than anything n1 saw of it (a late one of n3's previous
    // life looks so): n1 takes n3 as left, though memberlist has it alive.
    deliver_node_event(&mut sim, 1, NodeEventType::Leave, "n3", 10_000);
    assert_eq!(sim.node(1).unwrap().core.db.node_state("n3"), Some(NodeState::Left));
    assert!(!networks_converged(&sim, &all, "net"));
    // n3's Join of its new life, fresher still: n3 is active again at n1 and its
    // attachment comes back through gossip.
    deliver_node_event(&mut sim, 1, NodeEventType::Join, "n3", 10_001);
    assert_eq!(sim.node(1).unwrap().core.db.node_state("n3"), Some(NodeState::Active));
    assert!(sim.run_until_cond(50_000, sim.now + 60 * SEC, |s| networks_converged(s, &all, "net")));
    // A fresher Join of a node memberlist declared dead does not revive it.
    sim.crash(2);
    assert!(sim.run_until_cond(50_000, sim.now + 30 * SEC, |s| {
        s.node(1).unwrap().core.db.node_state("n2") == Some(NodeState::Failed)
    }));
    deliver_node_event(&mut sim, 1, NodeEventType::Join, "n2", 20_000);
    assert_eq!(sim.node(1).unwrap().core.db.node_state("n2"), Some(NodeState::Failed));
}

#[test]
fn a_push_pull_from_a_node_held_as_left_revives_it() {
    let mut sim = cluster(4, 13);
    let all: Vec<usize> = (0..4).collect();
    deliver_node_event(&mut sim, 1, NodeEventType::Leave, "n3", 10_000);
    assert_eq!(sim.node(1).unwrap().core.db.node_state("n3"), Some(NodeState::Left));
    // n3's clock moves past that Leave (it witnesses a later event); its state in
    // the next push/pull with n1 then carries the fresher time.
    deliver_node_event(&mut sim, 3, NodeEventType::Join, "n0", 10_500);
    assert!(sim.run_until_cond(50_000, sim.now + 180 * SEC, |s| {
        s.node(1).unwrap().core.db.node_state("n3") == Some(NodeState::Active)
    }));
    // n3's attachment comes back to n1 only from n3 (the others hold it at an
    // older time than n1's Leave): a push/pull between the two, which each 30 s
    // round misses with probability 4/9, so up to minutes.
    assert!(sim.run_until_cond(50_000, sim.now + 300 * SEC, |s| networks_converged(s, &all, "net")));
}

