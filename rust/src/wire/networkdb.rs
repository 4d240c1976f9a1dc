//! networkdb's protobuf messages (libnetwork `networkdb/networkdb.proto` at
//! 68aac7a), with a hand-written proto3 codec that gives the same bytes as the
//! gogo-generated Go code: fields in field-number order, zero scalars and empty
//! strings/bytes left out, every element of a repeated field written.
//!
//! Encoding computes the exact size first, so a message costs one allocation
//! (or none when the caller reuses a buffer). Decoding accepts whatever Go's
//! `Unmarshal` accepts (unknown fields of every wire type are skipped, the last
//! occurrence of a scalar wins) except strings that are not UTF-8, and returns a
//! [`DecodeError`] for anything else; it never panics.
//!
//! Messages travel inside a [`GossipMessage`] `{type, data}`; [`Payload`] types
//! know their [`MessageType`] and encode themselves straight into the wrapper
//! ([`Payload::encode_gossip_into`]); [`decode_gossip`] decodes the wrapper and
//! the message inside in one call.

use std::fmt;

// ---------------------------------------------------------------------------
// Enums: proto3 enums are open, so each is an `i32` newtype with named
// constants; values this code does not know are kept as they are.

macro_rules! proto_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $num:expr),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
        pub struct $name(pub i32);

        impl $name {
            $($(#[$vdoc])* pub const $variant: Self = Self($num);)*

            /// The name in the .proto, or `None` for a number it does not declare.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($num => Some(stringify!($variant)),)*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }

        impl From<i32> for $name {
            fn from(v: i32) -> Self {
                Self(v)
            }
        }

        impl From<$name> for i32 {
            fn from(v: $name) -> i32 {
                v.0
            }
        }
    };
}

proto_enum! {
    /// `GossipMessage.type`: which message `data` holds.
    MessageType {
        INVALID = 0,
        NETWORK_EVENT = 1,
        TABLE_EVENT = 2,
        PUSH_PULL = 3,
        BULK_SYNC = 4,
        COMPOUND = 5,
        NODE_EVENT = 6,
    }
}

proto_enum! {
    /// `NodeEvent.Type`.
    NodeEventType { INVALID = 0, JOIN = 1, LEAVE = 2 }
}

proto_enum! {
    /// `NetworkEvent.Type`.
    NetworkEventType { INVALID = 0, JOIN = 1, LEAVE = 2 }
}

proto_enum! {
    /// `TableEvent.Type`.
    TableEventType { INVALID = 0, CREATE = 1, UPDATE = 2, DELETE = 3 }
}

// ---------------------------------------------------------------------------
// Messages.

/// The envelope of every networkdb message: `type` says what `data` holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GossipMessage {
    pub r#type: MessageType,
    pub data: Vec<u8>,
}

/// [`GossipMessage`] borrowing its data from the input (no copy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GossipMessageRef<'a> {
    pub r#type: MessageType,
    pub data: &'a [u8],
}

/// A node joined or left the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeEvent {
    pub r#type: NodeEventType,
    pub l_time: u64,
    pub node_name: String,
}

/// A node joined or left a network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkEvent {
    pub r#type: NetworkEventType,
    pub l_time: u64,
    pub node_name: String,
    pub network_id: String,
}

/// One network attachment in a [`NetworkPushPull`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkEntry {
    pub network_id: String,
    pub l_time: u64,
    pub node_name: String,
    pub leaving: bool,
}

/// The network attachments a node knows, exchanged in memberlist's push/pull.
/// `node_name` (field 3) is on the wire although the .proto at 68aac7a does not
/// declare it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkPushPull {
    pub l_time: u64,
    pub networks: Vec<NetworkEntry>,
    pub node_name: String,
}

/// [`NetworkEntry`] borrowing its strings from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetworkEntryRef<'a> {
    pub network_id: &'a str,
    pub l_time: u64,
    pub node_name: &'a str,
    pub leaving: bool,
}

/// [`NetworkPushPull`] borrowing from the input: a push/pull lists every
/// attachment in the cluster, which a receiver mostly knows already; read
/// this way it costs one allocation (the list), not two per attachment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkPushPullRef<'a> {
    pub l_time: u64,
    pub networks: Vec<NetworkEntryRef<'a>>,
    pub node_name: &'a str,
}

/// A create, update or delete of a table entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableEvent {
    pub r#type: TableEventType,
    pub l_time: u64,
    pub node_name: String,
    pub network_id: String,
    pub table_name: String,
    pub key: String,
    pub value: Vec<u8>,
    /// Seconds a deleted entry still has before it is reaped.
    pub residual_reap_time: i32,
}

/// [`TableEvent`] borrowing its strings and value: encodes from borrowed data and
/// decodes without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableEventRef<'a> {
    pub r#type: TableEventType,
    pub l_time: u64,
    pub node_name: &'a str,
    pub network_id: &'a str,
    pub table_name: &'a str,
    pub key: &'a str,
    pub value: &'a [u8],
    pub residual_reap_time: i32,
}

/// A node's table entries for some networks; `payload` is an encoded
/// GossipMessage (a COMPOUND of TABLE_EVENTs in practice).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BulkSyncMessage {
    pub l_time: u64,
    pub unsolicited: bool,
    pub node_name: String,
    pub networks: Vec<String>,
    pub payload: Vec<u8>,
}

/// [`BulkSyncMessage`] borrowing from the input: its payload (every entry of
/// the synced networks) is read in place rather than copied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BulkSyncMessageRef<'a> {
    pub l_time: u64,
    pub unsolicited: bool,
    pub node_name: &'a str,
    pub networks: Vec<&'a str>,
    pub payload: &'a [u8],
}

/// One part of a [`CompoundMessage`]: an encoded GossipMessage.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SimpleMessage {
    pub payload: Vec<u8>,
}

/// Several encoded GossipMessages sent as one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompoundMessage {
    pub messages: Vec<SimpleMessage>,
}

/// A decoded GossipMessage with the message inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    NetworkEvent(NetworkEvent),
    TableEvent(TableEvent),
    PushPull(NetworkPushPull),
    BulkSync(BulkSyncMessage),
    Compound(CompoundMessage),
    NodeEvent(NodeEvent),
}

// ---------------------------------------------------------------------------
// Errors.

