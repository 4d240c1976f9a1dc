//! LZW as Go's `compress/lzw` with `lzw.LSB` and `litWidth` 8, which is what
//! memberlist's `compress{Algo: 0}` messages carry.
//!
//! Stream layout: codes packed least-significant-bit first; literals 0..=255,
//! clear code 256, end code 257, new codes from 258; the code width starts at
//! 9 bits and grows to at most 12. The encoder behaves as Go's writer:
//! it opens with a clear code, and when its next free code would reach 4095
//! it writes a clear code (at the current width) and starts over with an
//! empty table and 9-bit codes. It ends with the pending code, the end code
//! and a final partial byte. The decoder follows Go's reader: when its table
//! is full it stops adding entries until a clear code comes; the input must
//! reach an end code (else `WireError::Truncated`); bytes after it are
//! ignored; output beyond a caller-given limit is refused.

use super::memberlist::WireError;

const CLEAR: u16 = 256;
const EOF: u16 = 257;
const MAX_WIDTH: u32 = 12;
/// The encoder resets when its next code would be this (Go's `maxCode`).
const MAX_CODE: u32 = (1 << MAX_WIDTH) - 1;

struct BitWriter {
    out: Vec<u8>,
    /// Pending bits, least significant first; fewer than 32 between calls.
    acc: u64,
    nbits: u32,
}

impl BitWriter {
    #[inline]
    fn put(&mut self, code: u32, width: u32) {
        self.acc |= u64::from(code) << self.nbits;
        self.nbits += width;
        if self.nbits >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.nbits -= 32;
        }
    }

    fn finish(mut self) -> Vec<u8> {
        let n = self.nbits.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..n]);
        self.out
    }
}

/// The encoder's dictionary: (prefix code, next byte) -> code, as an
/// open-addressing hash table. Slots hold `key << 12 | code`, 0 = empty (no
/// real entry is 0: codes start at 258). Only the first `1 << bits` slots are
/// in use, `bits` sized to the input so that a short packet clears (and
/// touches) a small table.
const DICT_MAX_BITS: u32 = 13; // 8192 slots for at most 3838 entries
const DICT_MIN_BITS: u32 = 6;

/// The table's size (as bits) for an input of `n` bytes (at most `n - 1`
/// entries between resets): load factor at most one half.
fn dict_bits(n: usize) -> u32 {
    let entries = n.min(MAX_CODE as usize);
    let bits = (2 * entries).next_power_of_two().trailing_zeros();
    bits.clamp(DICT_MIN_BITS, DICT_MAX_BITS)
}

