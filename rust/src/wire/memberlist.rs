//! memberlist 0.2.2 wire format: message structs (msgpack maps keyed by Go
//! field names, go-msgpack's "raw" strings), compound packets, the CRC and
//! compression layers, and TCP stream framing. Encryption lives in `crypto`.

use std::fmt;

/// Message type bytes, as memberlist numbers them.
pub mod msg_type {
    pub const PING: u8 = 0;
    pub const INDIRECT_PING: u8 = 1;
    pub const ACK: u8 = 2;
    pub const SUSPECT: u8 = 3;
    pub const ALIVE: u8 = 4;
    pub const DEAD: u8 = 5;
    pub const PUSH_PULL: u8 = 6;
    pub const COMPOUND: u8 = 7;
    pub const USER: u8 = 8;
    pub const COMPRESS: u8 = 9;
    pub const ENCRYPT: u8 = 10;
    pub const NACK: u8 = 11;
    pub const HAS_CRC: u8 = 12;
    pub const ERR: u8 = 13;
}

/// Node states as memberlist numbers them.
pub mod node_state {
    pub const ALIVE: u8 = 0;
    pub const SUSPECT: u8 = 1;
    pub const DEAD: u8 = 2;
    pub const LEFT: u8 = 3;
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ping {
    pub seq_no: u32,
    /// Name of the node the ping is meant for (may be empty).
    pub node: String,
    pub source_addr: Vec<u8>,
    pub source_port: u16,
    pub source_node: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndirectPing {
    pub seq_no: u32,
    pub target: Vec<u8>,
    pub port: u16,
    pub node: String,
    pub nack: bool,
    pub source_addr: Vec<u8>,
    pub source_port: u16,
    pub source_node: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ack {
    pub seq_no: u32,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nack {
    pub seq_no: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Suspect {
    pub incarnation: u32,
    pub node: String,
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Alive {
    pub incarnation: u32,
    pub node: String,
    pub addr: Vec<u8>,
    pub port: u16,
    pub meta: Vec<u8>,
    /// [pmin, pmax, pcur, dmin, dmax, dcur]
    pub vsn: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dead {
    pub incarnation: u32,
    pub node: String,
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushNodeState {
    pub name: String,
    pub addr: Vec<u8>,
    pub port: u16,
    pub meta: Vec<u8>,
    pub incarnation: u32,
    pub state: u8,
    pub vsn: Vec<u8>,
}

/// A whole push/pull exchange: header {Nodes, UserStateLen, Join}, the node
/// states, then the delegate's raw user state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushPull {
    pub join: bool,
    pub nodes: Vec<PushNodeState>,
    pub user_state: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Ping(Ping),
    IndirectPing(IndirectPing),
    Ack(Ack),
    Nack(Nack),
    Suspect(Suspect),
    Alive(Alive),
    Dead(Dead),
    PushPull(PushPull),
    /// A delegate (user) message: raw bytes.
    User(Vec<u8>),
    Err(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The input ended before the message did.
    Truncated,
    /// Bytes that are not a message of this format; says what was wrong.
    Malformed(String),
    UnknownType(u8),
    BadCrc,
    /// Encrypted data that no key opens, or encryption missing/unexpected.
    Crypto(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => write!(f, "message truncated"),
            WireError::Malformed(m) => write!(f, "malformed message: {m}"),
            WireError::UnknownType(t) => write!(f, "unknown message type {t}"),
            WireError::BadCrc => write!(f, "CRC mismatch"),
            WireError::Crypto(m) => write!(f, "encryption: {m}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Encodes one message: its type byte then its msgpack body (or raw bytes for
/// `User`). `PushPull` is a stream message; over UDP it is never sent.
pub fn encode_message(msg: &Message) -> Vec<u8> {
    let _ = msg;
    todo!("wire helper")
}

/// Decodes one message (type byte + body) that is not compound, compressed or
/// CRC-wrapped.
pub fn decode_message(buf: &[u8]) -> Result<Message, WireError> {
    let _ = buf;
    todo!("wire helper")
}

/// Builds a compound packet (type 7, count byte, big-endian u16 lengths, the
/// parts). At most 255 parts; callers split longer lists.
pub fn make_compound(parts: &[Vec<u8>]) -> Vec<u8> {
    let _ = parts;
    todo!("wire helper")
}

/// Options for the outer layers of a UDP packet.
#[derive(Debug, Clone, Copy, Default)]
pub struct PacketOpts {
    /// Prefix byte 12 + CRC32-IEEE (receiver's pmax >= 5).
    pub crc: bool,
    /// LZW-compress when that makes the packet smaller.
    pub compress: bool,
}

/// Wraps an already-encoded message or compound in compression and CRC (the
/// caller encrypts the result if it must).
pub fn wrap_packet(payload: Vec<u8>, opts: PacketOpts) -> Vec<u8> {
    let _ = (payload, opts);
    todo!("wire helper")
}

/// Unwraps a received UDP packet (already decrypted): CRC, compression and
/// compound layers, recursively. Parts that fail to decode are skipped and
/// counted in the second value.
pub fn decode_packet(buf: &[u8]) -> Result<(Vec<Message>, usize), WireError> {
    let _ = buf;
    todo!("wire helper")
}

/// Encodes a message for a TCP stream: `PushPull`, `User` (byte 8,
/// {UserMsgLen}, raw), `Ping`/`Ack` and `Err`; compressed when asked (before
/// encryption, which the caller applies with `crypto::encrypt_stream`).
pub fn encode_stream(msg: &Message, compress: bool) -> Vec<u8> {
    let _ = (msg, compress);
    todo!("wire helper")
}

/// Decodes one message from the start of a TCP stream buffer (already
/// decrypted). `Ok(None)` means more bytes are needed; `Ok(Some((msg, n)))`
/// means the first `n` bytes held `msg`.
pub fn decode_stream(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
    let _ = buf;
    todo!("wire helper")
}