/// Why bytes are not a networkdb message. `message` names the message being
/// decoded when the problem was found (e.g. "TableEvent").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ends inside a field, or a length runs past its end.
    Truncated { message: &'static str },
    /// A varint longer than 10 bytes.
    VarintOverflow { message: &'static str },
    /// A field number that is 0 or negative once truncated to an int32 (as
    /// Go reads it).
    InvalidTag { message: &'static str, tag: u64 },
    /// Wire type 6 or 7, which protobuf does not define.
    InvalidWireType {
        message: &'static str,
        wire_type: u8,
    },
    /// An end-group marker with no group open.
    UnexpectedEndGroup { message: &'static str },
    /// A known field with another wire type than the .proto gives it.
    WrongWireType {
        message: &'static str,
        field: &'static str,
        wire_type: u8,
    },
    /// A string field that is not valid UTF-8.
    InvalidUtf8 {
        message: &'static str,
        field: &'static str,
    },
    /// A GossipMessage whose type is INVALID or a number networkdb does not know.
    UnknownMessageType(i32),
    /// A GossipMessage of another type than the caller expected.
    UnexpectedMessageType {
        expected: MessageType,
        found: MessageType,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { message } => {
                write!(
                    f,
                    "{message}: input truncated (a field or length runs past the end)"
                )
            }
            DecodeError::VarintOverflow { message } => {
                write!(f, "{message}: varint longer than 10 bytes")
            }
            DecodeError::InvalidTag { message, tag } => {
                write!(
                    f,
                    "{message}: invalid field number {} (tag {tag})",
                    tag >> 3
                )
            }
            DecodeError::InvalidWireType { message, wire_type } => {
                write!(f, "{message}: invalid wire type {wire_type}")
            }
            DecodeError::UnexpectedEndGroup { message } => {
                write!(f, "{message}: end-group marker outside a group")
            }
            DecodeError::WrongWireType {
                message,
                field,
                wire_type,
            } => write!(
                f,
                "{message}: field {field} has wrong wire type {wire_type}"
            ),
            DecodeError::InvalidUtf8 { message, field } => {
                write!(f, "{message}: field {field} is not valid UTF-8")
            }
            DecodeError::UnknownMessageType(t) => {
                write!(f, "GossipMessage: unknown message type {t}")
            }
            DecodeError::UnexpectedMessageType { expected, found } => {
                write!(f, "GossipMessage: expected type {expected}, found {found}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

// ---------------------------------------------------------------------------
// Wire primitives.

const WT_VARINT: u8 = 0;
const WT_FIXED64: u8 = 1;
const WT_LEN: u8 = 2;
const WT_START_GROUP: u8 = 3;
const WT_END_GROUP: u8 = 4;
const WT_FIXED32: u8 = 5;

/// The one-byte key of field `n` (every field here is below 16).
const fn key(field: u8, wire_type: u8) -> u8 {
    (field << 3) | wire_type
}

/// Bytes a varint of `v` takes (1..=10).
#[inline]
fn varint_len(v: u64) -> usize {
    // ceil(significant bits / 7), with 0 taking one byte.
    ((64 - (v | 1).leading_zeros()) as usize * 9 + 64) / 64
}

#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// An `int32`/enum as protobuf puts it on the wire: sign-extended to 64 bits.
#[inline]
fn int32_bits(v: i32) -> u64 {
    i64::from(v) as u64
}

/// Size of an optional varint field (absent when zero).
#[inline]
fn varint_field_len(v: u64) -> usize {
    if v == 0 {
        0
    } else {
        1 + varint_len(v)
    }
}

/// Size of an optional length-delimited field (absent when empty).
#[inline]
fn bytes_field_len(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        1 + varint_len(n as u64) + n
    }
}

/// Size of an element of a repeated length-delimited field (always present).
#[inline]
fn repeated_len(n: usize) -> usize {
    1 + varint_len(n as u64) + n
}

#[inline]
fn put_varint_field(out: &mut Vec<u8>, key: u8, v: u64) {
    if v != 0 {
        out.push(key);
        put_varint(out, v);
    }
}

#[inline]
fn put_bytes_field(out: &mut Vec<u8>, key: u8, b: &[u8]) {
    if !b.is_empty() {
        put_repeated(out, key, b);
    }
}

#[inline]
fn put_repeated(out: &mut Vec<u8>, key: u8, b: &[u8]) {
    out.push(key);
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Cursor over one message's bytes. Every read checks bounds and returns a
/// `DecodeError` naming `message`.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    message: &'static str,
}

impl<'a> Reader<'a> {
    #[inline]
    fn new(buf: &'a [u8], message: &'static str) -> Self {
        Reader {
            buf,
            pos: 0,
            message,
        }
    }

    #[inline]
    fn more(&self) -> bool {
        self.pos < self.buf.len()
    }

    fn truncated(&self) -> DecodeError {
        DecodeError::Truncated {
            message: self.message,
        }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        match self.buf.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            Some(_) => self.varint_slow(),
            None => Err(self.truncated()),
        }
    }

    /// A multi-byte varint. Like Go's decoder, up to 10 bytes are accepted and
    /// bits past the 64th are dropped.
    #[cold]
    fn varint_slow(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.truncated());
            };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError::VarintOverflow {
            message: self.message,
        })
    }

    /// The next field's number and wire type; refuses field 0 (or negative as
    /// an int32) and a stray end-group marker, as Go does.
    #[inline]
    fn key(&mut self) -> Result<(u32, u8), DecodeError> {
        let tag = self.varint()?;
        let wire_type = (tag & 7) as u8;
        if wire_type == WT_END_GROUP {
            return Err(DecodeError::UnexpectedEndGroup {
                message: self.message,
            });
        }
        // Go takes the field number as int32(tag >> 3) and refuses it when <= 0.
        let field = (tag >> 3) as u32;
        if field == 0 || field > i32::MAX as u32 {
            return Err(DecodeError::InvalidTag {
                message: self.message,
                tag,
            });
        }
        Ok((field, wire_type))
    }

    #[inline]
    fn expect(&self, wire_type: u8, want: u8, field: &'static str) -> Result<(), DecodeError> {
        if wire_type == want {
            Ok(())
        } else {
            Err(DecodeError::WrongWireType {
                message: self.message,
                field,
                wire_type,
            })
        }
    }

    #[inline]
    fn uint(&mut self, wire_type: u8, field: &'static str) -> Result<u64, DecodeError> {
        self.expect(wire_type, WT_VARINT, field)?;
        self.varint()
    }

    /// An `int32` or enum: the low 32 bits of the varint (Go's conversion).
    #[inline]
    fn int32(&mut self, wire_type: u8, field: &'static str) -> Result<i32, DecodeError> {
        Ok(self.uint(wire_type, field)? as i32)
    }

    #[inline]
    fn bool(&mut self, wire_type: u8, field: &'static str) -> Result<bool, DecodeError> {
        Ok(self.uint(wire_type, field)? != 0)
    }

    #[inline]
    fn take(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        let rest = self.buf.len() - self.pos;
        if n > rest as u64 {
            return Err(self.truncated());
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    #[inline]
    fn bytes(&mut self, wire_type: u8, field: &'static str) -> Result<&'a [u8], DecodeError> {
        self.expect(wire_type, WT_LEN, field)?;
        let n = self.varint()?;
        self.take(n)
    }

    #[inline]
    fn str(&mut self, wire_type: u8, field: &'static str) -> Result<&'a str, DecodeError> {
        let b = self.bytes(wire_type, field)?;
        std::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8 {
            message: self.message,
            field,
        })
    }

    /// Skips the value of a field this code does not know, including groups
    /// (nested to any depth; field numbers of start and end are not matched,
    /// as in Go).
    fn skip(&mut self, wire_type: u8) -> Result<(), DecodeError> {
        let mut depth: usize = 0;
        let mut wt = wire_type;
        loop {
            match wt {
                WT_VARINT => {
                    self.varint()?;
                }
                WT_FIXED64 => {
                    self.take(8)?;
                }
                WT_LEN => {
                    let n = self.varint()?;
                    self.take(n)?;
                }
                WT_START_GROUP => depth += 1,
                WT_END_GROUP => {
                    if depth == 0 {
                        return Err(DecodeError::UnexpectedEndGroup {
                            message: self.message,
                        });
                    }
                    depth -= 1;
                }
                WT_FIXED32 => {
                    self.take(4)?;
                }
                _ => {
                    return Err(DecodeError::InvalidWireType {
                        message: self.message,
                        wire_type: wt,
                    })
                }
            }
            if depth == 0 {
                return Ok(());
            }
            // Inside a group: read the next key, end-group markers included
            // (any field number, as Go's skip does not check them).
            wt = (self.varint()? & 7) as u8;
        }
    }
}

// ---------------------------------------------------------------------------
// Traits.

/// A message that encodes to protobuf bytes.
pub trait Encode {
    /// Exact number of bytes [`Encode::write_to`] appends.
    fn encoded_len(&self) -> usize;

    /// Appends the encoding to `out` without reserving (callers reserve
    /// `encoded_len()` first; [`Encode::encode_into`] does).
    fn write_to(&self, out: &mut Vec<u8>);

    /// Appends the encoding to `out` (clear it first to reuse a buffer), with at
    /// most one reallocation.
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        self.write_to(out);
    }

    /// The encoding in a new vector of exactly the right size.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write_to(&mut out);
        out
    }
}

/// A message that owns its data and decodes from protobuf bytes.
pub trait Decode: Sized {
    fn decode(buf: &[u8]) -> Result<Self, DecodeError>;
}

/// A message that travels as the `data` of a [`GossipMessage`].
pub trait Payload: Encode {
    const MESSAGE_TYPE: MessageType;

    /// Size of this message wrapped in a GossipMessage.
    fn gossip_len(&self) -> usize {
        gossip_len(Self::MESSAGE_TYPE, self.encoded_len())
    }

    /// Appends `GossipMessage{type, data: self}` to `out`, writing the message
    /// in place (no intermediate buffer).
    fn encode_gossip_into(&self, out: &mut Vec<u8>) {
        let inner = self.encoded_len();
        out.reserve(gossip_len(Self::MESSAGE_TYPE, inner));
        put_gossip_header(out, Self::MESSAGE_TYPE, inner);
        self.write_to(out);
    }

    /// `GossipMessage{type, data: self}` in a new vector of exactly the right size.
    fn encode_gossip(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_gossip_into(&mut out);
        out
    }
}

fn gossip_len(t: MessageType, inner: usize) -> usize {
    varint_field_len(int32_bits(t.0)) + bytes_field_len(inner)
}

fn put_gossip_header(out: &mut Vec<u8>, t: MessageType, inner: usize) {
    put_varint_field(out, key(1, WT_VARINT), int32_bits(t.0));
    if inner != 0 {
        out.push(key(2, WT_LEN));
        put_varint(out, inner as u64);
    }
}

// ---------------------------------------------------------------------------
// GossipMessage.

impl Encode for GossipMessage {
    fn encoded_len(&self) -> usize {
        gossip_len(self.r#type, self.data.len())
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        self.as_ref().write_to(out)
    }
}

impl Encode for GossipMessageRef<'_> {
    fn encoded_len(&self) -> usize {
        gossip_len(self.r#type, self.data.len())
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        put_gossip_header(out, self.r#type, self.data.len());
        out.extend_from_slice(self.data);
    }
}

impl GossipMessage {
    pub fn as_ref(&self) -> GossipMessageRef<'_> {
        GossipMessageRef {
            r#type: self.r#type,
            data: &self.data,
        }
    }
}

impl<'a> GossipMessageRef<'a> {
    /// Decodes the envelope only; `data` borrows from `buf`.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "GossipMessage");
        let mut m = GossipMessageRef::default();
        while r.more() {
            let (field, wt) = r.key()?;
            match field {
                1 => m.r#type = MessageType(r.int32(wt, "type")?),
                2 => m.data = r.bytes(wt, "data")?,
                _ => r.skip(wt)?,
            }
        }
        Ok(m)
    }

    pub fn into_owned(self) -> GossipMessage {
        GossipMessage {
            r#type: self.r#type,
            data: self.data.to_vec(),
        }
    }
}

impl Decode for GossipMessage {
    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        GossipMessageRef::decode(buf).map(GossipMessageRef::into_owned)
    }
}

// ---------------------------------------------------------------------------
// NodeEvent.

impl Encode for NodeEvent {
    fn encoded_len(&self) -> usize {
        varint_field_len(int32_bits(self.r#type.0))
            + varint_field_len(self.l_time)
            + bytes_field_len(self.node_name.len())
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        put_varint_field(out, key(1, WT_VARINT), int32_bits(self.r#type.0));
        put_varint_field(out, key(2, WT_VARINT), self.l_time);
        put_bytes_field(out, key(3, WT_LEN), self.node_name.as_bytes());
    }
}

impl Payload for NodeEvent {
    const MESSAGE_TYPE: MessageType = MessageType::NODE_EVENT;
}

impl Decode for NodeEvent {
    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "NodeEvent");
        let mut m = NodeEvent::default();
        while r.more() {
            let (field, wt) = r.key()?;
            match field {
                1 => m.r#type = NodeEventType(r.int32(wt, "type")?),
                2 => m.l_time = r.uint(wt, "l_time")?,
                3 => m.node_name = r.str(wt, "node_name")?.to_owned(),
                _ => r.skip(wt)?,
            }
        }
        Ok(m)
    }
}

// ---------------------------------------------------------------------------
// NetworkEvent.

impl Encode for NetworkEvent {
    fn encoded_len(&self) -> usize {
        varint_field_len(int32_bits(self.r#type.0))
            + varint_field_len(self.l_time)
            + bytes_field_len(self.node_name.len())
            + bytes_field_len(self.network_id.len())
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        put_varint_field(out, key(1, WT_VARINT), int32_bits(self.r#type.0));
        put_varint_field(out, key(2, WT_VARINT), self.l_time);
        put_bytes_field(out, key(3, WT_LEN), self.node_name.as_bytes());
        put_bytes_field(out, key(4, WT_LEN), self.network_id.as_bytes());
    }
}

impl Payload for NetworkEvent {
    const MESSAGE_TYPE: MessageType = MessageType::NETWORK_EVENT;
}

impl Decode for NetworkEvent {
    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "NetworkEvent");
        let mut m = NetworkEvent::default();
        while r.more() {
            let (field, wt) = r.key()?;
            match field {
                1 => m.r#type = NetworkEventType(r.int32(wt, "type")?),
                2 => m.l_time = r.uint(wt, "l_time")?,
                3 => m.node_name = r.str(wt, "node_name")?.to_owned(),
                4 => m.network_id = r.str(wt, "network_id")?.to_owned(),
                _ => r.skip(wt)?,
            }
        }
        Ok(m)
    }
}

// ---------------------------------------------------------------------------
// NetworkEntry and NetworkPushPull.

impl Encode for NetworkEntryRef<'_> {
    fn encoded_len(&self) -> usize {
        bytes_field_len(self.network_id.len())
            + varint_field_len(self.l_time)
            + bytes_field_len(self.node_name.len())
            + varint_field_len(u64::from(self.leaving))
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        put_bytes_field(out, key(1, WT_LEN), self.network_id.as_bytes());
        put_varint_field(out, key(2, WT_VARINT), self.l_time);
        put_bytes_field(out, key(3, WT_LEN), self.node_name.as_bytes());
        put_varint_field(out, key(4, WT_VARINT), u64::from(self.leaving));
    }
}

impl NetworkEntry {
    pub fn as_ref(&self) -> NetworkEntryRef<'_> {
        NetworkEntryRef {
            network_id: &self.network_id,
            l_time: self.l_time,
            node_name: &self.node_name,
            leaving: self.leaving,
        }
    }
}

impl Encode for NetworkEntry {
    fn encoded_len(&self) -> usize {
        self.as_ref().encoded_len()
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        self.as_ref().write_to(out);
    }
}

impl<'a> NetworkEntryRef<'a> {
    /// Decodes without copying: the strings borrow from `buf`.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "NetworkEntry");
        let mut m = NetworkEntryRef::default();
        while r.more() {
            let (field, wt) = r.key()?;
            match field {
                1 => m.network_id = r.str(wt, "network_id")?,
                2 => m.l_time = r.uint(wt, "l_time")?,
                3 => m.node_name = r.str(wt, "node_name")?,
                4 => m.leaving = r.bool(wt, "leaving")?,
                _ => r.skip(wt)?,
            }
        }
        Ok(m)
    }

    pub fn into_owned(self) -> NetworkEntry {
        NetworkEntry {
            network_id: self.network_id.to_owned(),
            l_time: self.l_time,
            node_name: self.node_name.to_owned(),
            leaving: self.leaving,
        }
    }
}

impl Decode for NetworkEntry {
    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        NetworkEntryRef::decode(buf).map(NetworkEntryRef::into_owned)
    }
}

fn push_pull_len<E: Encode>(l_time: u64, networks: &[E], node_name: &str) -> usize {
    varint_field_len(l_time)
        + networks.iter().map(|n| repeated_len(n.encoded_len())).sum::<usize>()
        + bytes_field_len(node_name.len())
}

fn write_push_pull<E: Encode>(out: &mut Vec<u8>, l_time: u64, networks: &[E], node_name: &str) {
    put_varint_field(out, key(1, WT_VARINT), l_time);
    for n in networks {
        out.push(key(2, WT_LEN));
        put_varint(out, n.encoded_len() as u64);
        n.write_to(out);
    }
    put_bytes_field(out, key(3, WT_LEN), node_name.as_bytes());
}

impl Encode for NetworkPushPull {
    fn encoded_len(&self) -> usize {
        push_pull_len(self.l_time, &self.networks, &self.node_name)
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        write_push_pull(out, self.l_time, &self.networks, &self.node_name);
    }
}

impl Payload for NetworkPushPull {
    const MESSAGE_TYPE: MessageType = MessageType::PUSH_PULL;
}

/// A push/pull is sent from views of the sender's attachments: the same
/// bytes as the owned message, without a copy of every name.
impl Encode for NetworkPushPullRef<'_> {
    fn encoded_len(&self) -> usize {
        push_pull_len(self.l_time, &self.networks, self.node_name)
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        write_push_pull(out, self.l_time, &self.networks, self.node_name);
    }
}

impl Payload for NetworkPushPullRef<'_> {
    const MESSAGE_TYPE: MessageType = MessageType::PUSH_PULL;
}