thread_local! {
    /// The encoder's table, kept between calls (always all zero between
    /// them): a fresh one is a 32 KiB zeroed allocation per packet (malloc,
    /// page clearing and free showed up at ~10% of the simulator's time).
    static DICT: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Compresses `input` exactly as Go's `lzw.NewWriter(w, lzw.LSB, 8)` followed
/// by one `Write` and `Close` does.
pub fn compress(input: &[u8]) -> Vec<u8> {
    encode(input, None, &mut Vec::new())
}

/// The encoder's state right after one of its clear codes: its table empty,
/// codes 9 bits wide, and the byte at `pos` its pending code. What it wrote
/// up to there, and what it writes from there, depend only on
/// `input[..=pos]`, so an input that starts with the same bytes can be
/// compressed from here.
#[derive(Clone, Copy, Debug)]
struct Cut {
    pos: usize,
    /// The output so far: its whole bytes and the pending bits.
    out_len: usize,
    acc: u64,
    nbits: u32,
    /// Digest of the input since the previous cut (from 0 for the first),
    /// up to and including `pos`.
    digest: u128,
}

/// What a compression leaves for the next one (see [`compress_resuming`]).
#[derive(Default, Debug)]
pub struct Resume {
    out: Vec<u8>,
    cuts: Vec<Cut>,
}

/// [`compress`], resuming the previous compression kept in `memo` from its
/// last clear code whose input so far is also this input's; leaves this
/// compression in `memo`. The output is the same as `compress`'s. A node's
/// push/pull repeats most of its previous one (every member, then a user
/// state whose clock moved): LZW over the repeated part is skipped.
pub fn compress_resuming(input: &[u8], memo: &mut Resume) -> Vec<u8> {
    // Cuts are checked in order: each one's digest covers the input since
    // the one before, so all of them up to a cut matching means the whole
    // prefix does (to the digest's 128 bits).
    let mut start = 0;
    let mut kept = 0;
    for c in &memo.cuts {
        if c.pos >= input.len() || crate::fasthash::digest128(&input[start..=c.pos]) != c.digest {
            break;
        }
        start = c.pos + 1;
        kept += 1;
    }
    let mut cuts: Vec<Cut> = memo.cuts[..kept].to_vec();
    let from = cuts.last().map(|c| (*c, &memo.out[..c.out_len]));
    let out = encode(input, from, &mut cuts);
    for c in &mut cuts[kept..] {
        c.digest = crate::fasthash::digest128(&input[start..=c.pos]);
        start = c.pos + 1;
    }
    memo.cuts = cuts;
    memo.out.clear();
    memo.out.extend_from_slice(&out);
    out
}

/// The encoder: from the start of `input`, or from a cut of an earlier
/// input with the same prefix (and that input's output up to the cut).
/// Pushes a [`Cut`] (without its digest) at each clear code after the start.
fn encode(input: &[u8], from: Option<(Cut, &[u8])>, cuts: &mut Vec<Cut>) -> Vec<u8> {
    let mut slots = DICT.with(|d| d.take());
    if slots.len() < 1 << DICT_MAX_BITS {
        slots = vec![0; 1 << DICT_MAX_BITS];
    }
    // Kept in locals (not fields behind `&mut`), so that the loop does not
    // reload them on its critical path.
    let bits = dict_bits(input.len());
    let mask = (1usize << bits) - 1;
    let table = &mut slots[..=mask];
    let mut w = BitWriter {
        out: Vec::with_capacity(input.len() / 2 + 16),
        acc: 0,
        nbits: 0,
    };
    let mut width: u32 = 9;
    // The last code handed out, and the code at which the width grows.
    let mut hi = u32::from(EOF);
    let mut overflow: u32 = 512;
    // Where the loop starts: the pending code's position.
    let first = match from {
        Some((c, written)) if c.pos < input.len() => {
            w.out.extend_from_slice(written);
            w.acc = c.acc;
            w.nbits = c.nbits;
            Some(c.pos)
        }
        _ => {
            w.put(u32::from(CLEAR), width);
            (!input.is_empty()).then_some(0)
        }
    };
    if let Some(first) = first {
        let mut code = u32::from(input[first]);
        for (pos, &b) in input.iter().enumerate().skip(first + 1) {
            let key = code << 8 | u32::from(b);
            // Go's hash: two cheap operations on the critical path, where a
            // multiply and shift were four cycles.
            let mut i = ((key >> 12 ^ key) as usize) & mask;
            let found = loop {
                let s = table[i];
                if s == 0 {
                    break None;
                }
                if s >> 12 == key {
                    break Some(s & 0xfff);
                }
                i = (i + 1) & mask;
            };
            if let Some(c) = found {
                code = c;
                continue;
            }
            w.put(code, width);
            code = u32::from(b);
            // Hand out the next code; when the table is full, write a clear
            // code (at the current width) and start over, adding nothing.
            hi += 1;
            if hi == overflow {
                width += 1;
                overflow <<= 1;
            }
            if hi == MAX_CODE {
                w.put(u32::from(CLEAR), width);
                width = 9;
                hi = u32::from(EOF);
                overflow = 512;
                table.fill(0);
                cuts.push(Cut { pos, out_len: w.out.len(), acc: w.acc, nbits: w.nbits, digest: 0 });
            } else {
                // `i` is the empty slot where `key` goes.
                table[i] = key << 12 | hi;
            }
        }
        w.put(code, width);
        hi += 1;
        if hi == overflow {
            width += 1;
        }
        if hi == MAX_CODE {
            w.put(u32::from(CLEAR), width);
            width = 9;
        }
    }
    w.put(u32::from(EOF), width);
    table.fill(0);
    DICT.with(|d| d.set(slots));
    w.finish()
}

/// The decoder's table: where each code's string lies in the output so far.
/// A new code is always the previous code's string plus the next byte, which
/// is exactly what follows that string in the output, so a code's string is
/// one contiguous run of the output and decoding it is a copy from within.
/// Kept per thread (40 KiB): codes are defined before they are read, so
/// nothing needs clearing; every copy is bounds-checked anyway.
struct Spans {
    start: [usize; 1 << MAX_WIDTH],
    len: [u16; 1 << MAX_WIDTH],
}

thread_local! {
    static SPANS: std::cell::Cell<Option<Box<Spans>>> = const { std::cell::Cell::new(None) };
}

fn corrupt() -> WireError {
    WireError::Malformed("lzw: corrupt table".into())
}

/// Decompresses a Go `compress/lzw` (LSB, litWidth 8) stream. Output larger
/// than `limit` bytes is refused (a decompression bomb guard).
pub fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, WireError> {
    let mut spans = SPANS.with(|s| s.take()).unwrap_or_else(|| {
        Box::new(Spans {
            start: [0; 1 << MAX_WIDTH],
            len: [0; 1 << MAX_WIDTH],
        })
    });
    let r = decode(input, limit, &mut spans);
    SPANS.with(|s| s.set(Some(spans)));
    r
}

fn decode(input: &[u8], limit: usize, t: &mut Spans) -> Result<Vec<u8>, WireError> {
    let mut out: Vec<u8> = Vec::with_capacity(input.len().saturating_mul(3).min(limit));

    let mut bytes = input.iter();
    let mut acc: u32 = 0;
    let mut nbits: u32 = 0;
    let mut width: u32 = 9;
    let mut hi: u16 = EOF;
    let mut overflow: u16 = 512;
    // The previous code's string: (start in `out`, length).
    let mut last: Option<(usize, usize)> = None;

    loop {
        while nbits < width {
            let b = bytes.next().ok_or(WireError::Truncated)?;
            acc |= u32::from(*b) << nbits;
            nbits += 8;
        }
        let code = (acc & ((1 << width) - 1)) as u16;
        acc >>= width;
        nbits -= width;

        if code == CLEAR {
            width = 9;
            hi = EOF;
            overflow = 512;
            last = None;
            continue;
        }
        if code == EOF {
            return Ok(out);
        }
        if code > hi {
            return Err(WireError::Malformed(format!("lzw: invalid code {code}")));
        }
        let at = out.len();
        let n;
        if code < CLEAR {
            if at + 1 > limit {
                return Err(too_large(limit));
            }
            out.push(code as u8);
            n = 1;
        } else if let (true, Some((ls, ll))) = (code == hi, last) {
            // The code being defined right now: last's string + its first byte.
            n = ll + 1;
            if at + n > limit {
                return Err(too_large(limit));
            }
            if ls + ll > at {
                return Err(corrupt());
            }
            out.extend_from_within(ls..ls + ll);
            out.push(out[ls]);
        } else {
            let (s, l) = (
                t.start[usize::from(code)],
                usize::from(t.len[usize::from(code)]),
            );
            n = l;
            if at + n > limit {
                return Err(too_large(limit));
            }
            if l == 0 || s + l > at {
                return Err(corrupt());
            }
            out.extend_from_within(s..s + l);
        }
        if let Some((ls, ll)) = last {
            // The new code: last's string and the first byte of this one,
            // which follows it in the output.
            t.start[usize::from(hi)] = ls;
            t.len[usize::from(hi)] = (ll + 1).min(usize::from(u16::MAX)) as u16;
        }

        last = Some((at, n));
        hi += 1;
        if hi >= overflow {
            if width == MAX_WIDTH {
                last = None;
                hi -= 1;
            } else {
                width += 1;
                overflow <<= 1;
            }
        }
    }
}

fn too_large(limit: usize) -> WireError {
    WireError::Malformed(format!("lzw: output larger than {limit} bytes"))
}

/// A memo of recent packet decompressions, per thread. One gossip packet goes
/// to several peers (networkdb's fanout is 3), and in the simulator all of
/// them decompress the very same bytes in one process: the memo does it once.
/// LZW decoding is a pure function of its input, so a hit returns exactly
/// what decoding would; only inputs up to `MEMO_MAX_INPUT` bytes (packets)
/// are kept. A real node rarely hits and pays one hash and one copy per
/// packet.
struct Memo {
    /// A ring of `MEMO_SLOTS` decompressions.
    slots: Vec<Option<MemoSlot>>,
    next: usize,
}

/// (hash of the input, the input, the output).
type MemoSlot = (u64, Box<[u8]>, Vec<u8>);

const MEMO_SLOTS: usize = 128;
const MEMO_MAX_INPUT: usize = 4096;

thread_local! {
    static MEMO: std::cell::RefCell<Memo> = const {
        std::cell::RefCell::new(Memo { slots: Vec::new(), next: 0 })
    };
}

/// A fast hash of a whole buffer, 8 bytes at a time (not for untrusted
/// lookups: a collision only costs a compare).
fn buf_hash(b: &[u8]) -> u64 {
    let mut h: u64 = (b.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w))
            .wrapping_mul(0x100_0000_01b3)
            .rotate_left(29);
    }
    for &x in chunks.remainder() {
        h = (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3);
    }
    h ^ (h >> 31)
}

