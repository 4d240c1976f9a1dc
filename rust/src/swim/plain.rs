//! A memberlist node with a simple delegate: user broadcasts through a
//! transmit-limited queue, received messages, push/pull user state and
//! membership events kept for the caller. Used by the Python `Memberlist`
//! class, the interop tests and the protocol tests.

use std::net::SocketAddr;

use super::config::Config;
use super::delegate::{Delegate, Member};
use super::machine::{Action, Memberlist, StreamBytes, SwimError};
use super::queue::BroadcastQueue;
use crate::wire::crypto::Keyring;

/// A membership event: "join", "leave" or "update", with the member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    pub kind: &'static str,
    pub member: Member,
    pub at: u64,
}

#[derive(Debug, Default)]
pub struct PlainDelegate {
    pub queue: BroadcastQueue,
    pub retransmit_mult: u32,
    pub num_nodes: usize,
    pub received: Vec<Vec<u8>>,
    pub remote_states: Vec<(Vec<u8>, bool)>,
    pub local_state: Vec<u8>,
    pub events: Vec<NodeEvent>,
}

impl Delegate for PlainDelegate {
    fn notify_msg(&mut self, _now: u64, msg: &[u8]) {
        self.received.push(msg.to_vec());
    }
    fn get_broadcasts(&mut self, overhead: usize, limit: usize) -> Vec<Vec<u8>> {
        self.queue.get(overhead, limit, self.retransmit_mult, self.num_nodes)
    }
    fn local_state(&mut self, _join: bool) -> Vec<u8> {
        self.local_state.clone()
    }
    fn merge_remote_state(&mut self, _now: u64, buf: &[u8], join: bool) {
        self.remote_states.push((buf.to_vec(), join));
    }
    fn notify_join(&mut self, now: u64, node: &Member) {
        self.events.push(NodeEvent { kind: "join", member: node.clone(), at: now });
    }
    fn notify_leave(&mut self, now: u64, node: &Member) {
        self.events.push(NodeEvent { kind: "leave", member: node.clone(), at: now });
    }
    fn notify_update(&mut self, now: u64, node: &Member) {
        self.events.push(NodeEvent { kind: "update", member: node.clone(), at: now });
    }
}

/// Memberlist plus `PlainDelegate`, driven through one set of methods.
pub struct PlainNode {
    pub ml: Memberlist,
    pub d: PlainDelegate,
}

impl PlainNode {
    pub fn new(now: u64, cfg: Config, addr: SocketAddr, keyring: Option<Keyring>, seed: u64) -> Self {
        let mult = cfg.retransmit_mult;
        let ml = Memberlist::new(now, cfg, addr, keyring, seed);
        let d = PlainDelegate { retransmit_mult: mult, num_nodes: 1, ..Default::default() };
        PlainNode { ml, d }
    }

    fn sync(&mut self) {
        self.d.num_nodes = self.ml.num_nodes();
    }

    pub fn broadcast(&mut self, msg: Vec<u8>) {
        self.d.queue.push(msg, None, None);
    }

    pub fn join(&mut self, now: u64, addrs: &[SocketAddr]) -> Vec<u64> {
        self.ml.join(now, addrs, &mut self.d)
    }

    pub fn leave(&mut self, now: u64) {
        self.ml.leave(now, &mut self.d)
    }

    pub fn handle_packet(&mut self, now: u64, from: SocketAddr, data: &[u8]) {
        self.sync();
        self.ml.handle_packet(now, from, data, &mut self.d)
    }

    pub fn handle_stream(&mut self, now: u64, from: SocketAddr, data: &[u8]) -> Result<Option<Vec<u8>>, SwimError> {
        self.sync();
        self.ml.handle_stream(now, from, data, &mut self.d)
    }

    pub fn handle_stream_reply(&mut self, now: u64, token: u64, data: Option<&[u8]>) -> Result<bool, SwimError> {
        self.sync();
        self.ml.handle_stream_reply(now, token, data, &mut self.d)
    }

    pub fn handle_timeout(&mut self, now: u64) {
        self.sync();
        self.ml.handle_timeout(now, &mut self.d)
    }

    pub fn poll_timeout(&self) -> u64 {
        self.ml.poll_timeout()
    }

    pub fn take_actions(&mut self) -> Vec<Action> {
        self.ml.take_actions()
    }
}

impl crate::sim::Machine for PlainNode {
    type Note = ();
    fn addr(&self) -> SocketAddr {
        self.ml.local_addr()
    }
    fn on_packet(&mut self, now: u64, from: SocketAddr, data: &[u8]) {
        self.handle_packet(now, from, data)
    }
    fn on_stream(&mut self, now: u64, from: SocketAddr, data: &[u8], ahead: Option<&[u8]>) -> Option<StreamBytes> {
        self.sync();
        self.ml.handle_stream_inflated(now, from, data, ahead, &mut self.d).ok().flatten()
    }
    fn on_stream_reply(&mut self, now: u64, token: u64, data: Option<&[u8]>, ahead: Option<&[u8]>) {
        self.sync();
        let _ = self.ml.handle_stream_reply_inflated(now, token, data, ahead, &mut self.d);
    }
    fn poll_timeout(&self) -> u64 {
        self.ml.poll_timeout()
    }
    fn on_timeout(&mut self, now: u64) {
        self.handle_timeout(now)
    }
    fn take_actions(&mut self) -> Vec<Action> {
        self.ml.take_actions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Sim, SimConfig};
    use crate::swim::config::SEC;
    use crate::wire::memberlist::node_state;