impl<'a> NetworkPushPullRef<'a> {
    /// Decodes without copying: the strings borrow from `buf`.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "NetworkPushPull");
        let mut m = NetworkPushPullRef::default();
        while r.more() {
            let (field, wt) = r.key()?;
            match field {
                1 => m.l_time = r.uint(wt, "l_time")?,
                2 => m
                    .networks
                    .push(NetworkEntryRef::decode(r.bytes(wt, "networks")?)?),
                3 => m.node_name = r.str(wt, "node_name")?,
                _ => r.skip(wt)?,
            }
        }
        Ok(m)
    }

    /// Decodes a GossipMessage that must hold a PUSH_PULL.
    pub fn decode_gossip(buf: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode(gossip_data(buf, MessageType::PUSH_PULL)?)
    }

    pub fn into_owned(self) -> NetworkPushPull {
        NetworkPushPull {
            l_time: self.l_time,
            networks: self
                .networks
                .into_iter()
                .map(NetworkEntryRef::into_owned)
                .collect(),
            node_name: self.node_name.to_owned(),
        }
    }
}

impl Decode for NetworkPushPull {
    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        NetworkPushPullRef::decode(buf).map(NetworkPushPullRef::into_owned)
    }
}

// ---------------------------------------------------------------------------
// TableEvent.

