//! memberlist 0.2.2 wire format: message structs (msgpack maps keyed by Go
//! field names, go-msgpack's "raw" strings), compound packets, the CRC and
//! compression layers, and TCP stream framing. Encryption lives in `crypto`.

use std::borrow::Cow;
use std::fmt;

use super::lzw;
use super::msgpack::{self, Reader};

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

/// [`PushNodeState`] borrowing its fields from the bytes it was read from. A
/// push/pull lists every member of the cluster and a receiver usually knows
/// them all already: reading one this way allocates nothing per member, so
/// that the entries that change nothing cost no more than a lookup. The name
/// is borrowed too unless it is not UTF-8 (then it is repaired into an owned
/// string, U+FFFD for the bad bytes, as [`PushNodeState`] gets it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushNodeStateRef<'a> {
    pub name: Cow<'a, str>,
    pub addr: &'a [u8],
    pub port: u16,
    pub meta: &'a [u8],
    pub incarnation: u32,
    pub state: u8,
    pub vsn: &'a [u8],
}

impl PushNodeStateRef<'_> {
    pub fn into_owned(self) -> PushNodeState {
        PushNodeState {
            name: self.name.into_owned(),
            addr: self.addr.to_vec(),
            port: self.port,
            meta: self.meta.to_vec(),
            incarnation: self.incarnation,
            state: self.state,
            vsn: self.vsn.to_vec(),
        }
    }
}

impl PushNodeState {
    pub fn as_ref(&self) -> PushNodeStateRef<'_> {
        PushNodeStateRef {
            name: Cow::Borrowed(&self.name),
            addr: &self.addr,
            port: self.port,
            meta: &self.meta,
            incarnation: self.incarnation,
            state: self.state,
            vsn: &self.vsn,
        }
    }
}

/// [`PushPull`] borrowing from the bytes it was read from (one allocation: the
/// list of node states).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushPullRef<'a> {
    pub join: bool,
    pub nodes: Vec<PushNodeStateRef<'a>>,
    pub user_state: &'a [u8],
}

impl PushPullRef<'_> {
    pub fn into_owned(self) -> PushPull {
        PushPull {
            join: self.join,
            nodes: self
                .nodes
                .into_iter()
                .map(PushNodeStateRef::into_owned)
                .collect(),
            user_state: self.user_state.to_vec(),
        }
    }
}

/// A stream message from [`decode_stream_ref`]: a push/pull borrowed, any
/// other message (small) owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage<'a> {
    PushPull(PushPullRef<'a>),
    Other(Message),
}

impl StreamMessage<'_> {
    pub fn into_owned(self) -> Message {
        match self {
            StreamMessage::PushPull(pp) => Message::PushPull(pp.into_owned()),
            StreamMessage::Other(m) => m,
        }
    }
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

/// Largest output accepted from one LZW-compressed UDP packet.
pub const MAX_PACKET_DECOMPRESSED: usize = 4 << 20;
/// Largest output accepted from one LZW-compressed TCP stream message.
pub const MAX_STREAM_DECOMPRESSED: usize = 64 << 20;
/// memberlist's `maxPushStateBytes`: the largest encrypted stream message it
/// reads. `decode_stream` also refuses push/pull and user headers announcing
/// more than this, rather than waiting for the bytes forever.
pub const MAX_PUSH_STATE_BYTES: usize = 20 << 20;
/// The most parts a compound may have for a Go receiver: memberlist 0.2.2's
/// `decodeCompoundMessage` computes `numParts*2` in uint8, so it misreads
/// compounds of 128 parts or more. See `make_compounds`.
pub const MAX_COMPOUND_PARTS: usize = 127;
/// How deep compound/compress layers may nest inside a packet.
const MAX_NESTING: usize = 8;

/// `compress.Algo` for LZW, the only algorithm memberlist knows.
const LZW_ALGO: u64 = 0;

/// One field value for `write_struct`; `None` in the field list = omitted
/// (a Go `omitempty` field holding its zero value).
enum F<'a> {
    Uint(u64),
    Int(i64),
    Bool(bool),
    Str(&'a str),
    /// A Go `[]byte`; empty is written as Go's nil slice.
    Bytes(&'a [u8]),
}

/// Writes a Go struct the way go-msgpack does: a map of the present fields,
/// keys sorted by name (`fields` may be given in declaration order).
fn write_struct(out: &mut Vec<u8>, fields: &[(&str, Option<F<'_>>)]) {
    let mut present: Vec<(&str, &F<'_>)> = fields
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v)))
        .collect();
    present.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    msgpack::write_map_len(out, present.len());
    for (k, v) in present {
        msgpack::write_str(out, k);
        match v {
            F::Uint(u) => msgpack::write_uint(out, *u),
            F::Int(i) => msgpack::write_int(out, *i),
            F::Bool(b) => msgpack::write_bool(out, *b),
            F::Str(s) => msgpack::write_str(out, s),
            F::Bytes(b) => msgpack::write_bytes_field(out, b),
        }
    }
}

/// `omitempty` helpers.
fn omit_bytes(b: &[u8]) -> Option<F<'_>> {
    (!b.is_empty()).then_some(F::Bytes(b))
}
fn omit_str(s: &str) -> Option<F<'_>> {
    (!s.is_empty()).then_some(F::Str(s))
}
fn omit_uint(u: u64) -> Option<F<'static>> {
    (u != 0).then_some(F::Uint(u))
}

// Go field names in declaration order (net.go); the order matters only for
// structs sent as msgpack arrays, which the reader accepts.
const PING_FIELDS: [&str; 5] = ["SeqNo", "Node", "SourceAddr", "SourcePort", "SourceNode"];
const INDIRECT_FIELDS: [&str; 8] = [
    "SeqNo",
    "Target",
    "Port",
    "Node",
    "Nack",
    "SourceAddr",
    "SourcePort",
    "SourceNode",
];
const ACK_FIELDS: [&str; 2] = ["SeqNo", "Payload"];
const NACK_FIELDS: [&str; 1] = ["SeqNo"];
const ERR_FIELDS: [&str; 1] = ["Error"];
const SUSPECT_FIELDS: [&str; 3] = ["Incarnation", "Node", "From"];
const ALIVE_FIELDS: [&str; 6] = ["Incarnation", "Node", "Addr", "Port", "Meta", "Vsn"];
const PUSH_PULL_HEADER_FIELDS: [&str; 3] = ["Nodes", "UserStateLen", "Join"];
const USER_MSG_HEADER_FIELDS: [&str; 1] = ["UserMsgLen"];
const PUSH_NODE_STATE_FIELDS: [&str; 7] = [
    "Name",
    "Addr",
    "Port",
    "Meta",
    "Incarnation",
    "State",
    "Vsn",
];
const COMPRESS_FIELDS: [&str; 2] = ["Algo", "Buf"];

/// One push/pull node state as `write_struct` writes it (all seven fields,
/// keys in byte order), without its per-call list and sort: a push/pull has
/// one per member, thousands in a large cluster.
fn encode_push_node_state(out: &mut Vec<u8>, n: &PushNodeStateRef<'_>) {
    msgpack::write_map_len(out, 7);
    msgpack::write_str(out, "Addr");
    msgpack::write_bytes_field(out, n.addr);
    msgpack::write_str(out, "Incarnation");
    msgpack::write_uint(out, n.incarnation.into());
    msgpack::write_str(out, "Meta");
    msgpack::write_bytes_field(out, n.meta);
    msgpack::write_str(out, "Name");
    msgpack::write_str(out, &n.name);
    msgpack::write_str(out, "Port");
    msgpack::write_uint(out, n.port.into());
    // NodeStateType is a Go int
    msgpack::write_str(out, "State");
    msgpack::write_int(out, n.state.into());
    msgpack::write_str(out, "Vsn");
    msgpack::write_bytes_field(out, n.vsn);
}

fn write_push_pull_header(out: &mut Vec<u8>, nodes: usize, user_state: usize, join: bool) {
    out.push(msg_type::PUSH_PULL);
    write_struct(
        out,
        &[
            ("Nodes", Some(F::Int(nodes as i64))),
            ("UserStateLen", Some(F::Int(user_state as i64))),
            ("Join", Some(F::Bool(join))),
        ],
    );
}

