//! Microbenchmarks (ignored tests) of merging a push/pull whose content the
//! receiver already knows, the steady state of a large cluster: every node's
//! periodic push/pull carries all N members and attachments, and nearly all of
//! it changes nothing. Run with
//! `cargo test --release merge_bench -- --ignored --nocapture`.

use std::net::SocketAddr;
use std::time::Instant;

use super::convert::push_pull_to_wire;
use super::events::{NetworkEntry, NetworkPushPull};
use super::protocol::{NdbNode, Settings};
use crate::swim::config::{Config, SEC};
use crate::swim::delegate::NoDelegate;
use crate::swim::Memberlist;
use crate::wire::memberlist::{encode_stream, node_state, Message, PushNodeState, PushPull};
use crate::wire::networkdb::Payload;

const N: usize = 5_000;
const ROUNDS: usize = 100;

/// The bench node's configuration: LAN, but its own push/pull requests (made
/// outside the timing) uncompressed, to keep the set-up short.
fn config() -> Config {
    Config {
        enable_compression: false,
        ..Config::lan(&name(0))
    }
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 7, (i / 250) as u8, (i % 250 + 1) as u8], 7946))
}

fn name(i: usize) -> String {
    format!("mb-n{i}")
}

/// A push/pull stream from node 1 listing N alive members (itself among them)
/// and, when `user` is set, networkdb's state with each member attached to one
/// network.
fn push_pull_bytes(user: bool) -> Vec<u8> {
    let nodes = (1..=N)
        .map(|i| PushNodeState {
            name: name(i),
            addr: match addr(i) {
                SocketAddr::V4(a) => a.ip().octets().to_vec(),
                SocketAddr::V6(a) => a.ip().octets().to_vec(),
            },
            port: addr(i).port(),
            meta: Vec::new(),
            incarnation: 1,
            state: node_state::ALIVE,
            vsn: vec![1, 5, 2, 0, 0, 0],
        })
        .collect();
    let user_state = if user {
        let networks = (1..=N)
            .map(|i| NetworkEntry {
                network_id: "mb-net".into(),
                ltime: 2,
                node_name: name(i),
                leaving: false,
            })
            .collect();
        push_pull_to_wire(&NetworkPushPull {
            ltime: 3,
            networks,
            node_name: name(1),
        })
        .encode_gossip()
    } else {
        Vec::new()
    };
    encode_stream(
        &Message::PushPull(PushPull {
            join: false,
            nodes,
            user_state,
        }),
        false,
    )
}

fn report(what: &str, t: std::time::Duration) {
    let per = t.as_secs_f64() * 1e6 / ROUNDS as f64;
    println!(
        "{what}: {per:.0} us per merge of {N} entries, {:.1} ns per entry",
        per * 1e3 / N as f64
    );
}

#[test]
#[ignore]
fn merge_bench_memberlist_known_state() {
    let data = push_pull_bytes(false);
    let mut d = NoDelegate;
    let mut ml = Memberlist::new(0, config(), addr(0), None, 1);
    let t = ml.join(0, &[addr(1)], &mut d);
    assert_eq!(
        ml.handle_stream_reply(1, t[0], Some(&data), &mut d),
        Ok(true)
    );
    assert_eq!(ml.num_nodes(), N + 1);
    ml.discard_broadcasts();
    // The requests (and the local state each sends) are made outside the timing.
    let tokens: Vec<u64> = (0..ROUNDS)
        .flat_map(|_| {
            let t = ml.join(2, &[addr(1)], &mut d);
            ml.take_actions();
            t
        })
        .collect();
    let start = Instant::now();
    for t in tokens {
        assert_eq!(
            ml.handle_stream_reply(3 * SEC, t, Some(&data), &mut d),
            Ok(true)
        );
    }
    report("memberlist", start.elapsed());
    assert_eq!(ml.queue_len(), 0, "a known state queues nothing");
}

#[test]
#[ignore]
fn merge_bench_networkdb_known_state() {
    let data = push_pull_bytes(true);
    let s = Settings::default();
    let mut n = NdbNode::new(0, config(), s, addr(0), None, 1);
    assert!(n.join_network(0, "mb-net").is_ok());
    let t = n.join(0, &[addr(1)]);
    assert_eq!(n.handle_stream_reply(1, t[0], Some(&data)), Ok(true));
    assert_eq!(n.network_peers("mb-net").len(), N + 1);
    n.discard_broadcasts();
    let tokens: Vec<u64> = (0..ROUNDS)
        .flat_map(|_| {
            let t = n.join(2, &[addr(1)]);
            n.take_actions();
            t
        })
        .collect();
    let start = Instant::now();
    for t in tokens {
        assert_eq!(n.handle_stream_reply(3 * SEC, t, Some(&data)), Ok(true));
    }
    report("memberlist + networkdb", start.elapsed());
}

/// Reading the push/pull alone (memberlist's node states and networkdb's
/// attachments), in place and, for comparison, into owned messages.
#[test]
#[ignore]
fn merge_bench_decode_only() {
    use crate::wire::memberlist::{decode_stream, decode_stream_ref, StreamMessage};
    use crate::wire::networkdb::NetworkPushPullRef;
    let data = push_pull_bytes(true);
    let start = Instant::now();
    for _ in 0..ROUNDS {
        let mut scratch = Vec::new();
        assert_eq!(
            std::hint::black_box(decode_stream_ref(&data, &mut scratch).map(|m| m.is_some())),
            Ok(true)
        );
    }
    report("decode memberlist, in place", start.elapsed());
    let start = Instant::now();
    for _ in 0..ROUNDS {
        assert_eq!(
            std::hint::black_box(decode_stream(&data).map(|m| m.is_some())),
            Ok(true)
        );
    }
    report("decode memberlist, owned", start.elapsed());
    let mut scratch = Vec::new();
    let Ok(Some((StreamMessage::PushPull(pp), _))) = decode_stream_ref(&data, &mut scratch) else {
        panic!("not a push/pull");
    };
    let start = Instant::now();
    for _ in 0..ROUNDS {
        let n = NetworkPushPullRef::decode_gossip(pp.user_state).map(|p| p.networks.len());
        assert_eq!(std::hint::black_box(n), Ok(N));
    }
    report("decode networkdb, in place", start.elapsed());
}