impl Encode for TableEventRef<'_> {
    #[inline]
    fn encoded_len(&self) -> usize {
        varint_field_len(int32_bits(self.r#type.0))
            + varint_field_len(self.l_time)
            + bytes_field_len(self.node_name.len())
            + bytes_field_len(self.network_id.len())
            + bytes_field_len(self.table_name.len())
            + bytes_field_len(self.key.len())
            + bytes_field_len(self.value.len())
            + varint_field_len(int32_bits(self.residual_reap_time))
    }

    #[inline]
    fn write_to(&self, out: &mut Vec<u8>) {
        put_varint_field(out, key(1, WT_VARINT), int32_bits(self.r#type.0));
        put_varint_field(out, key(2, WT_VARINT), self.l_time);
        put_bytes_field(out, key(3, WT_LEN), self.node_name.as_bytes());
        put_bytes_field(out, key(4, WT_LEN), self.network_id.as_bytes());
        put_bytes_field(out, key(5, WT_LEN), self.table_name.as_bytes());
        put_bytes_field(out, key(6, WT_LEN), self.key.as_bytes());
        put_bytes_field(out, key(7, WT_LEN), self.value);
        put_varint_field(out, key(8, WT_VARINT), int32_bits(self.residual_reap_time));
    }
}

impl Payload for TableEventRef<'_> {
    const MESSAGE_TYPE: MessageType = MessageType::TABLE_EVENT;
}

impl<'a> TableEventRef<'a> {
    /// Decodes without copying: strings and value borrow from `buf`.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "TableEvent");
        let mut m = TableEventRef::default();
        while r.more() {
            let (field, wt) = r.key()?;
            match field {
                1 => m.r#type = TableEventType(r.int32(wt, "type")?),
                2 => m.l_time = r.uint(wt, "l_time")?,
                3 => m.node_name = r.str(wt, "node_name")?,
                4 => m.network_id = r.str(wt, "network_id")?,
                5 => m.table_name = r.str(wt, "table_name")?,
                6 => m.key = r.str(wt, "key")?,
                7 => m.value = r.bytes(wt, "value")?,
                8 => m.residual_reap_time = r.int32(wt, "residual_reap_time")?,
                _ => r.skip(wt)?,
            }
        }
        Ok(m)
    }

    /// Decodes a GossipMessage that must hold a TABLE_EVENT.
    pub fn decode_gossip(buf: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode(gossip_data(buf, MessageType::TABLE_EVENT)?)
    }

    pub fn into_owned(self) -> TableEvent {
        TableEvent {
            r#type: self.r#type,
            l_time: self.l_time,
            node_name: self.node_name.to_owned(),
            network_id: self.network_id.to_owned(),
            table_name: self.table_name.to_owned(),
            key: self.key.to_owned(),
            value: self.value.to_vec(),
            residual_reap_time: self.residual_reap_time,
        }
    }
}

impl TableEvent {
    pub fn as_ref(&self) -> TableEventRef<'_> {
        TableEventRef {
            r#type: self.r#type,
            l_time: self.l_time,
            node_name: &self.node_name,
            network_id: &self.network_id,
            table_name: &self.table_name,
            key: &self.key,
            value: &self.value,
            residual_reap_time: self.residual_reap_time,
        }
    }
}