/// [`decompress`] through the per-thread memo of recent packets: the same
/// result, computed once for a packet delivered to several receivers.
pub fn decompress_memo(input: &[u8], limit: usize) -> Result<Vec<u8>, WireError> {
    if input.len() > MEMO_MAX_INPUT {
        return decompress(input, limit);
    }
    let h = buf_hash(input);
    let hit = MEMO.with(|m| {
        let m = m.borrow();
        m.slots
            .iter()
            .flatten()
            .find(|(sh, si, so)| *sh == h && **si == *input && so.len() <= limit)
            .map(|s| s.2.clone())
    });
    if let Some(out) = hit {
        return Ok(out);
    }
    let out = decompress(input, limit)?;
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.slots.len() < MEMO_SLOTS {
            m.slots.resize(MEMO_SLOTS, None);
        }
        let i = m.next;
        m.slots[i] = Some((h, input.into(), out.clone()));
        m.next = (i + 1) % MEMO_SLOTS;
    });
    Ok(out)
}

/// The first implementation (a per-code prefix chain spelt backwards when
/// decoding, a full-size table cleared per call when encoding), kept as the
/// oracle the faster one is tested against.
#[cfg(test)]
mod oracle {
    use super::{WireError, CLEAR, EOF, MAX_CODE, MAX_WIDTH};