/// [`encode_stream`] of a [`Message::PushPull`] without compression (the
/// same bytes), its node states given as views: a member list is encoded from
/// its records without an owned copy of each. The caller compresses.
pub fn encode_push_pull_stream<'a>(
    join: bool,
    nodes: impl ExactSizeIterator<Item = PushNodeStateRef<'a>>,
    user_state: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + nodes.len() * 96 + user_state.len());
    write_push_pull_header(&mut out, nodes.len(), user_state.len(), join);
    for n in nodes {
        encode_push_node_state(&mut out, &n);
    }
    out.extend_from_slice(user_state);
    out
}

/// Writes `msg`'s type byte and body into `out`. `PushPull` and `User` get
/// their stream form when `stream` is set, else their packet form.
fn encode_into(out: &mut Vec<u8>, msg: &Message, stream: bool) {
    match msg {
        Message::Ping(p) => {
            out.push(msg_type::PING);
            write_struct(
                out,
                &[
                    ("SeqNo", Some(F::Uint(p.seq_no.into()))),
                    ("Node", Some(F::Str(&p.node))),
                    ("SourceAddr", omit_bytes(&p.source_addr)),
                    ("SourcePort", omit_uint(p.source_port.into())),
                    ("SourceNode", omit_str(&p.source_node)),
                ],
            );
        }
        Message::IndirectPing(p) => {
            out.push(msg_type::INDIRECT_PING);
            write_struct(
                out,
                &[
                    ("SeqNo", Some(F::Uint(p.seq_no.into()))),
                    ("Target", Some(F::Bytes(&p.target))),
                    ("Port", Some(F::Uint(p.port.into()))),
                    ("Node", Some(F::Str(&p.node))),
                    ("Nack", Some(F::Bool(p.nack))),
                    ("SourceAddr", omit_bytes(&p.source_addr)),
                    ("SourcePort", omit_uint(p.source_port.into())),
                    ("SourceNode", omit_str(&p.source_node)),
                ],
            );
        }
        Message::Ack(a) => {
            out.push(msg_type::ACK);
            write_struct(
                out,
                &[
                    ("SeqNo", Some(F::Uint(a.seq_no.into()))),
                    ("Payload", Some(F::Bytes(&a.payload))),
                ],
            );
        }
        Message::Nack(n) => {
            out.push(msg_type::NACK);
            write_struct(out, &[("SeqNo", Some(F::Uint(n.seq_no.into())))]);
        }
        Message::Err(e) => {
            out.push(msg_type::ERR);
            write_struct(out, &[("Error", Some(F::Str(e)))]);
        }
        Message::Suspect(s) => {
            out.push(msg_type::SUSPECT);
            write_struct(
                out,
                &[
                    ("Incarnation", Some(F::Uint(s.incarnation.into()))),
                    ("Node", Some(F::Str(&s.node))),
                    ("From", Some(F::Str(&s.from))),
                ],
            );
        }
        Message::Dead(d) => {
            out.push(msg_type::DEAD);
            write_struct(
                out,
                &[
                    ("Incarnation", Some(F::Uint(d.incarnation.into()))),
                    ("Node", Some(F::Str(&d.node))),
                    ("From", Some(F::Str(&d.from))),
                ],
            );
        }
        Message::Alive(a) => {
            out.push(msg_type::ALIVE);
            write_struct(
                out,
                &[
                    ("Incarnation", Some(F::Uint(a.incarnation.into()))),
                    ("Node", Some(F::Str(&a.node))),
                    ("Addr", Some(F::Bytes(&a.addr))),
                    ("Port", Some(F::Uint(a.port.into()))),
                    ("Meta", Some(F::Bytes(&a.meta))),
                    ("Vsn", Some(F::Bytes(&a.vsn))),
                ],
            );
        }
        Message::PushPull(pp) => {
            write_push_pull_header(out, pp.nodes.len(), pp.user_state.len(), pp.join);
            for n in &pp.nodes {
                encode_push_node_state(out, &n.as_ref());
            }
            out.extend_from_slice(&pp.user_state);
        }
        Message::User(b) => {
            out.push(msg_type::USER);
            if stream {
                write_struct(out, &[("UserMsgLen", Some(F::Int(b.len() as i64)))]);
            }
            out.extend_from_slice(b);
        }
    }
}

/// Encodes one message: its type byte then its msgpack body (or raw bytes for
/// `User`). `PushPull` is a stream message; over UDP it is never sent.
///
/// The bytes are what memberlist 0.2.2 writes for the same values, with one
/// unavoidable difference: Go distinguishes nil and empty byte slices, Rust
/// does not, so an empty byte field is always written as nil (0xc0), Go's
/// usual value (e.g. `ackResp{SeqNo, nil}`); Go reads both the same.
/// Remember that a Go receiver indexes `Vsn[0..6]` of alive and push/pull
/// node states: always send six bytes there.
pub fn encode_message(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(&mut out, msg, false);
    out
}

fn read_push_node_state<'a>(r: &mut Reader<'a>) -> Result<PushNodeStateRef<'a>, WireError> {
    let mut n = PushNodeStateRef::default();
    r.read_struct(&PUSH_NODE_STATE_FIELDS, |i, r| {
        match i {
            // What `Reader::read_string` makes of the bytes, borrowed when it can be.
            0 => n.name = String::from_utf8_lossy(r.read_bytes()?),
            1 => n.addr = r.read_bytes()?,
            2 => n.port = r.read_u16()?,
            3 => n.meta = r.read_bytes()?,
            4 => n.incarnation = r.read_u32()?,
            5 => {
                let s = r.read_i64()?;
                n.state = u8::try_from(s).map_err(|_| {
                    WireError::Malformed(format!("pushNodeState: State {s} out of range"))
                })?;
            }
            _ => n.vsn = r.read_bytes()?,
        }
        Ok(())
    })?;
    Ok(n)
}

/// A non-negative Go `int` length that we are willing to wait for.
fn read_len(r: &mut Reader<'_>, what: &str) -> Result<usize, WireError> {
    let v = r.read_i64()?;
    match usize::try_from(v) {
        Ok(n) if n <= MAX_PUSH_STATE_BYTES => Ok(n),
        _ => Err(WireError::Malformed(format!("{what} {v} out of range"))),
    }
}

/// Decodes the body of a push/pull stream message (after its type byte).
fn read_push_pull<'a>(r: &mut Reader<'a>) -> Result<PushPullRef<'a>, WireError> {
    let (mut nodes, mut user_len, mut join) = (0usize, 0usize, false);
    r.read_struct(&PUSH_PULL_HEADER_FIELDS, |i, r| {
        match i {
            0 => nodes = read_len(r, "pushPullHeader.Nodes")?,
            1 => user_len = read_len(r, "pushPullHeader.UserStateLen")?,
            _ => join = r.read_bool()?,
        }
        Ok(())
    })?;
    // No allocation from the announced count: every state takes >= 1 byte.
    let mut states = Vec::with_capacity(nodes.min(r.rest().len()));
    for _ in 0..nodes {
        states.push(read_push_node_state(r)?);
    }
    let user_state = r.read_raw(user_len)?;
    Ok(PushPullRef {
        join,
        nodes: states,
        user_state,
    })
}

/// Decodes the body of a stream user message (after its type byte).
fn read_stream_user(r: &mut Reader<'_>) -> Result<Vec<u8>, WireError> {
    let mut len = 0usize;
    r.read_struct(&USER_MSG_HEADER_FIELDS, |_, r| {
        len = read_len(r, "userMsgHeader.UserMsgLen")?;
        Ok(())
    })?;
    Ok(r.read_raw(len)?.to_vec())
}