impl Encode for TableEvent {
    #[inline]
    fn encoded_len(&self) -> usize {
        self.as_ref().encoded_len()
    }

    #[inline]
    fn write_to(&self, out: &mut Vec<u8>) {
        self.as_ref().write_to(out)
    }
}

impl Payload for TableEvent {
    const MESSAGE_TYPE: MessageType = MessageType::TABLE_EVENT;
}

impl Decode for TableEvent {
    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        TableEventRef::decode(buf).map(TableEventRef::into_owned)
    }
}

// ---------------------------------------------------------------------------
// BulkSyncMessage.

impl Encode for BulkSyncMessage {
    fn encoded_len(&self) -> usize {
        varint_field_len(self.l_time)
            + varint_field_len(u64::from(self.unsolicited))
            + bytes_field_len(self.node_name.len())
            + self
                .networks
                .iter()
                .map(|n| repeated_len(n.len()))
                .sum::<usize>()
            + bytes_field_len(self.payload.len())
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        put_varint_field(out, key(1, WT_VARINT), self.l_time);
        put_varint_field(out, key(2, WT_VARINT), u64::from(self.unsolicited));
        put_bytes_field(out, key(3, WT_LEN), self.node_name.as_bytes());
        for n in &self.networks {
            put_repeated(out, key(4, WT_LEN), n.as_bytes());
        }
        put_bytes_field(out, key(5, WT_LEN), &self.payload);
    }
}

impl Payload for BulkSyncMessage {
    const MESSAGE_TYPE: MessageType = MessageType::BULK_SYNC;
}

impl<'a> BulkSyncMessageRef<'a> {
    /// Decodes without copying: strings and payload borrow from `buf`.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(buf, "BulkSyncMessage");
        let mut m = BulkSyncMessageRef::default();
        while r.more() {
            let (field, wt) = r.key()?;
            match field {
                1 => m.l_time = r.uint(wt, "l_time")?,
                2 => m.unsolicited = r.bool(wt, "unsolicited")?,
                3 => m.node_name = r.str(wt, "node_name")?,
                4 => m.networks.push(r.str(wt, "networks")?),
                5 => m.payload = r.bytes(wt, "payload")?,
                _ => r.skip(wt)?,
            }
        }
        Ok(m)
    }

    pub fn into_owned(self) -> BulkSyncMessage {
        BulkSyncMessage {
            l_time: self.l_time,
            unsolicited: self.unsolicited,
            node_name: self.node_name.to_owned(),
            networks: self.networks.into_iter().map(str::to_owned).collect(),
            payload: self.payload.to_vec(),
        }
    }
}