    struct BitWriter {
        out: Vec<u8>,
        acc: u32,
        nbits: u32,
    }

    impl BitWriter {
        fn put(&mut self, code: u32, width: u32) {
            self.acc |= code << self.nbits;
            self.nbits += width;
            while self.nbits >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.nbits -= 8;
            }
        }

        fn finish(mut self) -> Vec<u8> {
            if self.nbits > 0 {
                self.out.push(self.acc as u8);
            }
            self.out
        }
    }

    /// The encoder's dictionary: (prefix code, next byte) -> code, as an
    /// open-addressing hash table. Slots hold `key << 12 | code`, 0 = empty (no
    /// real entry is 0: codes start at 258).
    struct Dict {
        slots: Vec<u32>,
    }

    impl Dict {
        const BITS: u32 = 13; // 8192 slots for at most 3838 entries
        const MASK: usize = (1 << Self::BITS) - 1;

        fn new() -> Self {
            Dict {
                slots: vec![0; 1 << Self::BITS],
            }
        }

        fn slot(key: u32) -> usize {
            (key.wrapping_mul(0x9E37_79B1) >> (32 - Self::BITS)) as usize
        }

        fn get(&self, key: u32) -> Option<u32> {
            let mut i = Self::slot(key);
            loop {
                let s = self.slots[i];
                if s == 0 {
                    return None;
                }
                if s >> 12 == key {
                    return Some(s & 0xfff);
                }
                i = (i + 1) & Self::MASK;
            }
        }

        fn insert(&mut self, key: u32, code: u32) {
            let mut i = Self::slot(key);
            while self.slots[i] != 0 {
                i = (i + 1) & Self::MASK;
            }
            self.slots[i] = key << 12 | code;
        }

        fn clear(&mut self) {
            self.slots.fill(0);
        }
    }

    struct Encoder {
        w: BitWriter,
        dict: Dict,
        width: u32,
        /// The last code handed out.
        hi: u32,
        /// The code at which the width grows.
        overflow: u32,
    }

    impl Encoder {
        /// The output; the table goes back for the next call, cleared.
        fn finish(self) -> Vec<u8> {
            let Encoder { w, mut dict, .. } = self;
            dict.clear();
            let _ = dict;
            w.finish()
        }

        /// Hands out the next code; returns false (after writing a clear code and
        /// resetting) when the table is full, in which case nothing is added.
        fn next_code(&mut self) -> bool {
            self.hi += 1;
            if self.hi == self.overflow {
                self.width += 1;
                self.overflow <<= 1;
            }
            if self.hi == MAX_CODE {
                self.w.put(u32::from(CLEAR), self.width);
                self.width = 9;
                self.hi = u32::from(EOF);
                self.overflow = 512;
                self.dict.clear();
                return false;
            }
            true
        }
    }

    /// Compresses `input` exactly as Go's `lzw.NewWriter(w, lzw.LSB, 8)` followed
    /// by one `Write` and `Close` does.
    pub fn compress(input: &[u8]) -> Vec<u8> {
        let mut e = Encoder {
            w: BitWriter {
                out: Vec::with_capacity(input.len() / 2 + 8),
                acc: 0,
                nbits: 0,
            },
            dict: Dict::new(),
            width: 9,
            hi: u32::from(EOF),
            overflow: 512,
        };
        e.w.put(u32::from(CLEAR), e.width);
        let Some((&first, rest)) = input.split_first() else {
            e.w.put(u32::from(EOF), e.width);
            return e.finish();
        };
        let mut code = u32::from(first);
        for &b in rest {
            let key = code << 8 | u32::from(b);
            if let Some(c) = e.dict.get(key) {
                code = c;
                continue;
            }
            e.w.put(code, e.width);
            code = u32::from(b);
            if e.next_code() {
                e.dict.insert(key, e.hi);
            }
        }
        e.w.put(code, e.width);
        e.next_code();
        e.w.put(u32::from(EOF), e.width);
        e.finish()
    }

    /// Decompresses a Go `compress/lzw` (LSB, litWidth 8) stream. Output larger
    /// than `limit` bytes is refused (a decompression bomb guard).
    pub fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, WireError> {
        let mut prefix = [0u16; 1 << MAX_WIDTH];
        let mut suffix = [0u8; 1 << MAX_WIDTH];
        let mut out: Vec<u8> = Vec::with_capacity(input.len().saturating_mul(3).min(limit));
        let mut scratch: Vec<u8> = Vec::with_capacity(1 << MAX_WIDTH);

        let mut bytes = input.iter();
        let mut acc: u32 = 0;
        let mut nbits: u32 = 0;
        let mut width: u32 = 9;
        let mut hi: u16 = EOF;
        let mut overflow: u16 = 512;
        let mut last: Option<u16> = None;

        loop {
            while nbits < width {
                let b = bytes.next().ok_or(WireError::Truncated)?;
                acc |= u32::from(*b) << nbits;
                nbits += 8;
            }
            let code = (acc & ((1 << width) - 1)) as u16;
            acc >>= width;
            nbits -= width;

            if code == CLEAR {
                width = 9;
                hi = EOF;
                overflow = 512;
                last = None;
                continue;
            }
            if code == EOF {
                return Ok(out);
            }
            if code > hi {
                return Err(WireError::Malformed(format!("lzw: invalid code {code}")));
            }
            // Spell the code backwards into `scratch`.
            scratch.clear();
            let mut c = code;
            if code == hi {
                if let Some(l) = last {
                    // The code being defined right now: last's string + its first byte.
                    let mut f = l;
                    while f >= CLEAR {
                        f = prefix[usize::from(f)];
                    }
                    scratch.push(f as u8);
                    c = l;
                }
            }
            while c >= CLEAR {
                scratch.push(suffix[usize::from(c)]);
                c = prefix[usize::from(c)];
                if scratch.len() > 1 << MAX_WIDTH {
                    return Err(WireError::Malformed("lzw: corrupt table".into()));
                }
            }
            scratch.push(c as u8);
            if out.len() + scratch.len() > limit {
                return Err(WireError::Malformed(format!(
                    "lzw: output larger than {limit} bytes"
                )));
            }
            out.extend(scratch.iter().rev());
            if let Some(l) = last {
                suffix[usize::from(hi)] = c as u8;
                prefix[usize::from(hi)] = l;
            }

            last = Some(code);
            hi += 1;
            if hi >= overflow {
                if width == MAX_WIDTH {
                    last = None;
                    hi -= 1;
                } else {
                    width += 1;
                    overflow <<= 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::wire::testutil::{gen, unhex, GOLDEN};

    const BIG: usize = 64 << 20;

    #[test]
    fn memo_gives_what_decoding_gives() {
        let a = compress(b"TOBEORNOTTOBEORTOBEORNOT TOBEORNOT");
        let b = compress(b"something else entirely, something else");
        for _ in 0..3 {
            assert_eq!(
                decompress_memo(&a, BIG).unwrap(),
                decompress(&a, BIG).unwrap()
            );
            assert_eq!(
                decompress_memo(&b, BIG).unwrap(),
                decompress(&b, BIG).unwrap()
            );
        }
        // A limit below the remembered output's size still refuses it.
        assert!(decompress_memo(&a, 3).is_err());
        // Errors are not remembered, and stay errors.
        assert!(decompress_memo(&a[..a.len() / 2], BIG).is_err());
        assert!(decompress_memo(&a[..a.len() / 2], BIG).is_err());
    }

    #[test]
    fn matches_go_text() {
        let cases = [
            ("tobe", &b"TOBEORNOTTOBEORTOBEORNOT"[..]),
            ("empty", b""),
            ("one", b"a"),
        ];
        for (name, input) in cases {
            let line = GOLDEN
                .lines()
                .find(|l| l.starts_with(&format!("lzwtext {name} ")))
                .unwrap();
            let want = unhex(line.rsplit(' ').next().unwrap());
            assert_eq!(compress(input), want, "{name}");
            assert_eq!(decompress(&want, BIG).unwrap(), input, "{name}");
        }
    }

    #[test]
    fn matches_go_generated() {
        let mut n = 0;
        for line in GOLDEN.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f[0] {
                "lzw" => {
                    let input = gen(
                        f[1].parse().unwrap(),
                        f[3].parse().unwrap(),
                        f[2].parse().unwrap(),
                    );
                    let want = unhex(f[4]);
                    assert_eq!(compress(&input), want, "{line:.40}");
                    assert_eq!(decompress(&want, BIG).unwrap(), input, "{line:.40}");
                }
                "lzwsum" => {
                    let input = gen(
                        f[1].parse().unwrap(),
                        f[3].parse().unwrap(),
                        f[2].parse().unwrap(),
                    );
                    let got = compress(&input);
                    assert_eq!(got.len().to_string(), f[4], "{line}");
                    assert_eq!(format!("{:08x}", crc32fast::hash(&got)), f[5], "{line}");
                    assert_eq!(decompress(&got, BIG).unwrap(), input, "{line}");
                }
                _ => continue,
            }
            n += 1;
        }
        assert!(n > 500, "{n}");
    }

    #[test]
    fn errors() {
        // no end code
        let c = compress(b"hello hello hello");
        assert_eq!(
            decompress(&c[..c.len() - 2], BIG),
            Err(WireError::Truncated)
        );
        assert_eq!(decompress(&[], BIG), Err(WireError::Truncated));
        // a code not yet defined: clear, then 300
        let mut w = BitWriter {
            out: Vec::new(),
            acc: 0,
            nbits: 0,
        };
        w.put(256, 9);
        w.put(300, 9);
        assert!(matches!(
            decompress(&w.finish(), BIG),
            Err(WireError::Malformed(_))
        ));
        // trailing bytes after the end code are ignored
        let mut c = compress(b"abc");
        c.extend_from_slice(b"junk");
        assert_eq!(decompress(&c, BIG).unwrap(), b"abc");
        // the limit
        let zeros = compress(&vec![0u8; 100_000]);
        assert!(zeros.len() < 1000);
        assert!(matches!(
            decompress(&zeros, 99_999),
            Err(WireError::Malformed(_))
        ));
        assert_eq!(decompress(&zeros, 100_000).unwrap().len(), 100_000);
    }

    #[test]
    fn resuming_keeps_the_cuts_of_a_shared_prefix() {
        // A push/pull-like input: long enough for several resets.
        let a = super::speed::members(3000);
        let mut memo = Resume::default();
        assert_eq!(compress_resuming(&a, &mut memo), compress(&a));
        let cuts = memo.cuts.len();
        assert!(cuts >= 3, "{cuts} clear codes");
        // The same members and a changed last byte: every cut still applies.
        let mut b = a.clone();
        *b.last_mut().unwrap() ^= 0x55;
        assert_eq!(compress_resuming(&b, &mut memo), compress(&b));
        assert_eq!(memo.cuts.len(), cuts);
        // A change in the first bytes: no cut applies, and they are redone.
        let mut c = b.clone();
        c[0] ^= 1;
        assert_eq!(compress_resuming(&c, &mut memo), compress(&c));
        assert!(memo.out == compress(&c) && memo.cuts.len() == cuts);
    }

    /// Every length of an input up to past its first reset: the one that
    /// ends with the table full (the last code handed out at the end) among
    /// them.
    #[test]
    fn every_prefix_across_a_reset() {
        let mut x: u32 = 12345;
        let data: Vec<u8> = (0..9000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        for n in 0..data.len() {
            let got = compress(&data[..n]);
            assert_eq!(got, oracle::compress(&data[..n]), "{n}");
        }
    }

    proptest! {
        #[test]
        fn roundtrip(data in proptest::collection::vec(any::<u8>(), 0..3000), alphabet in 1u32..=256) {
            let data: Vec<u8> = data.into_iter().map(|b| (u32::from(b) % alphabet) as u8).collect();
            prop_assert_eq!(decompress(&compress(&data), BIG).unwrap(), data);
        }

        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = decompress(&data, 1 << 20);
        }

        /// The same bytes as the first implementation, including inputs long
        /// enough for the table to fill and reset (several times at 60,000
        /// bytes of a small alphabet), and the same decoding.
        #[test]
        fn same_as_oracle(
            data in proptest::collection::vec(any::<u8>(), 0..60_000),
            alphabet in 1u32..=256,
            run in 1usize..8,
        ) {
            let data: Vec<u8> = data
                .chunks(run)
                .flat_map(|c| std::iter::repeat_n((u32::from(c[0]) % alphabet) as u8, c.len()))
                .collect();
            let got = compress(&data);
            prop_assert_eq!(&got, &oracle::compress(&data));
            prop_assert_eq!(decompress(&got, BIG).unwrap(), data);
        }

        /// Resuming from the previous input's clear codes gives the bytes a
        /// fresh compression gives, for an input that shares any prefix with
        /// the previous one (all of it, none, across a reset or not), and
        /// again for a third input after that.
        #[test]
        fn resuming_same_as_fresh(
            data in proptest::collection::vec(any::<u8>(), 0..40_000),
            alphabet in 1u32..=256,
            cut in any::<usize>(),
            tail in proptest::collection::vec(any::<u8>(), 0..3000),
            flip in any::<usize>(),
        ) {
            let a: Vec<u8> = data.iter().map(|&b| (u32::from(b) % alphabet) as u8).collect();
            let keep = if a.is_empty() { 0 } else { cut % (a.len() + 1) };
            let mut b = a[..keep].to_vec();
            b.extend(tail.iter().map(|&x| (u32::from(x) % alphabet) as u8));
            let mut c = a.clone();
            if !c.is_empty() {
                let i = flip % c.len();
                c[i] = c[i].wrapping_add(1);
            }
            let mut memo = Resume::default();
            for input in [&a, &a, &b, &c, &a] {
                prop_assert_eq!(compress_resuming(input, &mut memo), compress(input));
            }
        }

        /// The decoder gives what the first one gave (output or error) on
        /// any bytes, on valid streams cut short or damaged, and with limits.
        #[test]
        fn decoder_same_as_oracle(
            data in proptest::collection::vec(any::<u8>(), 0..6000),
            alphabet in 1u32..=256,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            cut in any::<usize>(),
            limit in 0usize..20_000,
        ) {
            prop_assert_eq!(decompress(&data, limit), oracle::decompress(&data, limit));
            let plain: Vec<u8> = data.iter().map(|&b| (u32::from(b) % alphabet) as u8).collect();
            let mut c = compress(&plain);
            for (at, x) in flips {
                let n = c.len();
                c[at % n] ^= x;
            }
            let c = &c[..c.len() - cut % (c.len() / 8 + 1)];
            prop_assert_eq!(decompress(c, limit), oracle::decompress(c, limit));
            prop_assert_eq!(decompress(c, BIG), oracle::decompress(c, BIG));
        }
    }
}

#[cfg(test)]
mod speed {
    /// A push/pull-like payload: `n` member records.
    pub(crate) fn members(n: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..n {
            v.extend_from_slice(b"\x87\xa4Name\xa9");
            v.extend_from_slice(format!("node-{i:04}").as_bytes());
            v.extend_from_slice(b"\xa4Addr\xc4\x10\0\0\0\0\0\0\0\0\0\0\xff\xff\x0a\x00");
            v.push((i >> 8) as u8);
            v.push(i as u8);
            v.extend_from_slice(b"\xa4Port\xcd\x1f\x90\xa4Meta\xc4\x00\xa3Incarnation\x01\xa5State\x00\xa3Vsn\xc4\x06\x01\x05\x02\x00\x00\x00");
        }
        v
    }

    fn noisy(n: usize) -> Vec<u8> {
        let mut v = members(n);
        let mut x: u64 = 7;
        for (i, b) in v.iter_mut().enumerate() {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if i % 9 == 0 {
                *b = (x >> 56) as u8;
            }
        }
        v
    }

    #[test]
    #[ignore]
    fn compress_speed() {
        let mut inputs = vec![
            ("members".to_string(), members(5000)),
            ("noisy".to_string(), noisy(5000)),
            ("noisy, packet-sized".to_string(), noisy(20)[..1400].to_vec()),
        ];
        // Real payloads (say, dumped from a simulation), by path.
        for path in std::env::var("LZW_SPEED_FILES").unwrap_or_default().split_whitespace() {
            if let Ok(data) = std::fs::read(path) {
                inputs.push((path.to_string(), data));
            }
        }
        for (what, input) in inputs {
            let reps = 4_000_000 / input.len();
            let t = std::time::Instant::now();
            let mut total = 0;
            for _ in 0..reps {
                total += super::compress(&input).len();
            }
            let dt = t.elapsed();
            eprintln!(
                "{what}: {} bytes -> {} : {:.2} ns/byte",
                input.len(),
                total / reps,
                dt.as_nanos() as f64 / (reps * input.len()) as f64
            );
        }
    }
}