/// Decodes a message body of type `t` from `r` (positioned after the type
/// byte). `User` takes the rest of the buffer unless `stream` is set.
fn read_body(t: u8, r: &mut Reader<'_>, stream: bool) -> Result<Message, WireError> {
    Ok(match t {
        msg_type::PING => {
            let mut p = Ping::default();
            r.read_struct(&PING_FIELDS, |i, r| {
                match i {
                    0 => p.seq_no = r.read_u32()?,
                    1 => p.node = r.read_string()?,
                    2 => p.source_addr = r.read_bytes()?.to_vec(),
                    3 => p.source_port = r.read_u16()?,
                    _ => p.source_node = r.read_string()?,
                }
                Ok(())
            })?;
            Message::Ping(p)
        }
        msg_type::INDIRECT_PING => {
            let mut p = IndirectPing::default();
            r.read_struct(&INDIRECT_FIELDS, |i, r| {
                match i {
                    0 => p.seq_no = r.read_u32()?,
                    1 => p.target = r.read_bytes()?.to_vec(),
                    2 => p.port = r.read_u16()?,
                    3 => p.node = r.read_string()?,
                    4 => p.nack = r.read_bool()?,
                    5 => p.source_addr = r.read_bytes()?.to_vec(),
                    6 => p.source_port = r.read_u16()?,
                    _ => p.source_node = r.read_string()?,
                }
                Ok(())
            })?;
            Message::IndirectPing(p)
        }
        msg_type::ACK => {
            let mut a = Ack::default();
            r.read_struct(&ACK_FIELDS, |i, r| {
                match i {
                    0 => a.seq_no = r.read_u32()?,
                    _ => a.payload = r.read_bytes()?.to_vec(),
                }
                Ok(())
            })?;
            Message::Ack(a)
        }
        msg_type::NACK => {
            let mut n = Nack::default();
            r.read_struct(&NACK_FIELDS, |_, r| {
                n.seq_no = r.read_u32()?;
                Ok(())
            })?;
            Message::Nack(n)
        }
        msg_type::ERR => {
            let mut e = String::new();
            r.read_struct(&ERR_FIELDS, |_, r| {
                e = r.read_string()?;
                Ok(())
            })?;
            Message::Err(e)
        }
        msg_type::SUSPECT | msg_type::DEAD => {
            let (mut inc, mut node, mut from) = (0, String::new(), String::new());
            r.read_struct(&SUSPECT_FIELDS, |i, r| {
                match i {
                    0 => inc = r.read_u32()?,
                    1 => node = r.read_string()?,
                    _ => from = r.read_string()?,
                }
                Ok(())
            })?;
            if t == msg_type::SUSPECT {
                Message::Suspect(Suspect {
                    incarnation: inc,
                    node,
                    from,
                })
            } else {
                Message::Dead(Dead {
                    incarnation: inc,
                    node,
                    from,
                })
            }
        }
        msg_type::ALIVE => {
            let mut a = Alive::default();
            r.read_struct(&ALIVE_FIELDS, |i, r| {
                match i {
                    0 => a.incarnation = r.read_u32()?,
                    1 => a.node = r.read_string()?,
                    2 => a.addr = r.read_bytes()?.to_vec(),
                    3 => a.port = r.read_u16()?,
                    4 => a.meta = r.read_bytes()?.to_vec(),
                    _ => a.vsn = r.read_bytes()?.to_vec(),
                }
                Ok(())
            })?;
            Message::Alive(a)
        }
        msg_type::PUSH_PULL => Message::PushPull(read_push_pull(r)?.into_owned()),
        msg_type::USER if stream => Message::User(read_stream_user(r)?),
        msg_type::USER => {
            let n = r.rest().len();
            Message::User(r.read_raw(n)?.to_vec())
        }
        msg_type::COMPOUND | msg_type::COMPRESS | msg_type::HAS_CRC => {
            return Err(WireError::Malformed(format!(
                "message type {t} is a packet layer, not a message"
            )))
        }
        msg_type::ENCRYPT => {
            return Err(WireError::Crypto(
                "encrypted message: decrypt it first".into(),
            ))
        }
        _ => return Err(WireError::UnknownType(t)),
    })
}

/// Decodes one message (type byte + body) that is not compound, compressed or
/// CRC-wrapped.
///
/// `User` takes all bytes after the type byte (the packet form); `PushPull`
/// is read in its stream form and must be complete. Bytes after a msgpack
/// body are ignored, as Go does.
pub fn decode_message(buf: &[u8]) -> Result<Message, WireError> {
    let (&t, body) = buf.split_first().ok_or(WireError::Truncated)?;
    read_body(t, &mut Reader::new(body), false)
}

