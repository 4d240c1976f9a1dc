//! Merging push/pull states: entries that change nothing are dropped before
//! anything owned is built (the steady state of a large cluster); these tests
//! pin down that every entry that does change something still does.

use std::net::{IpAddr, SocketAddr};

use proptest::prelude::*;

use super::config::{Config, SEC};
use super::delegate::NoDelegate;
use super::plain::PlainDelegate;
use super::{Action, Memberlist, SwimError};
use crate::wire::memberlist::{
    decode_stream, encode_message, encode_stream, node_state, Alive, Dead, Message, PushNodeState,
    PushPull, Suspect,
};

const ME: &str = "mt-me";

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 9, 0, i], 7946))
}

fn ip(a: SocketAddr) -> Vec<u8> {
    match a.ip() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn state(name: &str, a: SocketAddr, incarnation: u32, st: u8) -> PushNodeState {
    PushNodeState {
        name: name.into(),
        addr: ip(a),
        port: a.port(),
        meta: Vec::new(),
        incarnation,
        state: st,
        vsn: vec![1, 5, 2, 0, 0, 0],
    }
}

fn push_pull(nodes: Vec<PushNodeState>) -> Vec<u8> {
    encode_stream(
        &Message::PushPull(PushPull {
            join: false,
            nodes,
            user_state: Vec::new(),
        }),
        false,
    )
}

/// A push/pull reply merged at `now` (through a request made just before).
fn merge(ml: &mut Memberlist, d: &mut PlainDelegate, now: u64, nodes: Vec<PushNodeState>) {
    let t = ml.join(now, &[addr(200)], d);
    ml.take_actions();
    assert_eq!(
        ml.handle_stream_reply(now, t[0], Some(&push_pull(nodes)), d),
        Ok(true)
    );
}

/// The five members every test starts from: mt-1..mt-5 alive at incarnation 5.
fn known() -> Vec<PushNodeState> {
    (1..=5)
        .map(|i| state(&format!("mt-{i}"), addr(i), 5, node_state::ALIVE))
        .collect()
}

/// A node that knows `known()`, with its events and queue emptied.
fn node(cfg: Config) -> (Memberlist, PlainDelegate) {
    let mut ml = Memberlist::new(0, cfg, addr(100), None, 7);
    let mut d = PlainDelegate::default();
    merge(&mut ml, &mut d, SEC, known());
    assert_eq!(d.events.len(), 5);
    d.events.clear();
    ml.discard_broadcasts();
    (ml, d)
}

fn lan() -> (Memberlist, PlainDelegate) {
    node(Config::lan(ME))
}

/// (kind, member name) of the delegate's events.
fn events(d: &PlainDelegate) -> Vec<(&'static str, String)> {
    d.events
        .iter()
        .map(|e| (e.kind, e.member.name.clone()))
        .collect()
}

#[test]
fn a_known_state_changes_nothing() {
    let (mut ml, mut d) = lan();
    let before = ml.state_for_test();
    let mut again = known();
    again.push(state(ME, addr(100), 1, node_state::ALIVE));
    // Older incarnations and suspicions of the past change nothing either.
    again.push(state("mt-1", addr(1), 4, node_state::ALIVE));
    again.push(state("mt-2", addr(2), 4, node_state::DEAD));
    again.push(state("mt-3", addr(3), 4, node_state::LEFT));
    merge(&mut ml, &mut d, 2 * SEC, again);
    assert_eq!(ml.state_for_test(), before);
    assert!(d.events.is_empty());
    assert_eq!(ml.queue_len(), 0);
}

#[test]
fn a_higher_incarnation_is_taken_and_broadcast() {
    let (mut ml, mut d) = lan();
    let mut s = state("mt-1", addr(1), 6, node_state::ALIVE);
    s.meta = b"new-meta".to_vec();
    merge(&mut ml, &mut d, 2 * SEC, vec![s]);
    let m = ml.member("mt-1").unwrap();
    assert_eq!(
        (m.incarnation, m.state, &m.meta[..]),
        (6, node_state::ALIVE, &b"new-meta"[..])
    );
    assert_eq!(events(&d), [("update", "mt-1".to_string())]);
    assert_eq!(ml.queue_len(), 1, "the alive message is gossiped on");
}

#[test]
fn meta_set_then_cleared_is_reported_each_time() {
    // Metas live aside from the member records (only non-empty ones).
    let (mut ml, mut d) = lan();
    let mut s = state("mt-2", addr(2), 6, node_state::ALIVE);
    s.meta = b"m1".to_vec();
    merge(&mut ml, &mut d, 2 * SEC, vec![s]);
    // A higher incarnation with the same meta: no update event.
    let mut s = state("mt-2", addr(2), 7, node_state::ALIVE);
    s.meta = b"m1".to_vec();
    merge(&mut ml, &mut d, 3 * SEC, vec![s]);
    assert_eq!(&ml.member("mt-2").unwrap().meta[..], b"m1");
    merge(&mut ml, &mut d, 4 * SEC, vec![state("mt-2", addr(2), 8, node_state::ALIVE)]);
    assert!(ml.member("mt-2").unwrap().meta.is_empty());
    assert_eq!(events(&d), [("update", "mt-2".to_string()), ("update", "mt-2".to_string())]);
    assert!(ml.members().iter().filter(|m| m.name != "mt-2").all(|m| m.meta.is_empty()));
}

#[test]
fn the_same_incarnation_with_new_meta_is_ignored() {
    // memberlist only takes an alive message with a higher incarnation.
    let (mut ml, mut d) = lan();
    let mut s = state("mt-1", addr(1), 5, node_state::ALIVE);
    s.meta = b"other".to_vec();
    merge(&mut ml, &mut d, 2 * SEC, vec![s]);
    assert!(ml.member("mt-1").unwrap().meta.is_empty());
    assert!(d.events.is_empty());
    assert_eq!(ml.queue_len(), 0);
}

#[test]
fn a_new_node_is_added() {
    let (mut ml, mut d) = lan();
    merge(
        &mut ml,
        &mut d,
        2 * SEC,
        vec![state("mt-9", addr(9), 1, node_state::ALIVE)],
    );
    let m = ml.member("mt-9").unwrap();
    assert_eq!(
        (m.addr, m.state, m.incarnation),
        (addr(9), node_state::ALIVE, 1)
    );
    assert_eq!(events(&d), [("join", "mt-9".to_string())]);
    assert_eq!(ml.queue_len(), 1);
    assert_eq!(ml.num_nodes(), 7);
}

#[test]
fn a_left_entry_marks_the_node_left() {
    let (mut ml, mut d) = lan();
    merge(
        &mut ml,
        &mut d,
        2 * SEC,
        vec![state("mt-2", addr(2), 5, node_state::LEFT)],
    );
    assert_eq!(ml.member("mt-2").unwrap().state, node_state::LEFT);
    assert_eq!(events(&d), [("leave", "mt-2".to_string())]);
    assert_eq!(ml.queue_len(), 1, "the dead message is gossiped on");
}

#[test]
fn a_dead_or_suspect_entry_makes_the_node_suspect() {
    for st in [node_state::DEAD, node_state::SUSPECT] {
        let (mut ml, mut d) = lan();
        merge(
            &mut ml,
            &mut d,
            2 * SEC,
            vec![state("mt-3", addr(3), 5, st)],
        );
        assert_eq!(ml.member("mt-3").unwrap().state, node_state::SUSPECT);
        assert!(d.events.is_empty(), "only suspected");
        assert_eq!(ml.queue_len(), 1, "the suspect message is gossiped on");
        assert!(
            ml.poll_timeout() < 2 * SEC + 60 * SEC,
            "a suspicion timer runs"
        );
    }
}

#[test]
fn a_new_address_is_refused_while_the_node_lives() {
    let (mut ml, mut d) = lan();
    merge(
        &mut ml,
        &mut d,
        2 * SEC,
        vec![state("mt-4", addr(44), 9, node_state::ALIVE)],
    );
    let m = ml.member("mt-4").unwrap();
    assert_eq!((m.addr, m.incarnation), (addr(4), 5));
    assert!(d.events.is_empty());
    assert_eq!(ml.queue_len(), 0);
}

/// Kills mt-4 at `at` with a dead message.
fn kill_mt4(ml: &mut Memberlist, d: &mut PlainDelegate, at: u64) {
    let dead = Message::Dead(Dead {
        incarnation: 5,
        node: "mt-4".into(),
        from: "mt-1".into(),
    });
    ml.handle_packet(at, addr(1), &encode_message(&dead), d);
    assert_eq!(ml.member("mt-4").unwrap().state, node_state::DEAD);
    d.events.clear();
    ml.discard_broadcasts();
}

#[test]
fn a_dead_nodes_new_address_is_taken_after_the_reclaim_time() {
    let cfg = Config {
        dead_node_reclaim_time: 10 * SEC,
        ..Config::lan(ME)
    };
    let (mut ml, mut d) = node(cfg);
    kill_mt4(&mut ml, &mut d, 2 * SEC);
    // Within the reclaim time: still a conflict, even at a higher incarnation.
    merge(
        &mut ml,
        &mut d,
        5 * SEC,
        vec![state("mt-4", addr(44), 6, node_state::ALIVE)],
    );
    assert_eq!(ml.member("mt-4").unwrap().addr, addr(4));
    assert!(d.events.is_empty());
    // Past it, the same incarnation at the new address is taken.
    merge(
        &mut ml,
        &mut d,
        13 * SEC,
        vec![state("mt-4", addr(44), 5, node_state::ALIVE)],
    );
    let m = ml.member("mt-4").unwrap();
    assert_eq!((m.addr, m.state), (addr(44), node_state::ALIVE));
    assert_eq!(events(&d), [("join", "mt-4".to_string())]);
    assert_eq!(ml.queue_len(), 1);
}

#[test]
fn a_left_nodes_new_address_is_taken_at_once() {
    let (mut ml, mut d) = lan();
    merge(
        &mut ml,
        &mut d,
        2 * SEC,
        vec![state("mt-5", addr(5), 5, node_state::LEFT)],
    );
    d.events.clear();
    ml.discard_broadcasts();
    merge(
        &mut ml,
        &mut d,
        3 * SEC,
        vec![state("mt-5", addr(55), 5, node_state::ALIVE)],
    );
    let m = ml.member("mt-5").unwrap();
    assert_eq!((m.addr, m.state), (addr(55), node_state::ALIVE));
    assert_eq!(events(&d), [("join", "mt-5".to_string())]);
}

#[test]
fn a_higher_incarnation_of_this_node_is_refuted() {
    let (mut ml, mut d) = lan();
    merge(
        &mut ml,
        &mut d,
        2 * SEC,
        vec![state(ME, addr(100), 10, node_state::ALIVE)],
    );
    assert_eq!(ml.member(ME).unwrap().incarnation, 11);
    assert_eq!(ml.queue_len(), 1, "the refutation");
    assert_eq!(ml.health_score(), 1);
    // Being reported dead or suspect at the current incarnation: refuted too.
    for st in [node_state::DEAD, node_state::LEFT] {
        ml.discard_broadcasts();
        let inc = ml.member(ME).unwrap().incarnation;
        merge(
            &mut ml,
            &mut d,
            3 * SEC,
            vec![state(ME, addr(100), inc, st)],
        );
        let m = ml.member(ME).unwrap();
        assert_eq!(
            (m.state, m.incarnation),
            (node_state::ALIVE, inc + 1),
            "refuted ({st})"
        );
        assert_eq!(ml.queue_len(), 1, "refuted ({st})");
    }
}

#[test]
fn malformed_entries_are_skipped() {
    let (mut ml, mut d) = lan();
    let before = ml.state_for_test();
    let mut bad_vsn = state("mt-1", addr(1), 9, node_state::ALIVE);
    bad_vsn.vsn = vec![0, 5, 2, 0, 0, 0];
    let mut bad_addr = state("mt-2", addr(2), 9, node_state::ALIVE);
    bad_addr.addr = vec![10, 9, 0, 2, 0];
    merge(&mut ml, &mut d, 2 * SEC, vec![bad_vsn, bad_addr]);
    assert_eq!(ml.state_for_test(), before);
    assert!(d.events.is_empty());
}

#[test]
fn a_name_that_is_not_utf8_is_repaired_as_before() {
    // The owned decoder turns bad bytes into U+FFFD; the borrowed one must too.
    let mut s = state("mt-x", addr(77), 1, node_state::ALIVE);
    let mut bytes = push_pull(vec![s.clone()]);
    let at = bytes.windows(4).position(|w| w == b"mt-x").unwrap();
    bytes[at + 3] = 0xff;
    let mut ml = Memberlist::new(0, Config::lan(ME), addr(100), None, 7);
    let mut d = PlainDelegate::default();
    let t = ml.join(SEC, &[addr(200)], &mut d);
    assert_eq!(
        ml.handle_stream_reply(SEC, t[0], Some(&bytes), &mut d),
        Ok(true)
    );
    s.name = "mt-\u{fffd}".into();
    assert!(ml.member(&s.name).is_some());
}

// ---- the push/pull path against the message path -----------------------------------

/// What memberlist's mergeState does with one entry, as the gossip message
/// that has the same effect: alive as alive, left as a dead message from the
/// node itself, anything else as a suspicion raised by this node.
fn as_message(s: &PushNodeState) -> Message {
    match s.state {
        node_state::ALIVE => Message::Alive(Alive {
            incarnation: s.incarnation,
            node: s.name.clone(),
            addr: s.addr.clone(),
            port: s.port,
            meta: s.meta.clone(),
            vsn: s.vsn.clone(),
        }),
        node_state::LEFT => Message::Dead(Dead {
            incarnation: s.incarnation,
            node: s.name.clone(),
            from: s.name.clone(),
        }),
        _ => Message::Suspect(Suspect {
            incarnation: s.incarnation,
            node: s.name.clone(),
            from: ME.into(),
        }),
    }
}

fn arb_entry() -> impl Strategy<Value = PushNodeState> {
    let names = prop_oneof![
        (1u8..=8).prop_map(|i| format!("mt-{i}")),
        Just(ME.to_string()),
        Just("mt-\u{fffd}".to_string()),
    ];
    let addrs = prop_oneof![
        8 => (1u8..=9).prop_map(|i| ip(addr(i))),
        1 => Just(vec![10, 9, 0]),
        1 => Just(ip(SocketAddr::from(([0xfe80, 0, 0, 0, 0, 0, 0, 1], 7946)))),
    ];
    let vsns = prop_oneof![
        6 => Just(vec![1, 5, 2, 0, 0, 0]),
        1 => Just(vec![2, 4, 2, 0, 0, 0]),
        1 => Just(Vec::new()),
        1 => Just(vec![0, 5, 2]),
        1 => Just(vec![5, 1, 2]),
    ];
    let metas =
        prop_oneof![4 => Just(Vec::new()), 1 => Just(b"m1".to_vec()), 1 => Just(b"m2".to_vec())];
    (
        names,
        addrs,
        vsns,
        metas,
        3u32..8,
        prop_oneof![4 => Just(0u8), 1 => 1u8..5],
    )
        .prop_map(
            |(name, addr, vsn, meta, incarnation, state)| PushNodeState {
                name,
                addr,
                port: 7946,
                meta,
                incarnation,
                state,
                vsn,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Merging a push/pull (its entries read in place, most dropped early)
    /// leaves a node exactly as the equivalent gossip messages do (read into
    /// owned messages, each taking the whole path): same members, suspicions,
    /// broadcasts in the same order, same events.
    #[test]
    fn push_pull_merges_as_the_equivalent_messages(
        first in proptest::collection::vec(arb_entry(), 0..12),
        then in proptest::collection::vec(arb_entry(), 0..24),
        gap in 0u64..40,
        reclaim in any::<bool>(),
        left in any::<bool>(),
    ) {
        let cfg = Config { dead_node_reclaim_time: if reclaim { 10 * SEC } else { 0 }, ..Config::lan(ME) };
        let make = || {
            let mut ml = Memberlist::new(0, cfg.clone(), addr(100), None, 11);
            let mut d = PlainDelegate::default();
            merge(&mut ml, &mut d, SEC, known());
            merge(&mut ml, &mut d, 2 * SEC, first.clone());
            if left {
                ml.leave(3 * SEC, &mut d);
            }
            // The request whose reply is merged below (made on both, so that
            // both have used the same tokens).
            let t = ml.join(3 * SEC, &[addr(200)], &mut d);
            ml.take_actions();
            (ml, d, t[0])
        };
        let now = (3 + gap) * SEC;
        let (mut a, mut da, ta) = make();
        let (mut b, mut db, _) = make();
        prop_assert_eq!(a.state_for_test(), b.state_for_test());
        prop_assert_eq!(a.handle_stream_reply(now, ta, Some(&push_pull(then.clone())), &mut da), Ok(true));
        for s in &then {
            b.handle_packet(now, addr(1), &encode_message(&as_message(s)), &mut db);
        }
        prop_assert_eq!(a.state_for_test(), b.state_for_test());
        prop_assert_eq!(&da.events, &db.events);
        prop_assert_eq!(a.leave_finished(), b.leave_finished());
        prop_assert_eq!(a.poll_timeout(), b.poll_timeout());
    }
}

#[test]
fn the_warm_start_path_merges_as_the_wire_path() {
    // `handle_stream_reply_message` (a decoded message, as the simulator's
    // warm start hands it over) and `handle_stream_reply` (bytes) agree.
    let mut nodes = known();
    nodes.push(state("mt-6", addr(6), 2, node_state::LEFT));
    nodes.push(state("mt-7", addr(7), 2, node_state::DEAD));
    let msg = Message::PushPull(PushPull {
        join: false,
        nodes,
        user_state: b"user".to_vec(),
    });
    let bytes = encode_stream(&msg, true);
    let mut a = Memberlist::new(0, Config::lan(ME), addr(100), None, 3);
    let mut b = Memberlist::new(0, Config::lan(ME), addr(100), None, 3);
    let (ta, tb) = (
        a.join(0, &[addr(1)], &mut NoDelegate),
        b.join(0, &[addr(1)], &mut NoDelegate),
    );
    assert_eq!(
        a.handle_stream_reply(SEC, ta[0], Some(&bytes), &mut NoDelegate),
        Ok(true)
    );
    assert_eq!(
        b.handle_stream_reply_message(SEC, tb[0], &msg, bytes.len(), &mut NoDelegate),
        Ok(true)
    );
    assert_eq!(a.state_for_test(), b.state_for_test());
    assert_eq!(
        a.counters.stream_bytes_received,
        b.counters.stream_bytes_received
    );
}

#[test]
fn a_push_pull_where_an_ack_was_expected_is_reported_as_before() {
    // The error names the whole (owned) message, as it did.
    let (mut ml, mut d) = lan();
    // Run probes until one falls back to a TCP ping (a stream with a token
    // carrying a ping): nobody answers in this test.
    let (mut now, mut tcp_ping) = (SEC, None);
    while tcp_ping.is_none() && now < 30 * SEC {
        now = ml.poll_timeout().max(now);
        ml.handle_timeout(now, &mut d);
        for a in ml.take_actions() {
            if let Action::Stream {
                data,
                token: Some(t),
                ..
            } = a
            {
                if matches!(decode_stream(&data), Ok(Some((Message::Ping(_), _)))) {
                    tcp_ping = Some(t);
                }
            }
        }
    }
    let t = tcp_ping.expect("a TCP ping");
    let msg = Message::PushPull(PushPull {
        join: false,
        nodes: known(),
        user_state: Vec::new(),
    });
    let got = ml.handle_stream_reply(now, t, Some(&push_pull(known())), &mut d);
    assert_eq!(got, Err(SwimError::Unexpected(format!("{msg:?}"))));
    let alive = Message::Alive(Alive::default());
    let got = ml.handle_stream(now, addr(1), &encode_stream(&alive, false), &mut d);
    assert_eq!(
        got,
        Err(SwimError::Unexpected(format!("{alive:?} on a stream")))
    );
}

/// The members a push/pull on a stream lists: name -> (incarnation, state).
fn listed(bytes: &[u8]) -> std::collections::BTreeMap<String, (u32, u8)> {
    match decode_stream(bytes) {
        Ok(Some((Message::PushPull(pp), _))) => pp
            .nodes
            .into_iter()
            .map(|n| (n.name, (n.incarnation, n.state)))
            .collect(),
        other => panic!("not a push/pull: {other:?}"),
    }
}

/// The push/pull a node opens at `now` (its bytes on the stream).
fn opened(ml: &mut Memberlist, d: &mut PlainDelegate, now: u64) -> Vec<u8> {
    ml.join(now, &[addr(200)], d);
    let sent: Vec<Vec<u8>> = ml
        .take_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::Stream { data, .. } => Some(data),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1);
    sent.into_iter().next().unwrap_or_default()
}

#[test]
fn each_push_pull_lists_the_members_as_they_are_when_it_is_sent() {
    // Enough members for several LZW table resets (a later push/pull
    // resumes the compression of the one before) and for an answer to be
    // compressed on a thread of its own while the node merges.
    let (mut ml, mut d) = lan();
    let many: Vec<PushNodeState> = (1..=1200u32)
        .map(|i| {
            let a = SocketAddr::from(([10, 8, (i >> 8) as u8, i as u8], 7946));
            state(&format!("mt-many-{i}"), a, 1, node_state::ALIVE)
        })
        .collect();
    merge(&mut ml, &mut d, 2 * SEC, many.clone());
    let first = listed(&opened(&mut ml, &mut d, 3 * SEC));
    assert_eq!(first.len(), 1206);
    assert_eq!(first["mt-many-1100"], (1, node_state::ALIVE));

    // A peer's push/pull raises one member's incarnation: the answer is
    // the state before the merge, as memberlist answers.
    let mut peer = many;
    peer[1099].incarnation = 9;
    let answer = ml.handle_stream(4 * SEC, addr(201), &push_pull(peer), &mut d);
    let answer = listed(&answer.ok().flatten().unwrap_or_default());
    assert_eq!(answer, first);

    // The next push/pull carries the change, and nothing else differs.
    let mut then = listed(&opened(&mut ml, &mut d, 5 * SEC));
    assert_eq!(then.insert("mt-many-1100".into(), (1, node_state::ALIVE)), Some((9, node_state::ALIVE)));
    assert_eq!(then, first);
}
