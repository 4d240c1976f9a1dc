//! What the simulator measures, fed by the nodes' traces (`NdbNode`'s
//! [`Trace`] log) as they happen: when each node stored each table write,
//! what each node believes about each member, and false failure episodes.

use std::collections::{HashMap, HashSet};

use crate::networkdb::protocol::Trace;

/// Time offsets are kept in units of 10 µs in a `u32` (up to ~11.9 hours).
const TICK: u64 = 10;
const UNSEEN: u32 = u32::MAX;

/// One table write made by the workload.
#[derive(Debug, Clone)]
pub struct Write {
    pub at: u64,
    pub owner: usize,
    pub network: usize,
    pub ltime: u64,
    pub deleting: bool,
    /// Per member of the write's network (by position): when it stored the
    /// write or a newer one of the same key, in ticks after `at`.
    seen: Vec<u32>,
}

/// A change of the true membership (or a heal) that nodes must catch up with.
#[derive(Debug, Clone)]
pub struct MembershipEvent {
    pub kind: &'static str,
    pub at: u64,
    /// When every live node's view matched the truth again.
    pub converged_at: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Recorder {
    n: usize,
    /// Network → its members (node indexes), and node → position there.
    members: Vec<Vec<usize>>,
    pos: Vec<HashMap<usize, u32>>,
    pub writes: Vec<Write>,
    by_key: HashMap<String, Vec<u32>>,
    /// Node is up (running), and since when (its state starts then).
    pub up: Vec<bool>,
    pub epoch: Vec<u64>,
    /// belief[i * n + m]: node i believes m alive.
    belief: Vec<u64>,
    /// (observer, member) pairs where the observer believes the member failed.
    failed_belief: HashSet<(u32, u32)>,
    /// Pairs believed dead while both up and connected: start time.
    episodes: HashMap<(u32, u32), u64>,
    /// Live (observer, member) pairs whose belief differs from the truth.
    disagree: i64,
    pub events: Vec<MembershipEvent>,
    pub false_failures: u64,
    pub max_healthy_dead: u64,
    pub healthy_dead_violations: u64,
    pub suspicion_bound: u64,
    pub resurrections: u64,
    /// Mirror of the network's partitions, set by the driver: partition
    /// group of each node and blocked directed pairs.
    pub group: Vec<u32>,
    pub blocked: HashSet<(usize, usize)>,
}

fn parse_index(name: &str) -> Option<usize> {
    name.strip_prefix('n')?.parse().ok()
}

impl Recorder {
    pub fn new(n: usize, members: Vec<Vec<usize>>, suspicion_bound: u64) -> Self {
        let pos = members
            .iter()
            .map(|m| m.iter().enumerate().map(|(p, &i)| (i, p as u32)).collect())
            .collect();
        Recorder {
            n,
            members,
            pos,
            up: vec![true; n],
            epoch: vec![0; n],
            belief: vec![0; (n * n).div_ceil(64)],
            // Nobody knows anybody yet.
            disagree: (n as i64) * (n as i64 - 1),
            suspicion_bound,
            group: vec![0; n],
            ..Default::default()
        }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn members(&self, network: usize) -> &[usize] {
        &self.members[network]
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.group.get(a) == self.group.get(b)
            && !self.blocked.contains(&(a, b))
            && !self.blocked.contains(&(b, a))
    }

    fn believes(&self, i: usize, m: usize) -> bool {
        let b = i * self.n + m;
        self.belief[b / 64] >> (b % 64) & 1 == 1
    }

    fn set_belief(&mut self, i: usize, m: usize, alive: bool) {
        let old = self.believes(i, m);
        if old == alive {
            return;
        }
        let b = i * self.n + m;
        if alive {
            self.belief[b / 64] |= 1 << (b % 64);
        } else {
            self.belief[b / 64] &= !(1 << (b % 64));
        }
        if self.up[i] && i != m {
            let truth = self.up[m];
            self.disagree += (alive != truth) as i64 - (old != truth) as i64;
        }
    }

    fn check_converged(&mut self, now: u64) {
        if self.disagree == 0 {
            for e in self.events.iter_mut().filter(|e| e.converged_at.is_none()) {
                e.converged_at = Some(now);
            }
        }
    }

    /// Live pairs whose belief is not the truth (0: membership converged).
    pub fn disagreement(&self) -> i64 {
        self.disagree
    }

    pub fn membership_event(&mut self, kind: &'static str, now: u64) {
        self.events.push(MembershipEvent {
            kind,
            at: now,
            converged_at: None,
        });
        self.check_converged(now);
    }

    /// Records a write; `ltime` is the owner's table time for it.
    pub fn write(
        &mut self,
        now: u64,
        owner: usize,
        network: usize,
        key: &str,
        ltime: u64,
        deleting: bool,
    ) {
        let id = self.writes.len() as u32;
        let mut seen = vec![UNSEEN; self.members[network].len()];
        if let Some(&p) = self.pos[network].get(&owner) {
            seen[p as usize] = 0;
        }
        self.writes.push(Write {
            at: now,
            owner,
            network,
            ltime,
            deleting,
            seen,
        });
        self.by_key.entry(key.to_owned()).or_default().push(id);
    }

    /// Node `i` stopped (crash or leave): it is no longer an observer, and
    /// the others should come to believe it dead.
    pub fn node_down(&mut self, i: usize, now: u64, kind: &'static str) {
        if !self.up[i] {
            return;
        }
        // Its own row stops counting; it stops being up as a member.
        for m in 0..self.n {
            if m != i && self.believes(i, m) != self.up[m] {
                self.disagree -= 1;
            }
        }
        self.up[i] = false;
        for o in 0..self.n {
            if o != i && self.up[o] {
                let b = self.believes(o, i);
                self.disagree += b as i64 - (!b) as i64;
            }
        }
        self.episodes
            .retain(|&(o, m), _| o as usize != i && m as usize != i);
        self.failed_belief.retain(|&(o, _)| o as usize != i);
        self.membership_event(kind, now);
    }

    /// Node `i` starts afresh (a restart with empty state).
    pub fn node_up(&mut self, i: usize, now: u64, kind: &'static str) {
        for m in 0..self.n {
            self.set_belief(i, m, false);
        }
        self.up[i] = true;
        self.epoch[i] = now;
        // As an observer it believes nobody alive; as a member it is up.
        for m in 0..self.n {
            if m != i && self.up[m] {
                self.disagree += 1;
            }
        }
        for o in 0..self.n {
            if o != i && self.up[o] {
                let b = self.believes(o, i);
                self.disagree += (!b) as i64 - b as i64;
            }
        }
        // What it had seen of writes is gone with its state.
        for w in &mut self.writes {
            if let Some(&p) = self.pos[w.network].get(&i) {
                w.seen[p as usize] = UNSEEN;
            }
        }
        self.membership_event(kind, now);
    }

    /// The network healed: pairs believed failed that can talk again start
    /// counting as healthy nodes believed dead.
    pub fn healed(&mut self, now: u64) {
        let pairs: Vec<(u32, u32)> = self.failed_belief.iter().copied().collect();
        for (o, m) in pairs {
            if self.up[o as usize] && self.up[m as usize] {
                self.episodes.entry((o, m)).or_insert(now);
            }
        }
        self.membership_event("heal", now);
    }

    fn close_episode(&mut self, key: (u32, u32), now: u64) {
        if let Some(start) = self.episodes.remove(&key) {
            let d = now - start;
            self.max_healthy_dead = self.max_healthy_dead.max(d);
            if d > self.suspicion_bound {
                self.healthy_dead_violations += 1;
            }
        }
    }

    /// Closes the open episodes at the end of a run.
    pub fn finish(&mut self, now: u64) {
        let keys: Vec<(u32, u32)> = self.episodes.keys().copied().collect();
        for k in keys {
            self.close_episode(k, now);
        }
    }

    /// What node `i` traced at `now`.
    pub fn observe(&mut self, i: usize, now: u64, traces: Vec<Trace>) {
        for t in traces {
            match t {
                Trace::Table {
                    key,
                    ltime,
                    deleting,
                } => self.table(i, now, &key, ltime, deleting),
                Trace::NodeUp(name) => {
                    let Some(m) = parse_index(&name).filter(|&m| m < self.n) else {
                        continue;
                    };
                    self.set_belief(i, m, true);
                    self.failed_belief.remove(&(i as u32, m as u32));
                    self.close_episode((i as u32, m as u32), now);
                }
                Trace::NodeDown { name, left } => {
                    let Some(m) = parse_index(&name).filter(|&m| m < self.n) else {
                        continue;
                    };
                    self.set_belief(i, m, false);
                    if !left {
                        self.failed_belief.insert((i as u32, m as u32));
                        let healthy = self.up[i] && self.up[m] && self.connected(i, m);
                        if healthy {
                            self.false_failures += 1;
                            self.episodes.entry((i as u32, m as u32)).or_insert(now);
                        }
                    }
                }
            }
        }
        self.check_converged(now);
    }

    fn table(&mut self, i: usize, now: u64, key: &str, ltime: u64, deleting: bool) {
        let Some(ids) = self.by_key.get(key) else {
            return;
        };
        // A newer event stands for the older writes of the key it replaced.
        for &id in ids.iter().rev() {
            let w = &mut self.writes[id as usize];
            let Some(&p) = self.pos[w.network].get(&i) else {
                return;
            };
            if w.ltime > ltime {
                if w.deleting && !deleting && w.seen[p as usize] != UNSEEN {
                    // A delete it had stored lost to an older write.
                    self.resurrections += 1;
                }
                continue;
            }
            if w.seen[p as usize] != UNSEEN {
                break;
            }
            w.seen[p as usize] = (now.saturating_sub(w.at) / TICK).min(UNSEEN as u64 - 1) as u32;
        }
    }

    /// Per write: the time (µs) until every eligible member of its network
    /// had it (None: some never did), and the offsets at which each did.
    /// Eligible: up at the end, and its state older than the write.
    pub fn convergence(&self) -> Vec<(Option<u64>, Vec<u64>)> {
        self.writes
            .iter()
            .map(|w| {
                let mut max = 0u64;
                let mut all = true;
                let mut offs = Vec::new();
                for (p, &i) in self.members[w.network].iter().enumerate() {
                    if !self.up[i] || self.epoch[i] > w.at {
                        continue;
                    }
                    match w.seen[p] {
                        UNSEEN => all = false,
                        s => {
                            let us = s as u64 * TICK;
                            max = max.max(us);
                            offs.push(us);
                        }
                    }
                }
                (all.then_some(max), offs)
            })
            .collect()
    }

    /// How many eligible members each write has (for fractions).
    pub fn eligible(&self, w: &Write) -> usize {
        self.members[w.network]
            .iter()
            .filter(|&&i| self.up[i] && self.epoch[i] <= w.at)
            .count()
    }
}