/// Builds a compound packet (type 7, count byte, big-endian u16 lengths, the
/// parts). At most 255 parts; callers split longer lists.
///
/// Parts after the 255th, and parts of 64 KiB or more (which no UDP packet
/// can carry), are left out. A Go receiver misreads compounds of more than
/// `MAX_COMPOUND_PARTS` (127) parts; `make_compounds` splits for it.
pub fn make_compound(parts: &[Vec<u8>]) -> Vec<u8> {
    let parts: Vec<&Vec<u8>> = parts
        .iter()
        .filter(|p| p.len() <= usize::from(u16::MAX))
        .take(255)
        .collect();
    let mut out =
        Vec::with_capacity(2 + 2 * parts.len() + parts.iter().map(|p| p.len()).sum::<usize>());
    out.push(msg_type::COMPOUND);
    out.push(parts.len() as u8);
    for p in &parts {
        out.extend_from_slice(&(p.len() as u16).to_be_bytes());
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// Splits `parts` into compounds of at most `MAX_COMPOUND_PARTS` parts each,
/// which every memberlist 0.2.2 receiver reads correctly. A single part is
/// returned as-is (no compound wrapper), as memberlist sends it.
pub fn make_compounds(parts: &[Vec<u8>]) -> Vec<Vec<u8>> {
    if parts.len() == 1 {
        return vec![parts[0].clone()];
    }
    parts
        .chunks(MAX_COMPOUND_PARTS)
        .map(make_compound)
        .collect()
}

/// Options for the outer layers of a UDP packet.
#[derive(Debug, Clone, Copy, Default)]
pub struct PacketOpts {
    /// Prefix byte 12 + CRC32-IEEE (receiver's pmax >= 5).
    pub crc: bool,
    /// LZW-compress when that makes the packet smaller.
    pub compress: bool,
}

/// `compress{Algo: 0, Buf: lzw(payload)}` with its type byte 9.
pub fn encode_compressed(payload: &[u8]) -> Vec<u8> {
    compress_message(&lzw::compress(payload))
}

/// [`encode_compressed`] through [`lzw::compress_resuming`]: the same bytes,
/// sooner when `payload` starts as the last one compressed with `memo` did.
pub fn encode_compressed_resuming(payload: &[u8], memo: &mut lzw::Resume) -> Vec<u8> {
    compress_message(&lzw::compress_resuming(payload, memo))
}

/// A compress message around LZW bytes.
fn compress_message(buf: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(buf.len() + 16);
    out.push(msg_type::COMPRESS);
    write_struct(
        &mut out,
        &[
            ("Algo", Some(F::Uint(LZW_ALGO))),
            ("Buf", Some(F::Bytes(buf))),
        ],
    );
    out
}

/// Reads a compress{} body and returns the decompressed bytes (at most
/// `limit`) and the number of body bytes consumed.
fn read_compressed(body: &[u8], limit: usize) -> Result<(Vec<u8>, usize), WireError> {
    read_compressed_with(body, limit, lzw::decompress)
}

/// [`read_compressed`] with the given LZW decoder (packets go through the
/// memo of recent decompressions: one gossip packet reaches several peers).
fn read_compressed_with(
    body: &[u8],
    limit: usize,
    decode: fn(&[u8], usize) -> Result<Vec<u8>, WireError>,
) -> Result<(Vec<u8>, usize), WireError> {
    let mut r = Reader::new(body);
    let (mut algo, mut buf): (u64, &[u8]) = (LZW_ALGO, &[]);
    r.read_struct(&COMPRESS_FIELDS, |i, r| {
        match i {
            0 => algo = r.read_uint(u64::from(u8::MAX))?,
            _ => buf = r.read_bytes()?,
        }
        Ok(())
    })?;
    let used = r.position();
    if algo != LZW_ALGO {
        return Err(WireError::Malformed(format!(
            "cannot decompress unknown algorithm {algo}"
        )));
    }
    // An empty Buf (Go: nil) is not an LZW stream; Go fails on it too.
    Ok((decode(buf, limit)?, used))
}

/// Wraps an already-encoded message or compound in compression and CRC (the
/// caller encrypts the result if it must).
pub fn wrap_packet(payload: Vec<u8>, opts: PacketOpts) -> Vec<u8> {
    let mut msg = payload;
    if opts.compress {
        let c = encode_compressed(&msg);
        if c.len() < msg.len() {
            msg = c;
        }
    }
    if opts.crc {
        let crc = crc32fast::hash(&msg);
        let mut out = Vec::with_capacity(msg.len() + 5);
        out.push(msg_type::HAS_CRC);
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&msg);
        msg = out;
    }
    msg
}

/// What memberlist's `handleCommand` does with one (decrypted, CRC-checked)
/// command: compounds and compressed messages recurse, anything else is one
/// message. Failing compound parts are counted in `skipped`; a failure of
/// `buf` itself is returned.
fn decode_command(
    buf: &[u8],
    depth: usize,
    out: &mut Vec<Message>,
    skipped: &mut usize,
) -> Result<(), WireError> {
    let (&t, body) = buf.split_first().ok_or(WireError::Truncated)?;
    match t {
        msg_type::COMPOUND | msg_type::COMPRESS if depth >= MAX_NESTING => Err(
            WireError::Malformed("packet layers nested too deeply".into()),
        ),
        msg_type::COMPOUND => {
            let (parts, truncated) = split_compound(body)?;
            *skipped += truncated;
            for p in parts {
                if decode_command(p, depth + 1, out, skipped).is_err() {
                    *skipped += 1;
                }
            }
            Ok(())
        }
        msg_type::COMPRESS => {
            let (inner, _) =
                read_compressed_with(body, MAX_PACKET_DECOMPRESSED, lzw::decompress_memo)?;
            decode_command(&inner, depth + 1, out, skipped)
        }
        // memberlist accepts a CRC only on the outermost layer
        msg_type::HAS_CRC => Err(WireError::Malformed("CRC header inside a packet".into())),
        _ => {
            out.push(read_body(t, &mut Reader::new(body), false)?);
            Ok(())
        }
    }
}

/// Splits a compound body (after the type byte) into its complete parts and
/// the number of parts cut off by the end of the buffer.
fn split_compound(body: &[u8]) -> Result<(Vec<&[u8]>, usize), WireError> {
    let (&n, rest) = body.split_first().ok_or(WireError::Truncated)?;
    let n = usize::from(n);
    let lens = rest.get(..2 * n).ok_or(WireError::Truncated)?;
    let mut data = rest.get(2 * n..).unwrap_or(&[]);
    let mut parts = Vec::with_capacity(n);
    for (i, l) in lens.chunks_exact(2).enumerate() {
        let len = usize::from(u16::from_be_bytes([l[0], l[1]]));
        if data.len() < len {
            return Ok((parts, n - i));
        }
        let (part, tail) = data.split_at(len);
        parts.push(part);
        data = tail;
    }
    Ok((parts, 0))
}

/// Unwraps a received UDP packet (already decrypted): CRC, compression and
/// compound layers, recursively. Parts that fail to decode are skipped and
/// counted in the second value.
///
/// As in memberlist: the CRC layer is accepted only outermost (a packet of
/// 5+ bytes starting with 12); a compound cut short still yields its complete
/// parts, the missing ones being counted as skipped; compressed output is
/// capped at `MAX_PACKET_DECOMPRESSED`. A packet that is itself one message,
/// or whose compound header or compression layer is broken, is an error.
pub fn decode_packet(buf: &[u8]) -> Result<(Vec<Message>, usize), WireError> {
    let mut cmd = buf;
    if buf.first() == Some(&msg_type::HAS_CRC) {
        let hdr = buf.get(1..5).ok_or(WireError::Truncated)?;
        let rest = buf.get(5..).unwrap_or(&[]);
        let want = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        if crc32fast::hash(rest) != want {
            return Err(WireError::BadCrc);
        }
        cmd = rest;
    }
    let mut out = Vec::new();
    let mut skipped = 0;
    decode_command(cmd, 0, &mut out, &mut skipped)?;
    Ok((out, skipped))
}

/// Encodes a message for a TCP stream: `PushPull`, `User` (byte 8,
/// {UserMsgLen}, raw), `Ping`/`Ack` and `Err`; compressed when asked (before
/// encryption, which the caller applies with `crypto::encrypt_stream`).
///
/// Other message types are written as over UDP. When `compress` is set the
/// message is always compressed (memberlist's `rawSendMsgStream` does not
/// check whether that helps).
pub fn encode_stream(msg: &Message, compress: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(&mut out, msg, true);
    if compress {
        encode_compressed(&out)
    } else {
        out
    }
}

/// Decodes one message from the start of a TCP stream buffer (already
/// decrypted). `Ok(None)` means more bytes are needed; `Ok(Some((msg, n)))`
/// means the first `n` bytes held `msg`.
///
/// A compressed message (byte 9) must hold one complete stream message;
/// `n` then counts the compress{} wrapper. Push/pull and user headers
/// announcing more than `MAX_PUSH_STATE_BYTES` are refused rather than
/// waited for. Compound, CRC and nested compress/encrypt layers are errors,
/// as they are for memberlist.
pub fn decode_stream(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
    let mut scratch = Vec::new();
    Ok(decode_stream_ref(buf, &mut scratch)?.map(|(m, n)| (m.into_owned(), n)))
}

/// [`decode_stream`] reading a push/pull without copying it: its node states
/// borrow from `buf`, or from `scratch` when the message came compressed (the
/// decompressed bytes are put there). Accepts, refuses and consumes exactly
/// what [`decode_stream`] does.
pub fn decode_stream_ref<'a>(
    buf: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<Option<(StreamMessage<'a>, usize)>, WireError> {
    decode_stream_inflated(buf, None, scratch)
}

/// The decompressed message of a stream buffer that is one complete, valid
/// compressed message; `None` for anything else (plain, cut short, corrupt).
pub fn inflate_stream(buf: &[u8]) -> Option<Vec<u8>> {
    let (&t, body) = buf.split_first()?;
    if t != msg_type::COMPRESS {
        return None;
    }
    Reader::new(body).skip().ok()?;
    read_compressed(body, MAX_STREAM_DECOMPRESSED).ok().map(|(inner, _)| inner)
}

/// [`decode_stream_ref`] given `inflate_stream(buf)` (`inflated`, when the
/// caller has it: the sender's plain bytes in a simulation), which it then
/// does not decompress again. Anything else as `inflated` is a caller's bug.
pub fn decode_stream_inflated<'a>(
    buf: &'a [u8],
    inflated: Option<&'a [u8]>,
    scratch: &'a mut Vec<u8>,
) -> Result<Option<(StreamMessage<'a>, usize)>, WireError> {
    let Some((&t, body)) = buf.split_first() else {
        return Ok(None);
    };
    if t == msg_type::COMPRESS {
        // Wait for the whole compress{} map; the LZW data inside it is then
        // complete, so anything wrong with it is an error.
        let mut r = Reader::new(body);
        match r.skip() {
            Err(WireError::Truncated) => return Ok(None),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let (inner, used): (&'a [u8], usize) = match inflated {
            // The map skipped is the compress{} struct read_compressed reads.
            Some(inner) => (inner, r.position()),
            None => {
                let (inner, used) = read_compressed(body, MAX_STREAM_DECOMPRESSED)?;
                *scratch = inner;
                (scratch, used)
            }
        };
        let (&it, ibody) = inner.split_first().ok_or(WireError::Truncated)?;
        if matches!(it, msg_type::COMPRESS | msg_type::ENCRYPT) {
            return Err(WireError::Malformed(format!(
                "message type {it} inside a compressed stream"
            )));
        }
        let msg = read_stream_body(it, &mut Reader::new(ibody))?;
        return Ok(Some((msg, 1 + used)));
    }
    let mut r = Reader::new(body);
    match read_stream_body(t, &mut r) {
        Ok(msg) => Ok(Some((msg, 1 + r.position()))),
        Err(WireError::Truncated) => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_stream_body<'a>(t: u8, r: &mut Reader<'a>) -> Result<StreamMessage<'a>, WireError> {
    match t {
        msg_type::COMPOUND | msg_type::HAS_CRC => Err(WireError::Malformed(format!(
            "message type {t} is not sent over streams"
        ))),
        msg_type::PUSH_PULL => Ok(StreamMessage::PushPull(read_push_pull(r)?)),
        _ => read_body(t, r, true).map(StreamMessage::Other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::crypto::{decrypt_packet, decrypt_stream, Keyring};
    use crate::wire::testutil::{hex, records, unhex};
    use proptest::prelude::*;

    const IP4: [u8; 4] = [127, 0, 0, 1];
    const IP6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const VSN: [u8; 6] = [1, 5, 2, 0, 0, 0];

    fn ping(seq_no: u32, node: &str) -> Message {
        Message::Ping(Ping {
            seq_no,
            node: node.into(),
            ..Default::default()
        })
    }

    fn ping_full() -> Message {
        Message::Ping(Ping {
            seq_no: 7,
            node: "node-a".into(),
            source_addr: IP4.to_vec(),
            source_port: 7946,
            source_node: "node-b".into(),
        })
    }

    fn alive(inc: u32, node: &str) -> Message {
        Message::Alive(Alive {
            incarnation: inc,
            node: node.into(),
            addr: IP4.to_vec(),
            port: 7946,
            meta: vec![],
            vsn: VSN.to_vec(),
        })
    }

    /// The values the Go program encoded for each `msg` record.
    fn golden_message(name: &str) -> Option<Message> {
        Some(match name {
            "ping_min" => ping(0, ""),
            "ping_127" => ping(127, "node-a"),
            "ping_128" => ping(128, "node-a"),
            "ping_255" => ping(255, "node-a"),
            "ping_256" => ping(256, "node-a"),
            "ping_65535" => ping(65535, "node-a"),
            "ping_65536" => ping(65536, "node-a"),
            "ping_max" => ping(u32::MAX, "node-a"),
            "ping_full" => ping_full(),
            "ping_srcport" => Message::Ping(Ping {
                seq_no: 7,
                node: "node-a".into(),
                source_port: 80,
                ..Default::default()
            }),
            "ping_long40" => ping(1, &"n".repeat(40)),
            "ping_long300" => ping(1, &"x".repeat(300)),
            "indirect_min" => Message::IndirectPing(IndirectPing::default()),
            "indirect_full" => Message::IndirectPing(IndirectPing {
                seq_no: 300,
                target: IP4.to_vec(),
                port: 7946,
                node: "node-c".into(),
                nack: true,
                source_addr: IP6.to_vec(),
                source_port: 65535,
                source_node: "node-a".into(),
            }),
            "ack_nil" => Message::Ack(Ack {
                seq_no: 1,
                payload: vec![],
            }),
            "ack_payload" => Message::Ack(Ack {
                seq_no: 99999,
                payload: b"hello".to_vec(),
            }),
            "nack" => Message::Nack(Nack { seq_no: 70000 }),
            "err" => Message::Err("boom".into()),
            "suspect" => Message::Suspect(Suspect {
                incarnation: 5,
                node: "n1".into(),
                from: "n2".into(),
            }),
            "alive" => alive(1, "node-1"),
            "alive_meta6" => Message::Alive(Alive {
                incarnation: 200,
                node: "node-2".into(),
                addr: IP6.to_vec(),
                port: 17946,
                meta: b"m".to_vec(),
                vsn: VSN.to_vec(),
            }),
            "dead" => Message::Dead(Dead {
                incarnation: 2,
                node: "node-1".into(),
                from: "node-1".into(),
            }),
            _ => return None,
        })
    }

    fn golden(kind: &str, name: &str) -> Vec<&'static str> {
        records(kind)
            .into_iter()
            .find(|f| f[1] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    #[test]
    fn messages_match_go() {
        let mut n = 0;
        for f in records("msg") {
            let Some(msg) = golden_message(f[1]) else {
                continue;
            };
            let want = unhex(f[2]);
            assert_eq!(hex(&encode_message(&msg)), f[2], "{}", f[1]);
            assert_eq!(decode_message(&want).unwrap(), msg, "{}", f[1]);
            assert_eq!(decode_packet(&want).unwrap(), (vec![msg], 0), "{}", f[1]);
            n += 1;
        }
        assert_eq!(n, 22);
    }

    #[test]
    fn long_string_is_raw32() {
        let f = golden("msghead", "ping_long70k");
        let enc = encode_message(&ping(1, &"y".repeat(70000)));
        assert_eq!(enc.len().to_string(), f[2]);
        assert_eq!(hex(&enc[..16]), f[3]);
        assert_eq!(hex(&enc[enc.len() - 16..]), f[4]);
        assert_eq!(decode_message(&enc).unwrap(), ping(1, &"y".repeat(70000)));
    }

    #[test]
    fn stream_headers_match_go() {
        // pushPullHeader{Nodes: 3, UserStateLen: 1000, Join: true} followed by
        // three copies of the golden pushNodeState and 1000 bytes
        let hdr = unhex(golden("msg", "pushpull_header")[2]);
        let node = unhex(golden("msg", "pushnodestate")[2]);
        let mut buf = hdr.clone();
        for _ in 0..3 {
            buf.extend_from_slice(&node[1..]);
        }
        buf.extend(std::iter::repeat_n(b'u', 1000));
        let st = PushNodeState {
            name: "a".into(),
            addr: IP4.to_vec(),
            port: 7946,
            meta: vec![],
            incarnation: 3,
            state: node_state::LEFT,
            vsn: VSN.to_vec(),
        };
        let want = Message::PushPull(PushPull {
            join: true,
            nodes: vec![st; 3],
            user_state: vec![b'u'; 1000],
        });
        assert_eq!(
            decode_stream(&buf).unwrap(),
            Some((want.clone(), buf.len()))
        );
        assert_eq!(encode_stream(&want, false), buf);
        assert_eq!(decode_stream(&buf[..buf.len() - 1]).unwrap(), None);
        // userMsgHeader{UserMsgLen: 70000}
        let mut buf = unhex(golden("msg", "usermsgheader")[2]);
        buf.extend(std::iter::repeat_n(7u8, 70000));
        let want = Message::User(vec![7; 70000]);
        assert_eq!(
            decode_stream(&buf).unwrap(),
            Some((want.clone(), buf.len()))
        );
        assert_eq!(encode_stream(&want, false), buf);
        // compress{} with a nil Buf: not an LZW stream, Go refuses it too
        let c = unhex(golden("msg", "compress_empty")[2]);
        assert!(decode_packet(&c).is_err());
    }

    #[test]
    fn compound_matches_go() {
        let parts = vec![
            encode_message(&ping_full()),
            encode_message(&alive(1, "node-1")),
            vec![msg_type::USER, b'h', b'i'],
        ];
        let want = unhex(records("compound")[0][1]);
        assert_eq!(make_compound(&parts), want);
        let msgs = vec![
            ping_full(),
            alive(1, "node-1"),
            Message::User(b"hi".to_vec()),
        ];
        assert_eq!(decode_packet(&want).unwrap(), (msgs.clone(), 0));
        // cut inside the last two parts: the complete ones survive
        let cut = &want[..want.len() - 10];
        assert_eq!(decode_packet(cut).unwrap(), (msgs[..1].to_vec(), 2));
        // cut inside the length table: an error
        assert_eq!(decode_packet(&want[..4]), Err(WireError::Truncated));
        // a broken part is skipped and counted
        let mut bad = parts.clone();
        bad[1] = vec![msg_type::ALIVE, 0xc1];
        assert_eq!(
            decode_packet(&make_compound(&bad)).unwrap(),
            (vec![msgs[0].clone(), msgs[2].clone()], 1)
        );
        bad[1] = vec![200];
        assert_eq!(decode_packet(&make_compound(&bad)).unwrap().1, 1);
    }

    #[test]
    fn make_compounds_splits_for_go() {
        let parts: Vec<Vec<u8>> = (0..300u32).map(|i| encode_message(&ping(i, ""))).collect();
        let packets = make_compounds(&parts);
        assert_eq!(packets.len(), 3);
        let mut all = Vec::new();
        for p in &packets {
            assert!(usize::from(p[1]) <= MAX_COMPOUND_PARTS);
            all.extend(decode_packet(p).unwrap().0);
        }
        assert_eq!(all, (0..300u32).map(|i| ping(i, "")).collect::<Vec<_>>());
        assert_eq!(make_compounds(&parts[..1]), vec![parts[0].clone()]);
        // make_compound itself caps at 255
        assert_eq!(make_compound(&parts)[1], 255);
        assert_eq!(decode_packet(&make_compound(&parts)).unwrap().0.len(), 255);
    }

    #[test]
    fn packets_match_go() {
        let mut n = 0;
        for f in records("packet") {
            let (crc, compress, key, payload, out) = (
                f[2] == "1",
                f[3] == "1",
                unhex(f[4]),
                unhex(f[5]),
                unhex(f[6]),
            );
            let plain = if key.is_empty() {
                out.clone()
            } else {
                decrypt_packet(&Keyring::new(&key, &[]).unwrap(), &out).unwrap()
            };
            assert_eq!(
                wrap_packet(payload.clone(), PacketOpts { crc, compress }),
                plain,
                "{}",
                f[1]
            );
            let want = decode_packet(&payload).unwrap();
            assert_eq!(decode_packet(&plain).unwrap(), want, "{}", f[1]);
            assert!(!want.0.is_empty());
            n += 1;
        }
        assert_eq!(n, 7);
        // compression is used when it helps (the big compound), not otherwise (a ping)
        let f = golden("packet", "compound_lzw");
        assert_eq!(unhex(f[6])[0], msg_type::COMPRESS);
        let f = golden("packet", "ping_plain");
        assert_eq!(unhex(f[6])[0], msg_type::PING);
    }

    #[test]
    fn bad_crc() {
        let mut p = wrap_packet(
            encode_message(&ping(5, "x")),
            PacketOpts {
                crc: true,
                compress: false,
            },
        );
        assert_eq!(decode_packet(&p).unwrap().0, vec![ping(5, "x")]);
        let last = p.len() - 1;
        p[last] ^= 0x40;
        assert_eq!(decode_packet(&p), Err(WireError::BadCrc));
        assert_eq!(decode_packet(&[12, 0, 0]), Err(WireError::Truncated));
        // a CRC header inside a compound is not accepted (memberlist neither)
        let inner = wrap_packet(
            encode_message(&ping(5, "x")),
            PacketOpts {
                crc: true,
                compress: false,
            },
        );
        assert_eq!(
            decode_packet(&make_compound(&[inner, encode_message(&ping(6, ""))])).unwrap(),
            (vec![ping(6, "")], 1)
        );
    }

    fn stream_message(name: &str) -> Message {
        let kind = name.split('_').next().unwrap();
        match kind {
            "pushpull" => Message::PushPull(PushPull {
                join: !name.contains("nostate"),
                nodes: vec![
                    PushNodeState {
                        name: "a".into(),
                        addr: IP4.to_vec(),
                        port: 7946,
                        meta: vec![],
                        incarnation: 1,
                        state: node_state::ALIVE,
                        vsn: VSN.to_vec(),
                    },
                    PushNodeState {
                        name: "node-b".into(),
                        addr: IP6.to_vec(),
                        port: 17946,
                        meta: b"meta".to_vec(),
                        incarnation: 300,
                        state: node_state::SUSPECT,
                        vsn: vec![1, 5, 2, 1, 2, 3],
                    },
                ],
                user_state: if name.contains("nostate") {
                    vec![]
                } else {
                    b"user-state-blob".to_vec()
                },
            }),
            "user" => Message::User(b"hello user".to_vec()),
            "ping" => ping(42, "node-b"),
            "ack" => Message::Ack(Ack {
                seq_no: 42,
                payload: vec![],
            }),
            "err" => {
                Message::Err("Remote state is encrypted and encryption is not configured".into())
            }
            _ => panic!("unknown stream record {name}"),
        }
    }

    #[test]
    fn streams_match_go() {
        let mut n = 0;
        for f in records("stream") {
            let (name, compress, key, out) = (f[1], f[2] == "1", unhex(f[3]), unhex(f[4]));
            let plain = if key.is_empty() {
                out.clone()
            } else {
                let k = Keyring::new(&key, &[]).unwrap();
                let (plain, used) = decrypt_stream(&k, &out).unwrap().unwrap();
                assert_eq!(used, out.len());
                plain
            };
            let msg = stream_message(name);
            assert_eq!(hex(&encode_stream(&msg, compress)), hex(&plain), "{name}");
            assert_eq!(
                decode_stream(&plain).unwrap(),
                Some((msg.clone(), plain.len())),
                "{name}"
            );
            // trailing bytes are left alone; every proper prefix asks for more
            let mut more = plain.clone();
            more.extend_from_slice(&[0x00, 0x82]);
            assert_eq!(
                decode_stream(&more).unwrap(),
                Some((msg, plain.len())),
                "{name}"
            );
            for cut in 0..plain.len() {
                assert_eq!(
                    decode_stream(&plain[..cut]).unwrap(),
                    None,
                    "{name} cut at {cut}"
                );
            }
            n += 1;
        }
        assert_eq!(n, 24);
    }

    #[test]
    fn lenient_decoding() {
        // unknown keys (with nested values) skipped; str8/bin/any int width accepted
        let mut b = vec![msg_type::ALIVE, 0x88];
        msgpack::write_str(&mut b, "Future");
        b.extend_from_slice(&[0x92, 0x81, 0xa1, b'k', 0xc3, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0]);
        msgpack::write_str(&mut b, "Node");
        b.extend_from_slice(&[0xd9, 6]);
        b.extend_from_slice(b"node-1");
        msgpack::write_str(&mut b, "Addr");
        b.extend_from_slice(&[0xc4, 4, 127, 0, 0, 1]);
        msgpack::write_str(&mut b, "Port");
        b.extend_from_slice(&[0xcf, 0, 0, 0, 0, 0, 0, 0x1f, 0x0a]);
        msgpack::write_str(&mut b, "Incarnation");
        b.extend_from_slice(&[0xd2, 0, 0, 0, 1]);
        msgpack::write_str(&mut b, "Meta");
        b.push(0xc0);
        msgpack::write_str(&mut b, "Vsn");
        b.extend_from_slice(&[0xc5, 0, 6, 1, 5, 2, 0, 0, 0]);
        msgpack::write_str(&mut b, "Extra");
        b.push(0xc0);
        assert_eq!(decode_message(&b).unwrap(), alive(1, "node-1"));
        // as an array in declaration order
        let mut b = vec![msg_type::DEAD, 0x93, 0x02];
        msgpack::write_str(&mut b, "n");
        msgpack::write_str(&mut b, "f");
        assert_eq!(
            decode_message(&b).unwrap(),
            Message::Dead(Dead {
                incarnation: 2,
                node: "n".into(),
                from: "f".into()
            })
        );
        // out of range values are errors, not truncations or panics
        let b = [
            msg_type::PING,
            0x81,
            0xa5,
            b'S',
            b'e',
            b'q',
            b'N',
            b'o',
            0xff,
        ];
        assert!(matches!(decode_message(&b), Err(WireError::Malformed(_))));
        assert!(matches!(decode_stream(&b), Err(WireError::Malformed(_))));
        assert_eq!(decode_message(&[42]), Err(WireError::UnknownType(42)));
        assert_eq!(decode_message(&[]), Err(WireError::Truncated));
        assert!(matches!(
            decode_message(&[msg_type::ENCRYPT, 1]),
            Err(WireError::Crypto(_))
        ));
        assert_eq!(decode_stream(&[]).unwrap(), None);
        assert!(decode_stream(&[msg_type::COMPOUND, 0]).is_err());
        // a push/pull header announcing absurd sizes is refused, not waited for
        let mut b = vec![msg_type::PUSH_PULL];
        write_struct(
            &mut b,
            &[
                ("Nodes", Some(F::Int(0))),
                ("UserStateLen", Some(F::Int(1 << 40))),
                ("Join", Some(F::Bool(false))),
            ],
        );
        assert!(matches!(decode_stream(&b), Err(WireError::Malformed(_))));
        let mut b = vec![msg_type::USER];
        write_struct(&mut b, &[("UserMsgLen", Some(F::Int(-1)))]);
        assert!(matches!(decode_stream(&b), Err(WireError::Malformed(_))));
    }

    #[test]
    fn nested_layers_are_bounded() {
        let mut p = encode_message(&ping(1, ""));
        for _ in 0..MAX_NESTING {
            p = encode_compressed(&p);
        }
        assert_eq!(decode_packet(&p).unwrap().0, vec![ping(1, "")]);
        let p = encode_compressed(&p);
        assert!(decode_packet(&p).is_err());
        let mut c = encode_message(&ping(1, ""));
        for _ in 0..1000 {
            c = make_compound(&[c]);
        }
        assert!(decode_packet(&c).is_ok());
        assert_eq!(decode_packet(&c).unwrap(), (vec![], 1));
    }

    fn kind(m: &Message) -> &'static str {
        match m {
            Message::Ping(_) => "Ping",
            Message::IndirectPing(_) => "IndirectPing",
            Message::Ack(_) => "Ack",
            Message::Nack(_) => "Nack",
            Message::Suspect(_) => "Suspect",
            Message::Alive(_) => "Alive",
            Message::Dead(_) => "Dead",
            Message::PushPull(_) => "PushPull",
            Message::User(_) => "User",
            Message::Err(_) => "Err",
        }
    }

    /// Real traffic between Go peers: every datagram and stream decodes
    /// without loss, and re-encoding what was decoded gives the same bytes,
    /// layer by layer (messages, compounds, LZW, CRC).
    #[test]
    fn captured_traffic_reencodes_byte_for_byte() {
        let key: Vec<u8> = (0u8..32).collect();
        let ring = Keyring::new(&key, &[]).unwrap();
        let capture = include_str!("testdata/memberlist-capture.txt");
        let (mut udp, mut tcp, mut kinds) = (0, 0, std::collections::BTreeSet::new());
        for line in capture.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split(' ').collect();
            let (enc, data) = (f[0] == "enc", unhex(f[4]));
            if f[1] == "udp" {
                let plain = if enc {
                    decrypt_packet(&ring, &data).unwrap()
                } else {
                    data
                };
                let crc = plain[0] == msg_type::HAS_CRC;
                let body = if crc { &plain[5..] } else { &plain[..] };
                let payload = if body[0] == msg_type::COMPRESS {
                    read_compressed(&body[1..], MAX_PACKET_DECOMPRESSED)
                        .unwrap()
                        .0
                } else {
                    body.to_vec()
                };
                let (msgs, skipped) = decode_packet(&plain).unwrap();
                assert_eq!(skipped, 0, "{line}");
                let again = if payload[0] == msg_type::COMPOUND {
                    make_compound(&msgs.iter().map(encode_message).collect::<Vec<_>>())
                } else {
                    assert_eq!(msgs.len(), 1);
                    encode_message(&msgs[0])
                };
                assert_eq!(hex(&again), hex(&payload), "{line}");
                // the peers compress when it helps, and add a CRC for pmax >= 5
                assert_eq!(
                    wrap_packet(
                        payload,
                        PacketOpts {
                            crc,
                            compress: true
                        }
                    ),
                    plain,
                    "{line}"
                );
                for m in &msgs {
                    kinds.insert(kind(m));
                }
                udp += 1;
            } else {
                let mut rest = &data[..];
                while !rest.is_empty() {
                    let (plain, used) = if enc {
                        decrypt_stream(&ring, rest).unwrap().unwrap()
                    } else {
                        (rest.to_vec(), rest.len())
                    };
                    let (msg, n) = decode_stream(&plain).unwrap().unwrap();
                    assert_eq!(n, plain.len(), "{line}");
                    let compress = plain[0] == msg_type::COMPRESS;
                    assert_eq!(hex(&encode_stream(&msg, compress)), hex(&plain), "{line}");
                    kinds.insert(kind(&msg));
                    rest = &rest[used..];
                }
                tcp += 1;
            }
        }
        assert_eq!((udp, tcp), (505, 8));
        let all = [
            "Ack",
            "Alive",
            "Dead",
            "IndirectPing",
            "Nack",
            "Ping",
            "PushPull",
            "Suspect",
            "User",
        ];
        assert_eq!(kinds.into_iter().collect::<Vec<_>>(), all);
    }

    fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..8),
            proptest::collection::vec(any::<u8>(), 0..300)
        ]
    }

    fn arb_str() -> impl Strategy<Value = String> {
        prop_oneof![".{0,10}", ".{0,80}"]
    }

    fn arb_node_state() -> impl Strategy<Value = PushNodeState> {
        (
            arb_str(),
            arb_bytes(),
            any::<u16>(),
            arb_bytes(),
            any::<u32>(),
            any::<u8>(),
            arb_bytes(),
        )
            .prop_map(
                |(name, addr, port, meta, incarnation, state, vsn)| PushNodeState {
                    name,
                    addr,
                    port,
                    meta,
                    incarnation,
                    state,
                    vsn,
                },
            )
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (
                any::<u32>(),
                arb_str(),
                arb_bytes(),
                any::<u16>(),
                arb_str()
            )
                .prop_map(|(seq_no, node, source_addr, source_port, source_node)| {
                    Message::Ping(Ping {
                        seq_no,
                        node,
                        source_addr,
                        source_port,
                        source_node,
                    })
                }),
            (
                any::<u32>(),
                arb_bytes(),
                any::<u16>(),
                arb_str(),
                any::<bool>(),
                arb_bytes(),
                any::<u16>(),
                arb_str()
            )
                .prop_map(
                    |(seq_no, target, port, node, nack, source_addr, source_port, source_node)| {
                        Message::IndirectPing(IndirectPing {
                            seq_no,
                            target,
                            port,
                            node,
                            nack,
                            source_addr,
                            source_port,
                            source_node,
                        })
                    }
                ),
            (any::<u32>(), arb_bytes())
                .prop_map(|(seq_no, payload)| Message::Ack(Ack { seq_no, payload })),
            any::<u32>().prop_map(|seq_no| Message::Nack(Nack { seq_no })),
            (any::<u32>(), arb_str(), arb_str()).prop_map(|(incarnation, node, from)| {
                Message::Suspect(Suspect {
                    incarnation,
                    node,
                    from,
                })
            }),
            (any::<u32>(), arb_str(), arb_str()).prop_map(|(incarnation, node, from)| {
                Message::Dead(Dead {
                    incarnation,
                    node,
                    from,
                })
            }),
            (
                any::<u32>(),
                arb_str(),
                arb_bytes(),
                any::<u16>(),
                arb_bytes(),
                arb_bytes()
            )
                .prop_map(|(incarnation, node, addr, port, meta, vsn)| Message::Alive(
                    Alive {
                        incarnation,
                        node,
                        addr,
                        port,
                        meta,
                        vsn
                    }
                )),
            (
                any::<bool>(),
                proptest::collection::vec(arb_node_state(), 0..20),
                arb_bytes()
            )
                .prop_map(|(join, nodes, user_state)| Message::PushPull(PushPull {
                    join,
                    nodes,
                    user_state
                })),
            arb_bytes().prop_map(Message::User),
            arb_str().prop_map(Message::Err),
        ]
    }

    /// The push/pull decoder as it was before node states were read in place
    /// (every field copied out): the reference the borrowed one must match.
    fn owned_push_node_state(r: &mut Reader<'_>) -> Result<PushNodeState, WireError> {
        let mut n = PushNodeState::default();
        r.read_struct(&PUSH_NODE_STATE_FIELDS, |i, r| {
            match i {
                0 => n.name = r.read_string()?,
                1 => n.addr = r.read_bytes()?.to_vec(),
                2 => n.port = r.read_u16()?,
                3 => n.meta = r.read_bytes()?.to_vec(),
                4 => n.incarnation = r.read_u32()?,
                5 => {
                    let s = r.read_i64()?;
                    n.state = u8::try_from(s).map_err(|_| {
                        WireError::Malformed(format!("pushNodeState: State {s} out of range"))
                    })?;
                }
                _ => n.vsn = r.read_bytes()?.to_vec(),
            }
            Ok(())
        })?;
        Ok(n)
    }

    fn owned_push_pull(r: &mut Reader<'_>) -> Result<PushPull, WireError> {
        let (mut nodes, mut user_len, mut join) = (0usize, 0usize, false);
        r.read_struct(&PUSH_PULL_HEADER_FIELDS, |i, r| {
            match i {
                0 => nodes = read_len(r, "pushPullHeader.Nodes")?,
                1 => user_len = read_len(r, "pushPullHeader.UserStateLen")?,
                _ => join = r.read_bool()?,
            }
            Ok(())
        })?;
        let mut states = Vec::with_capacity(nodes.min(r.rest().len()));
        for _ in 0..nodes {
            states.push(owned_push_node_state(r)?);
        }
        let user_state = r.read_raw(user_len)?.to_vec();
        Ok(PushPull {
            join,
            nodes: states,
            user_state,
        })
    }

    fn owned_stream_body(t: u8, r: &mut Reader<'_>) -> Result<Message, WireError> {
        match t {
            msg_type::COMPOUND | msg_type::HAS_CRC => Err(WireError::Malformed(format!(
                "message type {t} is not sent over streams"
            ))),
            msg_type::PUSH_PULL => Ok(Message::PushPull(owned_push_pull(r)?)),
            _ => read_body(t, r, true),
        }
    }

    /// `decode_stream` as it was, on the owned push/pull decoder.
    fn owned_decode_stream(buf: &[u8]) -> Result<Option<(Message, usize)>, WireError> {
        let Some((&t, body)) = buf.split_first() else {
            return Ok(None);
        };
        if t == msg_type::COMPRESS {
            let mut r = Reader::new(body);
            match r.skip() {
                Err(WireError::Truncated) => return Ok(None),
                Err(e) => return Err(e),
                Ok(()) => {}
            }
            let (inner, used) = read_compressed(body, MAX_STREAM_DECOMPRESSED)?;
            let (&it, ibody) = inner.split_first().ok_or(WireError::Truncated)?;
            if matches!(it, msg_type::COMPRESS | msg_type::ENCRYPT) {
                return Err(WireError::Malformed(format!(
                    "message type {it} inside a compressed stream"
                )));
            }
            let msg = owned_stream_body(it, &mut Reader::new(ibody))?;
            return Ok(Some((msg, 1 + used)));
        }
        let mut r = Reader::new(body);
        match owned_stream_body(t, &mut r) {
            Ok(msg) => Ok(Some((msg, 1 + r.position()))),
            Err(WireError::Truncated) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The borrowed decoder and the owned reference agree on `buf`: the same
    /// message (or error), the same length; and neither panics.
    fn same_as_owned(buf: &[u8]) -> Result<(), TestCaseError> {
        let want = owned_decode_stream(buf);
        let mut scratch = Vec::new();
        let got = decode_stream_ref(buf, &mut scratch).map(|o| o.map(|(m, n)| (m.into_owned(), n)));
        prop_assert_eq!(&got, &want);
        // Given what it decompresses to (a simulator's sender's plain bytes).
        let (ahead, mut scratch) = (inflate_stream(buf), Vec::new());
        let got = decode_stream_inflated(buf, ahead.as_deref(), &mut scratch);
        prop_assert_eq!(&got.map(|o| o.map(|(m, n)| (m.into_owned(), n))), &want);
        prop_assert_eq!(decode_stream(buf), want);
        if let Some((&t, body)) = buf.split_first() {
            let want = owned_stream_body(t, &mut Reader::new(body)).ok();
            if t == msg_type::PUSH_PULL {
                prop_assert_eq!(read_body(t, &mut Reader::new(body), false).ok(), want);
            }
        }
        Ok(())
    }

    /// Bytes that are mostly a push/pull: arbitrary, or an encoded one with a
    /// few bytes changed or cut short (often still valid).
    fn arb_push_pull_bytes() -> impl Strategy<Value = Vec<u8>> {
        let encoded = (
            any::<bool>(),
            proptest::collection::vec(arb_node_state(), 0..6),
            arb_bytes(),
            any::<bool>(),
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(join, nodes, user_state, compress, flips, cut)| {
                let mut b = encode_stream(
                    &Message::PushPull(PushPull {
                        join,
                        nodes,
                        user_state,
                    }),
                    compress,
                );
                for (i, v) in flips {
                    let n = b.len();
                    b[i.index(n)] = v;
                }
                if cut.index(4) == 0 {
                    b.truncate(cut.index(b.len() + 1));
                }
                b
            });
        let raw = proptest::collection::vec(any::<u8>(), 0..300).prop_map(|mut b| {
            b.insert(0, msg_type::PUSH_PULL);
            b
        });
        prop_oneof![3 => encoded, 1 => raw]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn borrowed_push_pull_decoder_matches_the_owned_one(buf in arb_push_pull_bytes()) {
            same_as_owned(&buf)?;
        }

        #[test]
        fn borrowed_stream_decoder_matches_the_owned_one_on_any_bytes(
            buf in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            same_as_owned(&buf)?;
        }
    }

    proptest! {
        #[test]
        fn message_roundtrip(msg in arb_message()) {
            let enc = encode_message(&msg);
            prop_assert_eq!(decode_message(&enc).unwrap(), msg.clone());
            if !matches!(msg, Message::PushPull(_)) {
                let p = wrap_packet(enc.clone(), PacketOpts { crc: true, compress: true });
                prop_assert_eq!(decode_packet(&p).unwrap(), (vec![msg.clone()], 0));
            }
        }

        #[test]
        fn push_pull_from_views_is_the_owned_encoding(
            nodes in proptest::collection::vec(arb_node_state(), 0..8),
            user_state in arb_bytes(),
            join in any::<bool>(),
            compress in any::<bool>(),
        ) {
            let views = encode_push_pull_stream(join, nodes.iter().map(PushNodeState::as_ref), &user_state);
            let views = if compress { encode_compressed(&views) } else { views };
            let owned = encode_stream(&Message::PushPull(PushPull { join, nodes, user_state }), compress);
            prop_assert_eq!(views, owned);
        }

        #[test]
        fn stream_roundtrip(msg in arb_message(), compress in any::<bool>(), tail in arb_bytes()) {
            let enc = encode_stream(&msg, compress);
            let mut buf = enc.clone();
            buf.extend_from_slice(&tail);
            prop_assert_eq!(decode_stream(&buf).unwrap(), Some((msg.clone(), enc.len())));
            prop_assert_eq!(decode_stream(&enc[..enc.len() / 2]).unwrap(), None);
            // What a compressed stream inflates to is the message uncompressed.
            let plain = encode_stream(&msg, false);
            prop_assert_eq!(inflate_stream(&buf), compress.then_some(plain));
        }

        #[test]
        fn compound_roundtrip(msgs in proptest::collection::vec(arb_message(), 0..20), cut in any::<prop::sample::Index>()) {
            let msgs: Vec<Message> = msgs.into_iter().filter(|m| !matches!(m, Message::PushPull(_) | Message::User(_))).collect();
            let parts: Vec<Vec<u8>> = msgs.iter().map(encode_message).collect();
            let c = make_compound(&parts);
            prop_assert_eq!(decode_packet(&c).unwrap(), (msgs.clone(), 0));
            let p = wrap_packet(c.clone(), PacketOpts { crc: false, compress: true });
            prop_assert_eq!(decode_packet(&p).unwrap(), (msgs, 0));
            let at = cut.index(c.len() + 1);
            let _ = decode_packet(&c[..at]);
        }

        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_message(&data);
            let _ = decode_packet(&data);
            let _ = decode_stream(&data);
        }

        #[test]
        fn decoders_never_panic_on_mutations(msg in arb_message(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6), compress in any::<bool>()) {
            for mut buf in [encode_message(&msg), encode_stream(&msg, compress), wrap_packet(encode_message(&msg), PacketOpts { crc: false, compress })] {
                for (i, v) in &flips {
                    let n = buf.len();
                    buf[i.index(n)] = *v;
                }
                let _ = decode_message(&buf);
                let _ = decode_packet(&buf);
                let _ = decode_stream(&buf);
            }
        }
    }
}