impl Decode for BulkSyncMessage {
    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        BulkSyncMessageRef::decode(buf).map(BulkSyncMessageRef::into_owned)
    }
}

// ---------------------------------------------------------------------------
// CompoundMessage.

impl Encode for SimpleMessage {
    fn encoded_len(&self) -> usize {
        bytes_field_len(self.payload.len())
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        put_bytes_field(out, key(1, WT_LEN), &self.payload);
    }
}

/// The payload of one encoded SimpleMessage (the last field 1 wins).
fn simple_payload(buf: &[u8]) -> Result<&[u8], DecodeError> {
    let mut r = Reader::new(buf, "SimpleMessage");
    let mut payload: &[u8] = &[];
    while r.more() {
        let (field, wt) = r.key()?;
        match field {
            1 => payload = r.bytes(wt, "Payload")?,
            _ => r.skip(wt)?,
        }
    }
    Ok(payload)
}

impl Decode for SimpleMessage {
    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        simple_payload(buf).map(|p| SimpleMessage {
            payload: p.to_vec(),
        })
    }
}

/// Size of a CompoundMessage holding `parts`.
fn compound_len<B: AsRef<[u8]>>(parts: &[B]) -> usize {
    parts
        .iter()
        .map(|p| repeated_len(bytes_field_len(p.as_ref().len())))
        .sum()
}

fn put_compound<B: AsRef<[u8]>>(out: &mut Vec<u8>, parts: &[B]) {
    for p in parts {
        let p = p.as_ref();
        out.push(key(1, WT_LEN));
        put_varint(out, bytes_field_len(p.len()) as u64);
        put_bytes_field(out, key(1, WT_LEN), p);
    }
}

impl Encode for CompoundMessage {
    fn encoded_len(&self) -> usize {
        self.messages
            .iter()
            .map(|m| repeated_len(m.encoded_len()))
            .sum()
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        for m in &self.messages {
            out.push(key(1, WT_LEN));
            put_varint(out, m.encoded_len() as u64);
            m.write_to(out);
        }
    }
}

impl Payload for CompoundMessage {
    const MESSAGE_TYPE: MessageType = MessageType::COMPOUND;
}

impl Decode for CompoundMessage {
    fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        Ok(CompoundMessage {
            messages: split_compound(buf)?
                .into_iter()
                .map(|p| SimpleMessage {
                    payload: p.to_vec(),
                })
                .collect(),
        })
    }
}

/// Builds `GossipMessage{COMPOUND, CompoundMessage{parts}}` from already-encoded
/// GossipMessages, in one allocation (libnetwork's `makeCompoundMessage`).
pub fn make_compound<B: AsRef<[u8]>>(parts: &[B]) -> Vec<u8> {
    let inner = compound_len(parts);
    let mut out = Vec::with_capacity(gossip_len(MessageType::COMPOUND, inner));
    put_gossip_header(&mut out, MessageType::COMPOUND, inner);
    put_compound(&mut out, parts);
    out
}

/// The parts of an encoded CompoundMessage (the `data` of a COMPOUND
/// GossipMessage), borrowed from `data` (libnetwork's `decodeCompoundMessage`).
pub fn split_compound(data: &[u8]) -> Result<Vec<&[u8]>, DecodeError> {
    let mut r = Reader::new(data, "CompoundMessage");
    // Sized for parts of ~100 bytes (table events): growing one push at a
    // time was a fifth of the simulator's allocations.
    let mut parts = Vec::with_capacity((data.len() / 96).clamp(1, 128));
    while r.more() {
        let (field, wt) = r.key()?;
        match field {
            1 => parts.push(simple_payload(r.bytes(wt, "messages")?)?),
            _ => r.skip(wt)?,
        }
    }
    Ok(parts)
}

/// Like [`split_compound`], from a whole GossipMessage that must be a COMPOUND.
pub fn split_compound_gossip(buf: &[u8]) -> Result<Vec<&[u8]>, DecodeError> {
    split_compound(gossip_data(buf, MessageType::COMPOUND)?)
}

/// The payload of a whole GossipMessage that must be of type `expected`.
fn gossip_data(buf: &[u8], expected: MessageType) -> Result<&[u8], DecodeError> {
    let g = GossipMessageRef::decode(buf)?;
    if g.r#type != expected {
        return Err(DecodeError::UnexpectedMessageType { expected, found: g.r#type });
    }
    Ok(g.data)
}

// ---------------------------------------------------------------------------
// Message: any payload, and the one-call GossipMessage decoder.

impl Message {
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::NetworkEvent(_) => MessageType::NETWORK_EVENT,
            Message::TableEvent(_) => MessageType::TABLE_EVENT,
            Message::PushPull(_) => MessageType::PUSH_PULL,
            Message::BulkSync(_) => MessageType::BULK_SYNC,
            Message::Compound(_) => MessageType::COMPOUND,
            Message::NodeEvent(_) => MessageType::NODE_EVENT,
        }
    }

    /// Decodes `data` as the message `t` says it is.
    pub fn decode_payload(t: MessageType, data: &[u8]) -> Result<Self, DecodeError> {
        Ok(match t {
            MessageType::NETWORK_EVENT => Message::NetworkEvent(NetworkEvent::decode(data)?),
            MessageType::TABLE_EVENT => Message::TableEvent(TableEvent::decode(data)?),
            MessageType::PUSH_PULL => Message::PushPull(NetworkPushPull::decode(data)?),
            MessageType::BULK_SYNC => Message::BulkSync(BulkSyncMessage::decode(data)?),
            MessageType::COMPOUND => Message::Compound(CompoundMessage::decode(data)?),
            MessageType::NODE_EVENT => Message::NodeEvent(NodeEvent::decode(data)?),
            other => return Err(DecodeError::UnknownMessageType(other.0)),
        })
    }

    /// Encodes as `GossipMessage{type, data: self}`, appending to `out`.
    pub fn encode_gossip_into(&self, out: &mut Vec<u8>) {
        match self {
            Message::NetworkEvent(m) => m.encode_gossip_into(out),
            Message::TableEvent(m) => m.encode_gossip_into(out),
            Message::PushPull(m) => m.encode_gossip_into(out),
            Message::BulkSync(m) => m.encode_gossip_into(out),
            Message::Compound(m) => m.encode_gossip_into(out),
            Message::NodeEvent(m) => m.encode_gossip_into(out),
        }
    }

    /// `GossipMessage{type, data: self}` in a new vector of exactly the right size.
    pub fn encode_gossip(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_gossip_into(&mut out);
        out
    }
}

