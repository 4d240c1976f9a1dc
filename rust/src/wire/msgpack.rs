//! A small msgpack writer and reader in the style of go-msgpack 0.5.5 with a
//! default `MsgpackHandle` (what memberlist 0.2.2 uses).
//!
//! Writing, as go-msgpack does it (checked against bytes from the real Go
//! encoder, see `testdata/memberlist-golden.txt`, records `ints`):
//! - every integer in its smallest form: 0..=127 positive fixint, then 0xcc
//!   (u8), 0xcd (u16), 0xce (u32), 0xcf (u64). This holds for Go's unsigned
//!   types *and* for non-negative `int`s (never 0xd0..0xd3 for them); negative
//!   `int`s are -32..=-1 negative fixint, then 0xd0/0xd1/0xd2/0xd3;
//! - bools 0xc2 / 0xc3; a nil slice 0xc0;
//! - strings and byte slices alike in the old "raw" family: fixraw 0xa0..=0xbf
//!   (< 32 bytes), 0xda + u16 length, 0xdb + u32 length. Never str8 (0xd9) or
//!   bin (0xc4..=0xc6);
//! - structs as maps keyed by the Go field names, the keys **sorted by name**
//!   (go-msgpack encodes `sfi`, its name-sorted field list; declaration order
//!   is only used for structs encoded as arrays). Fields tagged `omitempty`
//!   are left out when empty, and the map length counts only what is written.
//!
//! Reading is lenient: any integer width, str8 and bin for strings/bytes, nil
//! for an empty value, unknown map keys skipped, structs sent as arrays
//! (declaration order). It never panics; running out of input is
//! `WireError::Truncated`.

use super::memberlist::WireError;