    fn addr(i: usize) -> SocketAddr {
        SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250 + 1) as u8], 7946))
    }

    fn cluster(n: usize, local: bool, seed: u64) -> Sim<PlainNode> {
        let mut sim = Sim::new(SimConfig { seed, ..Default::default() });
        for i in 0..n {
            let name = format!("n{i}");
            let cfg = if local { Config::local(&name) } else { Config::lan(&name) };
            let node = PlainNode::new(0, cfg, addr(i), None, seed * 1000 + i as u64);
            sim.add(node);
        }
        for i in 1..n {
            sim.with(i, |m, now| m.join(now, &[addr(0)]));
        }
        sim
    }

    fn alive_view(sim: &Sim<PlainNode>, i: usize) -> usize {
        sim.node(i).map_or(0, |m| m.ml.members().iter().filter(|x| x.state == node_state::ALIVE).count())
    }

    fn all_see(sim: &Sim<PlainNode>, live: &[usize], count: usize) -> bool {
        live.iter().all(|&i| alive_view(sim, i) == count)
    }

    #[test]
    fn ten_nodes_converge() {
        let mut sim = cluster(10, false, 1);
        let all: Vec<usize> = (0..10).collect();
        assert!(sim.run_until_cond(50_000, 10 * SEC, |s| all_see(s, &all, 10)));
        assert!(sim.now < 3 * SEC, "converged only at {} us", sim.now);
    }

    #[test]
    fn crashed_node_detected_without_false_positives() {
        let mut sim = cluster(8, false, 2);
        let all: Vec<usize> = (0..8).collect();
        assert!(sim.run_until_cond(50_000, 10 * SEC, |s| all_see(s, &all, 8)));
        let t0 = sim.now;
        sim.crash(7);
        let rest: Vec<usize> = (0..7).collect();
        assert!(sim.run_until_cond(50_000, t0 + 30 * SEC, |s| all_see(s, &rest, 7)));
        let took = sim.now - t0;
        // No sooner than a failed probe (1 s interval, indirect probes included).
        assert!((SEC..20 * SEC).contains(&took), "detected after {took} us");
        // Nobody else was ever declared failed.
        for i in rest {
            let evs = &sim.node(i).map(|m| m.d.events.clone()).unwrap_or_default();
            assert!(evs.iter().filter(|e| e.kind == "leave").all(|e| e.member.name == "n7"), "{evs:?}");
        }
    }

    #[test]
    fn user_broadcast_reaches_everyone_and_leave_is_seen() {
        let mut sim = cluster(6, true, 3);
        let all: Vec<usize> = (0..6).collect();
        assert!(sim.run_until_cond(50_000, 10 * SEC, |s| all_see(s, &all, 6)));
        sim.with(2, |m, _| m.broadcast(b"hello".to_vec()));
        let got = |s: &Sim<PlainNode>| {
            all.iter().filter(|&&i| s.node(i).is_some_and(|m| m.d.received.contains(&b"hello".to_vec()))).count()
        };
        assert!(sim.run_until_cond(20_000, sim.now + 5 * SEC, |s| got(s) >= 1));
        // The sender piggybacks it at most retransmit-limit times (local
        // profile: 2 × ceil(log10(7)) = 2), then drops it; receivers do not relay
        // user messages (that is the delegate's job, as networkdb's).
        sim.run_until(sim.now + 3 * SEC);
        assert!(got(&sim) <= 2, "delivered to {} nodes", got(&sim));
        assert!(sim.node(2).is_some_and(|m| m.d.queue.is_empty()));
        sim.with(5, |m, now| m.leave(now));
        assert!(sim.run_until_cond(20_000, sim.now + 5 * SEC, |s| s.node(5).is_some_and(|m| m.ml.leave_finished())));
        sim.crash(5);
        assert!(sim.run_until_cond(20_000, sim.now + 5 * SEC, |s| (0..5).all(|i| s
            .node(i)
            .and_then(|m| m.ml.member("n5"))
            .is_some_and(|m| m.state == node_state::LEFT))));
    }

    #[test]
    fn partition_heals_through_push_pull_and_refutation() {
        let mut sim = cluster(6, true, 4);
        let all: Vec<usize> = (0..6).collect();
        assert!(sim.run_until_cond(50_000, 10 * SEC, |s| all_see(s, &all, 6)));
        sim.set_groups(&[0, 0, 0, 1, 1, 1]);
        assert!(sim.run_until_cond(100_000, sim.now + 60 * SEC, |s| all_see(s, &all, 3)));
        sim.heal();
        // Dead nodes are not probed; without a rejoin only push/pull can merge
        // the halves. memberlist: a node that sees itself suspected refutes.
        for i in 3..6 {
            sim.with(i, |m, now| m.join(now, &[addr(0)]));
        }
        assert!(sim.run_until_cond(100_000, sim.now + 60 * SEC, |s| all_see(s, &all, 6)));
    }

    #[test]
    fn same_seed_same_run() {
        let run = |seed| {
            let mut sim = cluster(5, true, seed);
            sim.run_until(5 * SEC);
            (sim.events_processed, sim.traffics().map(|t| t.bytes_sent).sum::<u64>())
        };
        assert_eq!(run(9), run(9));
    }
}