impl Encode for Message {
    fn encoded_len(&self) -> usize {
        match self {
            Message::NetworkEvent(m) => m.encoded_len(),
            Message::TableEvent(m) => m.encoded_len(),
            Message::PushPull(m) => m.encoded_len(),
            Message::BulkSync(m) => m.encoded_len(),
            Message::Compound(m) => m.encoded_len(),
            Message::NodeEvent(m) => m.encoded_len(),
        }
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Message::NetworkEvent(m) => m.write_to(out),
            Message::TableEvent(m) => m.write_to(out),
            Message::PushPull(m) => m.write_to(out),
            Message::BulkSync(m) => m.write_to(out),
            Message::Compound(m) => m.write_to(out),
            Message::NodeEvent(m) => m.write_to(out),
        }
    }
}

/// Decodes a GossipMessage and the message inside it. INVALID and unknown
/// types are [`DecodeError::UnknownMessageType`] (networkdb drops those).
pub fn decode_gossip(buf: &[u8]) -> Result<Message, DecodeError> {
    let g = GossipMessageRef::decode(buf)?;
    Message::decode_payload(g.r#type, g.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_len_matches_encoding() {
        let mut probes = vec![0u64, 1, 127, 128, 16383, 16384, u64::MAX, u64::MAX >> 1];
        probes.extend((0..64).map(|b| 1u64 << b));
        probes.extend((1..64).map(|b| (1u64 << b) - 1));
        for v in probes {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
            let mut r = Reader::new(&out, "t");
            assert_eq!(r.varint(), Ok(v));
            assert!(!r.more());
        }
    }

    #[test]
    fn negative_int32_is_ten_bytes_and_round_trips() {
        let ev = TableEvent {
            r#type: TableEventType(-1),
            residual_reap_time: i32::MIN,
            ..Default::default()
        };
        let b = ev.encode();
        assert_eq!(b.len(), 22);
        assert_eq!(b.len(), ev.encoded_len());
        assert_eq!(TableEvent::decode(&b).unwrap(), ev);
    }

    #[test]
    fn varint_of_ten_bytes_drops_high_bits_eleven_overflow() {
        // Go accepts 10 bytes and keeps the low 64 bits.
        let ten = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert_eq!(Reader::new(&ten, "t").varint(), Ok(u64::MAX));
        let eleven = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert_eq!(
            Reader::new(&eleven, "t").varint(),
            Err(DecodeError::VarintOverflow { message: "t" })
        );
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        let mut b = vec![
            0x48, 0x96, 0x01, // field 9 varint
            0x51, 1, 2, 3, 4, 5, 6, 7, 8, // field 10 fixed64
            0x5a, 0x02, 0xaa, 0xbb, // field 11 bytes
            0x63, // field 12 start group
            0x08, 0x01, // field 1 varint inside
            0x6b, // field 13 nested start group
            0x6c, // its end
            0x64, // field 12 end group
            0x6d, 1, 2, 3, 4, // field 13 fixed32
        ];
        b.extend_from_slice(&[0x10, 0x05]); // l_time = 5
        let ev = NodeEvent::decode(&b).unwrap();
        assert_eq!(ev.l_time, 5);
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(
            NodeEvent::decode(&[0x1a, 0x05, b'a']),
            Err(DecodeError::Truncated {
                message: "NodeEvent"
            })
        );
        assert_eq!(
            NodeEvent::decode(&[0x1a, 0x01, 0xff]),
            Err(DecodeError::InvalidUtf8 {
                message: "NodeEvent",
                field: "node_name"
            })
        );
        assert_eq!(
            NodeEvent::decode(&[0x12, 0x00]),
            Err(DecodeError::WrongWireType {
                message: "NodeEvent",
                field: "l_time",
                wire_type: 2
            })
        );
        assert_eq!(
            NodeEvent::decode(&[0x00, 0x00]),
            Err(DecodeError::InvalidTag {
                message: "NodeEvent",
                tag: 0
            })
        );
        assert_eq!(
            NodeEvent::decode(&[0x0c]),
            Err(DecodeError::UnexpectedEndGroup {
                message: "NodeEvent"
            })
        );
        assert_eq!(
            NodeEvent::decode(&[0x4e]),
            Err(DecodeError::InvalidWireType {
                message: "NodeEvent",
                wire_type: 6
            })
        );
        assert_eq!(
            NodeEvent::decode(&[0x4b, 0x08]),
            Err(DecodeError::Truncated {
                message: "NodeEvent"
            })
        );
        assert_eq!(
            decode_gossip(&[0x08, 0x07]),
            Err(DecodeError::UnknownMessageType(7))
        );
        assert_eq!(decode_gossip(&[]), Err(DecodeError::UnknownMessageType(0)));
        let e = split_compound_gossip(&[0x08, 0x02]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "GossipMessage: expected type COMPOUND, found TABLE_EVENT"
        );
        assert_eq!(
            DecodeError::InvalidUtf8 {
                message: "TableEvent",
                field: "key"
            }
            .to_string(),
            "TableEvent: field key is not valid UTF-8"
        );
    }

    #[test]
    fn field_numbers_are_read_as_go_reads_them() {
        // int32(tag >> 3): 2^32 + 2 is field 2 (l_time); 2^31 is negative.
        let mut b = Vec::new();
        put_varint(&mut b, ((1u64 << 32) + 2) << 3);
        b.push(0x07);
        assert_eq!(NodeEvent::decode(&b).unwrap().l_time, 7);
        let mut b = Vec::new();
        put_varint(&mut b, (1u64 << 31) << 3);
        b.push(0x07);
        assert!(matches!(
            NodeEvent::decode(&b),
            Err(DecodeError::InvalidTag { .. })
        ));
        // Inside a group any key is skipped, field 0 included.
        assert_eq!(
            NodeEvent::decode(&[0x4b, 0x00, 0x01, 0x4c]),
            Ok(NodeEvent::default())
        );
    }

    #[test]
    fn last_scalar_wins_and_repeated_appends() {
        let b = [0x08, 0x01, 0x08, 0x02, 0x22, 0x01, b'a', 0x22, 0x00];
        let m = BulkSyncMessage::decode(&b).unwrap();
        assert_eq!(m.l_time, 2);
        assert_eq!(m.networks, vec!["a".to_string(), String::new()]);
        assert_eq!(m.encode(), [0x08, 0x02, 0x22, 0x01, b'a', 0x22, 0x00]);
    }

    // ---- the borrowed decoders against the owned ones they replaced -----------

    use proptest::prelude::*;

    /// The decoders as they were before reading in place (every string copied
    /// out): the reference the borrowed ones must match.
    fn owned_entry(buf: &[u8]) -> Result<NetworkEntry, DecodeError> {
        let mut r = Reader::new(buf, "NetworkEntry");
        let mut m = NetworkEntry::default();
        while r.more() {
            let (field, wt) = r.key()?;
            match field {
                1 => m.network_id = r.str(wt, "network_id")?.to_owned(),
                2 => m.l_time = r.uint(wt, "l_time")?,
                3 => m.node_name = r.str(wt, "node_name")?.to_owned(),
                4 => m.leaving = r.bool(wt, "leaving")?,
                _ => r.skip(wt)?,
            }
        }
        Ok(m)
    }

    fn owned_push_pull(buf: &[u8]) -> Result<NetworkPushPull, DecodeError> {
        let mut r = Reader::new(buf, "NetworkPushPull");
        let mut m = NetworkPushPull::default();
        while r.more() {
            let (field, wt) = r.key()?;
            match field {
                1 => m.l_time = r.uint(wt, "l_time")?,
                2 => m.networks.push(owned_entry(r.bytes(wt, "networks")?)?),
                3 => m.node_name = r.str(wt, "node_name")?.to_owned(),
                _ => r.skip(wt)?,
            }
        }
        Ok(m)
    }

    fn owned_bulk_sync(buf: &[u8]) -> Result<BulkSyncMessage, DecodeError> {
        let mut r = Reader::new(buf, "BulkSyncMessage");
        let mut m = BulkSyncMessage::default();
        while r.more() {
            let (field, wt) = r.key()?;
            match field {
                1 => m.l_time = r.uint(wt, "l_time")?,
                2 => m.unsolicited = r.bool(wt, "unsolicited")?,
                3 => m.node_name = r.str(wt, "node_name")?.to_owned(),
                4 => m.networks.push(r.str(wt, "networks")?.to_owned()),
                5 => m.payload = r.bytes(wt, "payload")?.to_vec(),
                _ => r.skip(wt)?,
            }
        }
        Ok(m)
    }

    fn arb_name() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z0-9]{0,6}", ".{0,4}"]
    }

    fn arb_push_pull() -> impl Strategy<Value = NetworkPushPull> {
        let entry = (arb_name(), any::<u64>(), arb_name(), any::<bool>()).prop_map(
            |(network_id, l_time, node_name, leaving)| NetworkEntry {
                network_id,
                l_time,
                node_name,
                leaving,
            },
        );
        (
            any::<u64>(),
            proptest::collection::vec(entry, 0..6),
            arb_name(),
        )
            .prop_map(|(l_time, networks, node_name)| NetworkPushPull {
                l_time,
                networks,
                node_name,
            })
    }

    fn arb_bulk_sync() -> impl Strategy<Value = BulkSyncMessage> {
        (
            any::<u64>(),
            any::<bool>(),
            arb_name(),
            proptest::collection::vec(arb_name(), 0..4),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(l_time, unsolicited, node_name, networks, payload)| {
                BulkSyncMessage {
                    l_time,
                    unsolicited,
                    node_name,
                    networks,
                    payload,
                }
            })
    }

    /// An encoding with a few bytes changed and maybe cut short (often still
    /// valid, or invalid in one field), or arbitrary bytes.
    fn mangled(encoded: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
        let changed = (
            encoded,
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(mut b, flips, cut)| {
                for (i, v) in flips {
                    if !b.is_empty() {
                        let n = b.len();
                        b[i.index(n)] = v;
                    }
                }
                if cut.index(4) == 0 {
                    b.truncate(cut.index(b.len() + 1));
                }
                b
            });
        prop_oneof![3 => changed, 1 => proptest::collection::vec(any::<u8>(), 0..120)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn borrowed_push_pull_decoder_matches_the_owned_one(
            buf in mangled(arb_push_pull().prop_map(|p| p.encode())),
        ) {
            let want = owned_push_pull(&buf);
            prop_assert_eq!(NetworkPushPullRef::decode(&buf).map(NetworkPushPullRef::into_owned), want.clone());
            prop_assert_eq!(NetworkPushPull::decode(&buf), want);
        }

        #[test]
        fn borrowed_push_pull_gossip_is_what_decode_gossip_calls_a_push_pull(
            buf in mangled(arb_push_pull().prop_map(|p| p.encode_gossip())),
        ) {
            let want = match decode_gossip(&buf) {
                Ok(Message::PushPull(p)) => Some(p),
                _ => None,
            };
            let got = NetworkPushPullRef::decode_gossip(&buf).ok().map(NetworkPushPullRef::into_owned);
            prop_assert_eq!(got, want);
        }

        #[test]
        fn push_pull_from_views_is_the_owned_encoding(p in arb_push_pull()) {
            let views = NetworkPushPullRef {
                l_time: p.l_time,
                networks: p.networks.iter().map(NetworkEntry::as_ref).collect(),
                node_name: &p.node_name,
            };
            prop_assert_eq!(views.encode_gossip(), p.encode_gossip());
            prop_assert_eq!(views.encoded_len(), views.encode().len());
        }

        #[test]
        fn borrowed_bulk_sync_decoder_matches_the_owned_one(
            buf in mangled(arb_bulk_sync().prop_map(|b| b.encode())),
        ) {
            let want = owned_bulk_sync(&buf);
            prop_assert_eq!(BulkSyncMessageRef::decode(&buf).map(BulkSyncMessageRef::into_owned), want.clone());
            prop_assert_eq!(BulkSyncMessage::decode(&buf), want);
        }

        #[test]
        fn borrowed_entry_decoder_matches_the_owned_one(
            buf in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let want = owned_entry(&buf);
            prop_assert_eq!(NetworkEntryRef::decode(&buf).map(NetworkEntryRef::into_owned), want.clone());
            prop_assert_eq!(NetworkEntry::decode(&buf), want);
        }
    }

    #[test]
    fn enum_debug_names() {
        assert_eq!(format!("{:?}", MessageType::BULK_SYNC), "BULK_SYNC");
        assert_eq!(format!("{:?}", TableEventType(9)), "TableEventType(9)");
        assert_eq!(NodeEventType::LEAVE.name(), Some("LEAVE"));
    }
}