/// Writes a map header (fixmap, map16, map32).
pub fn write_map_len(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x80 | n as u8);
    } else if n <= 0xffff {
        out.push(0xde);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Writes an array header (fixarray, array16, array32).
pub fn write_array_len(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if n <= 0xffff {
        out.push(0xdc);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// An unsigned integer in its smallest form (go-msgpack's `encodeUint`).
pub fn write_uint(out: &mut Vec<u8>, v: u64) {
    if v <= 0x7f {
        out.push(v as u8);
    } else if v <= 0xff {
        out.extend_from_slice(&[0xcc, v as u8]);
    } else if v <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// A signed integer (go-msgpack's `encodeInt`): non-negative values as
/// unsigned, negative ones in the smallest signed form.
pub fn write_int(out: &mut Vec<u8>, v: i64) {
    if v >= 0 {
        write_uint(out, v as u64);
    } else if v >= -32 {
        out.push(v as u8);
    } else if v >= i64::from(i8::MIN) {
        out.extend_from_slice(&[0xd0, v as u8]);
    } else if v >= i64::from(i16::MIN) {
        out.push(0xd1);
        out.extend_from_slice(&(v as i16).to_be_bytes());
    } else if v >= i64::from(i32::MIN) {
        out.push(0xd2);
        out.extend_from_slice(&(v as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

pub fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.push(if b { 0xc3 } else { 0xc2 });
}

pub fn write_nil(out: &mut Vec<u8>) {
    out.push(0xc0);
}

/// A string or byte slice in the raw family (fixraw, raw16, raw32).
pub fn write_raw(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

pub fn write_str(out: &mut Vec<u8>, s: &str) {
    write_raw(out, s.as_bytes());
}

/// A Go `[]byte` struct field: Go writes a nil slice as nil (0xc0). Rust has
/// no nil/empty distinction, so an empty slice is written as Go's zero value.
pub fn write_bytes_field(out: &mut Vec<u8>, b: &[u8]) {
    if b.is_empty() {
        write_nil(out);
    } else {
        write_raw(out, b);
    }
}

/// The most values `skip` keeps track of at once (it is not recursive, so
/// nesting costs no stack; each pending value needs at least one more byte).
const MAX_PENDING: u64 = u32::MAX as u64;

/// What a map or array header announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Map(usize),
    Array(usize),
    Nil,
}

/// The position of `key` in `fields`. Field names of a struct mostly differ
/// in length or first byte, so those are compared before the bytes: a push/pull
/// reads seven keys for each of its (thousands of) node states, and a `memcmp`
/// call for every candidate name was a good part of that.
#[inline]
fn field_index(fields: &[&str], key: &[u8]) -> Option<usize> {
    let Some(&first) = key.first() else {
        return fields.iter().position(|f| f.is_empty());
    };
    fields.iter().position(|f| {
        let f = f.as_bytes();
        f.len() == key.len() && f[0] == first && f == key
    })
}

/// A reader over one buffer; every method either consumes a whole value or
/// returns an error (the position is then unspecified).
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn malformed(what: &str, marker: u8) -> WireError {
    WireError::Malformed(format!(
        "msgpack: expected {what}, found marker 0x{marker:02x}"
    ))
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes not consumed yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    /// `n` raw bytes (data that follows a msgpack header on the wire).
    pub fn read_raw(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        self.take(n)
    }

    fn byte(&mut self) -> Result<u8, WireError> {
        let b = *self.buf.get(self.pos).ok_or(WireError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn peek(&self) -> Result<u8, WireError> {
        self.buf.get(self.pos).copied().ok_or(WireError::Truncated)
    }

    fn be(&mut self, n: usize) -> Result<u64, WireError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// Is the next value nil? (Does not consume it.)
    pub fn next_is_nil(&self) -> Result<bool, WireError> {
        Ok(self.peek()? == 0xc0)
    }

    /// Any integer, as i128 so every msgpack integer fits; nil reads as 0.
    fn int_any(&mut self) -> Result<i128, WireError> {
        let m = self.byte()?;
        Ok(match m {
            0x00..=0x7f => i128::from(m),
            0xe0..=0xff => i128::from(m as i8),
            0xc0 => 0,
            0xcc => i128::from(self.be(1)?),
            0xcd => i128::from(self.be(2)?),
            0xce => i128::from(self.be(4)?),
            0xcf => i128::from(self.be(8)?),
            0xd0 => i128::from(self.be(1)? as u8 as i8),
            0xd1 => i128::from(self.be(2)? as u16 as i16),
            0xd2 => i128::from(self.be(4)? as u32 as i32),
            0xd3 => i128::from(self.be(8)? as i64),
            _ => return Err(malformed("an integer", m)),
        })
    }

    /// An unsigned integer of at most `max`, in any msgpack integer form.
    pub fn read_uint(&mut self, max: u64) -> Result<u64, WireError> {
        let v = self.int_any()?;
        if v < 0 || v > i128::from(max) {
            return Err(WireError::Malformed(format!(
                "msgpack: integer {v} out of range 0..={max}"
            )));
        }
        Ok(v as u64)
    }

    pub fn read_u8(&mut self) -> Result<u8, WireError> {
        Ok(self.read_uint(u64::from(u8::MAX))? as u8)
    }

    pub fn read_u16(&mut self) -> Result<u16, WireError> {
        Ok(self.read_uint(u64::from(u16::MAX))? as u16)
    }

    pub fn read_u32(&mut self) -> Result<u32, WireError> {
        Ok(self.read_uint(u64::from(u32::MAX))? as u32)
    }

    /// A signed integer (Go's 64-bit `int`).
    pub fn read_i64(&mut self) -> Result<i64, WireError> {
        let v = self.int_any()?;
        i64::try_from(v)
            .map_err(|_| WireError::Malformed(format!("msgpack: integer {v} out of range for int")))
    }

    /// A bool; nil reads as false.
    pub fn read_bool(&mut self) -> Result<bool, WireError> {
        match self.byte()? {
            0xc2 | 0xc0 => Ok(false),
            0xc3 => Ok(true),
            m => Err(malformed("a bool", m)),
        }
    }

    /// A string or byte slice: raw/str (fix, 8, 16, 32) or bin (8, 16, 32);
    /// nil reads as empty.
    pub fn read_bytes(&mut self) -> Result<&'a [u8], WireError> {
        let m = self.byte()?;
        let n = match m {
            0xa0..=0xbf => usize::from(m & 0x1f),
            0xc0 => 0,
            0xd9 | 0xc4 => self.be(1)? as usize,
            0xda | 0xc5 => self.be(2)? as usize,
            0xdb | 0xc6 => self.be(4)? as usize,
            _ => return Err(malformed("a string or bytes", m)),
        };
        self.take(n)
    }

    /// A string; bytes that are not UTF-8 are replaced (U+FFFD), as Go
    /// strings may hold any bytes.
    pub fn read_string(&mut self) -> Result<String, WireError> {
        Ok(String::from_utf8_lossy(self.read_bytes()?).into_owned())
    }

    /// A map or array header, or nil.
    pub fn read_container(&mut self) -> Result<Container, WireError> {
        let m = self.byte()?;
        Ok(match m {
            0x80..=0x8f => Container::Map(usize::from(m & 0x0f)),
            0x90..=0x9f => Container::Array(usize::from(m & 0x0f)),
            0xde => Container::Map(self.be(2)? as usize),
            0xdf => Container::Map(self.be(4)? as usize),
            0xdc => Container::Array(self.be(2)? as usize),
            0xdd => Container::Array(self.be(4)? as usize),
            0xc0 => Container::Nil,
            _ => return Err(malformed("a map or array", m)),
        })
    }

    /// Skips one complete value of any type (nested containers included)
    /// without recursion.
    pub fn skip(&mut self) -> Result<(), WireError> {
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let m = self.byte()?;
            let (data, more): (usize, u64) = match m {
                0x00..=0x7f | 0xe0..=0xff | 0xc0..=0xc3 => (0, 0),
                0x80..=0x8f => (0, 2 * u64::from(m & 0x0f)),
                0x90..=0x9f => (0, u64::from(m & 0x0f)),
                0xa0..=0xbf => (usize::from(m & 0x1f), 0),
                0xc4 | 0xd9 => (self.be(1)? as usize, 0),
                0xc5 | 0xda => (self.be(2)? as usize, 0),
                0xc6 | 0xdb => (self.be(4)? as usize, 0),
                0xc7 => (self.be(1)? as usize + 1, 0),
                0xc8 => (self.be(2)? as usize + 1, 0),
                0xc9 => (self.be(4)? as usize + 1, 0),
                0xca => (4, 0),
                0xcb => (8, 0),
                0xcc | 0xd0 => (1, 0),
                0xcd | 0xd1 => (2, 0),
                0xce | 0xd2 => (4, 0),
                0xcf | 0xd3 => (8, 0),
                0xd4 => (2, 0),
                0xd5 => (3, 0),
                0xd6 => (5, 0),
                0xd7 => (9, 0),
                0xd8 => (17, 0),
                0xdc => (0, self.be(2)?),
                0xdd => (0, self.be(4)?),
                0xde => (0, 2 * self.be(2)?),
                0xdf => (0, 2 * self.be(4)?),
            };
            self.take(data)?;
            // Every pending value needs at least one more byte, so more than
            // the bytes left can only end in Truncated; stop early.
            pending = pending.saturating_add(more);
            if pending > MAX_PENDING || pending > self.rest().len() as u64 {
                return Err(WireError::Truncated);
            }
        }
        Ok(())
    }

    /// Reads a struct written as a map keyed by field name (or, leniently, an
    /// array in declaration order, or nil). `fields` lists the Go field names
    /// in declaration order; `field(i, reader)` must consume the value of
    /// field `i`. Unknown keys (and extra array items) are skipped.
    pub fn read_struct<F>(&mut self, fields: &[&str], mut field: F) -> Result<(), WireError>
    where
        F: FnMut(usize, &mut Reader<'a>) -> Result<(), WireError>,
    {
        match self.read_container()? {
            Container::Nil => Ok(()),
            Container::Map(n) => {
                for _ in 0..n {
                    let key = match self.peek()? {
                        0xa0..=0xbf | 0xd9 | 0xda | 0xdb | 0xc4 | 0xc5 | 0xc6 => {
                            Some(self.read_bytes()?)
                        }
                        _ => {
                            self.skip()?;
                            None
                        }
                    };
                    match key.and_then(|k| field_index(fields, k)) {
                        Some(i) => field(i, self)?,
                        None => self.skip()?,
                    }
                }
                Ok(())
            }
            Container::Array(n) => {
                for i in 0..n {
                    if i < fields.len() {
                        field(i, self)?;
                    } else {
                        self.skip()?;
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::wire::testutil::{hex, GOLDEN};

    /// go-msgpack's writing of single values, from the Go golden file
    /// (`ints GO-TYPE VALUE HEX`).
    #[test]
    fn ints_match_go() {
        let mut n = 0;
        for line in GOLDEN.lines().filter(|l| l.starts_with("ints ")) {
            let f: Vec<&str> = line.split(' ').collect();
            let mut out = Vec::new();
            match (f[1], f[2]) {
                ("uint32" | "uint16" | "uint8", v) => write_uint(&mut out, v.parse().unwrap()),
                ("int", v) => write_int(&mut out, v.parse().unwrap()),
                ("bool", v) => write_bool(&mut out, v == "true"),
                // Go writes a top-level nil []byte as a0, but nil inside a struct
                // as c0; the struct case is what memberlist produces (see the
                // `msg ack_nil` record).
                ("bytes" | "string", _) => write_raw(&mut out, b""),
                other => panic!("unknown ints record {other:?}"),
            }
            let want = f.last().unwrap();
            assert_eq!(&hex(&out), want, "{line}");
            // and read back
            let mut r = Reader::new(&out);
            match f[1] {
                "int" => assert_eq!(r.read_i64().unwrap().to_string(), f[2]),
                "bool" => assert_eq!(r.read_bool().unwrap().to_string(), f[2]),
                "bytes" | "string" => assert_eq!(r.read_bytes().unwrap(), b""),
                _ => assert_eq!(r.read_uint(u64::MAX).unwrap().to_string(), f[2]),
            }
            assert_eq!(r.position(), out.len());
            n += 1;
        }
        assert!(n > 40);
    }

    #[test]
    fn raw_lengths() {
        for (n, head) in [
            (0usize, "a0"),
            (31, "bf"),
            (32, "da0020"),
            (65535, "daffff"),
            (65536, "db00010000"),
        ] {
            let mut out = Vec::new();
            write_raw(&mut out, &vec![b'x'; n]);
            assert!(hex(&out).starts_with(head), "{n}");
            assert_eq!(out.len(), n + head.len() / 2);
            let mut r = Reader::new(&out);
            assert_eq!(r.read_bytes().unwrap().len(), n);
        }
    }

    #[test]
    fn lenient_reading() {
        // str8 and bin8 read as bytes
        assert_eq!(
            Reader::new(&[0xd9, 2, b'h', b'i']).read_bytes().unwrap(),
            b"hi"
        );
        assert_eq!(Reader::new(&[0xc4, 1, 7]).read_bytes().unwrap(), [7]);
        assert_eq!(Reader::new(&[0xc0]).read_bytes().unwrap(), b"");
        // ints of any width
        assert_eq!(
            Reader::new(&[0xcf, 0, 0, 0, 0, 0, 0, 0, 5])
                .read_u32()
                .unwrap(),
            5
        );
        assert_eq!(Reader::new(&[0xd0, 5]).read_u16().unwrap(), 5);
        assert_eq!(Reader::new(&[0xc0]).read_u32().unwrap(), 0);
        assert!(matches!(
            Reader::new(&[0xff]).read_u32(),
            Err(WireError::Malformed(_))
        ));
        assert!(matches!(
            Reader::new(&[0xce, 0, 1, 0, 0]).read_u16(),
            Err(WireError::Malformed(_))
        ));
        assert_eq!(
            Reader::new(&[0xce, 0, 1]).read_u32(),
            Err(WireError::Truncated)
        );
        assert_eq!(
            Reader::new(&[0xdb, 0xff, 0xff, 0xff, 0xff, 1]).read_bytes(),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn skip_nested() {
        // {"a": [1, {"b": 2.5f64}], "c": fixext1}
        let v = [
            0x82, 0xa1, b'a', 0x92, 0x01, 0x81, 0xa1, b'b', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xa1,
            b'c', 0xd4, 1, 2, 0x07,
        ];
        let mut r = Reader::new(&v);
        r.skip().unwrap();
        assert_eq!(r.rest(), [0x07]);
        // a huge announced map ends in Truncated quickly
        let mut r = Reader::new(&[0xdf, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(r.skip(), Err(WireError::Truncated));
    }

    #[test]
    fn struct_from_map_array_nil() {
        let fields = ["A", "B"];
        let read = |buf: &[u8]| {
            let mut got = (0u32, String::new());
            Reader::new(buf)
                .read_struct(&fields, |i, r| {
                    match i {
                        0 => got.0 = r.read_u32()?,
                        _ => got.1 = r.read_string()?,
                    }
                    Ok(())
                })
                .map(|_| got)
        };
        // unknown key Z (with a nested value) and an int key are skipped
        let m = [
            0x84, 0xa1, b'Z', 0x91, 0x05, 0xa1, b'B', 0xa1, b'x', 0x07, 0x08, 0xa1, b'A', 0x09,
        ];
        assert_eq!(read(&m).unwrap(), (9, "x".into()));
        assert_eq!(
            read(&[0x93, 0x03, 0xa1, b'y', 0xc3]).unwrap(),
            (3, "y".into())
        );
        assert_eq!(read(&[0xc0]).unwrap(), (0, String::new()));
        assert_eq!(read(&[0x82, 0xa1, b'A']), Err(WireError::Truncated));
    }

    proptest! {
        #[test]
        fn reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&data);
            let _ = r.skip();
            let mut r = Reader::new(&data);
            let _ = r.read_struct(&["A", "B", "C"], |i, r| match i {
                0 => r.read_u32().map(|_| ()),
                1 => r.read_bytes().map(|_| ()),
                _ => r.read_bool().map(|_| ()),
            });
        }

        /// `field_index` finds what a plain search by name does (short and
        /// empty names, shared first bytes and lengths included).
        #[test]
        fn field_index_is_a_search_by_name(
            fields in proptest::collection::vec("[AB]{0,3}", 0..6),
            key in proptest::collection::vec(prop_oneof![Just(b'A'), Just(b'B'), Just(0xff)], 0..4),
        ) {
            let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            let want = fields.iter().position(|f| f.as_bytes() == &key[..]);
            prop_assert_eq!(field_index(&fields, &key), want);
        }

        #[test]
        fn int_roundtrip(v in any::<i64>(), u in any::<u64>()) {
            let mut out = Vec::new();
            write_int(&mut out, v);
            write_uint(&mut out, u);
            let mut r = Reader::new(&out);
            prop_assert_eq!(r.read_i64().unwrap(), v);
            prop_assert_eq!(r.read_uint(u64::MAX).unwrap(), u);
            prop_assert!(r.rest().is_empty());
        }
    }
}
