//! The hooks a layer above membership (networkdb) plugs in, as memberlist's
//! Delegate and EventDelegate; every method has a do-nothing default.

use std::net::SocketAddr;

/// A member as the delegate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub addr: SocketAddr,
    pub meta: Vec<u8>,
    pub state: u8,
    pub incarnation: u32,
}

pub trait Delegate {
    /// A user message arrived (UDP or TCP).
    fn notify_msg(&mut self, _now: u64, _msg: &[u8]) {}
    /// User broadcasts to piggyback: each at most `limit` bytes in total,
    /// counting `overhead` per message.
    fn get_broadcasts(&mut self, _overhead: usize, _limit: usize) -> Vec<Vec<u8>> {
        Vec::new()
    }
    /// The user state sent in a push/pull.
    fn local_state(&mut self, _join: bool) -> Vec<u8> {
        Vec::new()
    }
    /// The peer's user state from a push/pull.
    fn merge_remote_state(&mut self, _now: u64, _buf: &[u8], _join: bool) {}
    fn notify_join(&mut self, _now: u64, _node: &Member) {}
    fn notify_leave(&mut self, _now: u64, _node: &Member) {}
    fn notify_update(&mut self, _now: u64, _node: &Member) {}
}

/// A delegate that does nothing (membership alone).
#[derive(Debug, Default)]
pub struct NoDelegate;

impl Delegate for NoDelegate {}
