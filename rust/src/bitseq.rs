//! Run-length encoded bitmask, libnetwork's `bitseq` semantics and wire format.
//!
//! A mask of `bits` ordinals is a list of runs: each run is one 32-bit block
//! repeated `count` times. Ordinal `o` lives in block `o / 32`, bit
//! `31 - o % 32` (the most significant bit is the lowest ordinal). The runs are
//! kept canonical (neighbours never hold the same block), so the serialized
//! form is exactly the bytes libnetwork's `Handle.ToByteArray` produces.
//!
//! Unlike libnetwork's linked list, runs live in a `BTreeMap` keyed by their
//! first block, and the runs that still have a free bit are indexed, so every
//! operation is O(log runs) instead of O(runs). The mask is never expanded.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Bits in one block of the encoding.
pub const BLOCK_BITS: u64 = 32;
const FULL: u32 = u32::MAX;
/// Largest mask: an IPv6 /64 worth of ordinals.
pub const MAX_BITS: u128 = 1 << 64;
const HEADER_LEN: usize = 16;
const RUN_LEN: usize = 12;

/// Why an operation on a bitmask failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitseqError {
    /// No free ordinal in the mask, or in the requested range.
    NoBitAvailable,
    /// The ordinal asked for is already set.
    BitAlreadyAllocated(u64),
    /// The ordinal is not below the mask's length.
    OutOfRange { ordinal: u128, bits: u128 },
    /// A range with start after end, or past the mask's end.
    BadRange { start: u128, end: u128, bits: u128 },
    /// A length of zero or above 2^64.
    BadLength(u128),
    /// Serialized bytes that do not describe a valid mask.
    Decode(String),
}

impl fmt::Display for BitseqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoBitAvailable => write!(f, "no bit available"),
            Self::BitAlreadyAllocated(o) => write!(f, "bit {o} is already allocated"),
            Self::OutOfRange { ordinal, bits } => {
                write!(
                    f,
                    "ordinal {ordinal} is out of range: the sequence has {bits} bits"
                )
            }
            Self::BadRange { start, end, bits } => write!(
                f,
                "invalid bit range [{start}, {end}] for a sequence of {bits} bits"
            ),
            Self::BadLength(n) => write!(
                f,
                "invalid sequence length {n}: must be between 1 and 2^64 bits"
            ),
            Self::Decode(msg) => write!(f, "malformed bit sequence bytes: {msg}"),
        }
    }
}

impl std::error::Error for BitseqError {}

/// One block value repeated `count` times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    block: u32,
    count: u64,
}

/// A run-length encoded bitmask of 1..=2^64 ordinals.
#[derive(Debug, Clone)]
pub struct Bitseq {
    bits: u128,
    unselected: u128,
    /// First block of each run -> run; the runs tile blocks 0..nblocks.
    runs: BTreeMap<u64, Run>,
    /// First blocks of the runs that still have a free ordinal.
    open: BTreeSet<u64>,
    /// Where a serial search starts: one past the last ordinal handed out.
    curr: u64,
}

impl PartialEq for Bitseq {
    fn eq(&self, other: &Self) -> bool {
        self.bits == other.bits && self.unselected == other.unselected && self.runs == other.runs
    }
}
impl Eq for Bitseq {}

fn check_len(bits: u128) -> Result<(), BitseqError> {
    if bits == 0 || bits > MAX_BITS {
        return Err(BitseqError::BadLength(bits));
    }
    Ok(())
}

/// Mask selecting ordinal offsets `off..32` of a block (MSB is offset 0).
fn from_offset(off: u64) -> u32 {
    FULL >> off
}

impl Bitseq {
    /// An empty mask of `bits` ordinals (1..=2^64).
    pub fn new(bits: u128) -> Result<Self, BitseqError> {
        check_len(bits)?;
        let mut s = Bitseq {
            bits,
            unselected: bits,
            runs: BTreeMap::new(),
            open: BTreeSet::new(),
            curr: 0,
        };
        let n = s.nblocks();
        s.insert_run(0, Run { block: 0, count: n });
        Ok(s)
    }

    /// Number of ordinals.
    pub fn bits(&self) -> u128 {
        self.bits
    }

    /// Number of ordinals not set.
    pub fn unselected(&self) -> u128 {
        self.unselected
    }

    /// Number of runs in the encoding (its serialized size is 16 + 12 * runs bytes).
    pub fn run_count(&self) -> usize {
        self.runs.len()
    }

    /// The runs as (block, count), in order.
    pub fn runs(&self) -> Vec<(u32, u64)> {
        self.runs.values().map(|r| (r.block, r.count)).collect()
    }

    /// Where the next serial search starts.
    pub fn serial_cursor(&self) -> u64 {
        self.curr
    }

    /// Sets where the next serial search starts (restored from a store).
    pub fn set_serial_cursor(&mut self, curr: u64) {
        self.curr = curr;
    }

    fn nblocks(&self) -> u64 {
        // bits <= 2^64, so the block count (<= 2^59) fits.
        self.bits.div_ceil(BLOCK_BITS as u128) as u64
    }

    fn last_block(&self) -> u64 {
        self.nblocks() - 1
    }

    /// Valid ordinals of the last block; all 32 when the length is a multiple of 32.
    fn tail_mask(&self) -> u32 {
        let tail = (self.bits % BLOCK_BITS as u128) as u32;
        if tail == 0 {
            FULL
        } else {
            FULL << (32 - tail)
        }
    }

    fn valid_mask(&self, block: u64) -> u32 {
        if block == self.last_block() {
            self.tail_mask()
        } else {
            FULL
        }
    }

    fn run_is_full(&self, start: u64, run: &Run) -> bool {
        // A multi-block run that includes the partial last block has no bit set past
        // the end, so its block is not FULL and its earlier blocks have free bits.
        run.block == FULL
            || (run.count == 1 && start == self.last_block() && run.block == self.tail_mask())
    }

    fn insert_run(&mut self, start: u64, run: Run) {
        if !self.run_is_full(start, &run) {
            self.open.insert(start);
        }
        self.runs.insert(start, run);
    }

    /// The run holding `block` as (first block, run).
    fn find_run(&self, block: u64) -> (u64, Run) {
        let (s, r) = self
            .runs
            .range(..=block)
            .next_back()
            .expect("runs tile every block from 0");
        (*s, *r)
    }

    /// Removes a run whose value is known, touching `open` only if it is there.
    fn remove_known(&mut self, start: u64, run: &Run) {
        self.runs.remove(&start);
        if !self.run_is_full(start, run) {
            self.open.remove(&start);
        }
    }

    /// Replaces block `b`'s value, splitting and merging runs to stay canonical.
    /// `(s, r)` is the run holding `b` (already looked up by the caller).
    fn put_block(&mut self, b: u64, s: u64, r: Run, value: u32) {
        if r.block == value {
            return;
        }
        let end = s + r.count; // exclusive
        let prev = if b == s && b > 0 {
            self.runs.range(..s).next_back().map(|(k, v)| (*k, *v))
        } else {
            None
        };
        let next = if b + 1 == end {
            self.runs.get(&end).map(|n| (end, *n))
        } else {
            None
        };
        let merge_prev = prev.filter(|(_, p)| p.block == value);
        let merge_next = next.filter(|(_, n)| n.block == value);

        // Left remainder keeps its start and block; with count >= 2 before and
        // after, its fullness (and so its `open` entry) does not change.
        if b > s {
            self.runs.get_mut(&s).expect("run exists").count = b - s;
        }
        if b + 1 < end {
            self.insert_run(
                b + 1,
                Run {
                    block: r.block,
                    count: end - b - 1,
                },
            );
        }
        let mut count = 1;
        if let Some((ns, n)) = merge_next {
            self.remove_known(ns, &n);
            count += n.count;
        }
        if let Some((ps, _)) = merge_prev {
            // b == s: the old run goes, the previous one grows. It starts before
            // the last block and has count >= 2, so its fullness is unchanged.
            self.remove_known(s, &r);
            self.runs.get_mut(&ps).expect("run exists").count += count;
        } else if b == s {
            let run = Run {
                block: value,
                count,
            };
            let was_full = self.run_is_full(s, &r);
            let now_full = self.run_is_full(s, &run);
            *self.runs.get_mut(&s).expect("run exists") = run;
            if was_full != now_full {
                if now_full {
                    self.open.remove(&s);
                } else {
                    self.open.insert(s);
                }
            }
        } else {
            self.insert_run(
                b,
                Run {
                    block: value,
                    count,
                },
            );
        }
    }

    fn check_ordinal(&self, ordinal: u64) -> Result<(), BitseqError> {
        if ordinal as u128 >= self.bits {
            return Err(BitseqError::OutOfRange {
                ordinal: ordinal as u128,
                bits: self.bits,
            });
        }
        Ok(())
    }

    fn locate(ordinal: u64) -> (u64, u32) {
        (ordinal / BLOCK_BITS, 1u32 << (31 - (ordinal % BLOCK_BITS)))
    }

    /// Whether `ordinal` is set.
    pub fn is_set(&self, ordinal: u64) -> Result<bool, BitseqError> {
        self.check_ordinal(ordinal)?;
        let (b, mask) = Self::locate(ordinal);
        Ok(self.find_run(b).1.block & mask != 0)
    }

    /// Sets `ordinal`; fails if it is already set.
    pub fn set(&mut self, ordinal: u64) -> Result<(), BitseqError> {
        self.check_ordinal(ordinal)?;
        let (b, mask) = Self::locate(ordinal);
        let (rs, r) = self.find_run(b);
        if r.block & mask != 0 {
            return Err(BitseqError::BitAlreadyAllocated(ordinal));
        }
        self.put_block(b, rs, r, r.block | mask);
        self.unselected -= 1;
        Ok(())
    }

    /// Clears `ordinal`; returns whether it was set (clearing a free bit is a no-op).
    pub fn unset(&mut self, ordinal: u64) -> Result<bool, BitseqError> {
        self.check_ordinal(ordinal)?;
        let (b, mask) = Self::locate(ordinal);
        let (rs, r) = self.find_run(b);
        if r.block & mask == 0 {
            return Ok(false);
        }
        self.put_block(b, rs, r, r.block & !mask);
        self.unselected += 1;
        Ok(true)
    }

    /// First free ordinal in `from..=end`, if any, with the run holding it.
    fn first_free(&self, from: u64, end: u64) -> Option<(u64, u64, Run)> {
        let b = from / BLOCK_BITS;
        let (s, r) = self.find_run(b);
        if !self.run_is_full(s, &r) {
            let free = !r.block & self.valid_mask(b) & from_offset(from % BLOCK_BITS);
            if free != 0 {
                let ord = b * BLOCK_BITS + free.leading_zeros() as u64;
                return (ord <= end).then_some((ord, s, r));
            }
            if b + 1 < s + r.count {
                let free = !r.block & self.valid_mask(b + 1);
                if free != 0 {
                    let ord = (b + 1) * BLOCK_BITS + free.leading_zeros() as u64;
                    return (ord <= end).then_some((ord, s, r));
                }
            }
        }
        // The first block of any open run has a free valid bit (see run_is_full).
        let ns = *self.open.range(b + 1..).next()?;
        let run = *self.runs.get(&ns)?;
        let free = !run.block & self.valid_mask(ns);
        let ord = ns * BLOCK_BITS + free.leading_zeros() as u64;
        (ord <= end).then_some((ord, ns, run))
    }

    /// Sets the first free ordinal in `start..=end` and returns it. In serial
    /// mode the search starts after the last ordinal handed out and wraps.
    pub fn set_any_in_range(
        &mut self,
        start: u64,
        end: u64,
        serial: bool,
    ) -> Result<u64, BitseqError> {
        if start > end || end as u128 >= self.bits {
            return Err(BitseqError::BadRange {
                start: start as u128,
                end: end as u128,
                bits: self.bits,
            });
        }
        if self.unselected == 0 {
            return Err(BitseqError::NoBitAvailable);
        }
        let mut found = None;
        if serial && self.curr > start && self.curr <= end {
            found = self.first_free(self.curr, end);
        }
        if found.is_none() {
            found = self.first_free(start, end);
        }
        let (ord, rs, r) = found.ok_or(BitseqError::NoBitAvailable)?;
        let (b, mask) = Self::locate(ord);
        self.put_block(b, rs, r, r.block | mask);
        self.unselected -= 1;
        self.curr = ord.wrapping_add(1);
        Ok(ord)
    }

    /// Sets the first free ordinal of the whole mask (serial: after the last one handed out).
    pub fn set_any(&mut self, serial: bool) -> Result<u64, BitseqError> {
        let end = (self.bits - 1) as u64;
        self.set_any_in_range(0, end, serial)
    }

    /// libnetwork's serialized form: bits u64 BE, unselected u64 BE, then
    /// {block u32 BE, count u64 BE} per run. A 2^64-bit mask writes its length
    /// (and a full count of free bits) as 0, the value modulo 2^64.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + RUN_LEN * self.runs.len());
        out.extend_from_slice(&(self.bits as u64).to_be_bytes());
        out.extend_from_slice(&(self.unselected as u64).to_be_bytes());
        for run in self.runs.values() {
            out.extend_from_slice(&run.block.to_be_bytes());
            out.extend_from_slice(&run.count.to_be_bytes());
        }
        out
    }

    /// Parses libnetwork's serialized form; malformed input is an error. Repairs what
    /// Go's CheckConsistency repairs: empty runs are dropped, neighbouring runs with the
    /// same block merged, and the free count is taken from the runs, not the header.
    pub fn from_bytes(data: &[u8]) -> Result<Self, BitseqError> {
        let err = |m: String| Err(BitseqError::Decode(m));
        if data.len() < HEADER_LEN + RUN_LEN {
            return err(format!(
                "{} bytes: need a 16-byte header and at least one 12-byte run",
                data.len()
            ));
        }
        if !(data.len() - HEADER_LEN).is_multiple_of(RUN_LEN) {
            return err(format!(
                "{} bytes of runs after the header is not a multiple of 12",
                data.len() - HEADER_LEN
            ));
        }
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&data[i..i + 8]);
            u64::from_be_bytes(a)
        };
        let raw_bits = u64_at(0);
        let bits: u128 = if raw_bits == 0 {
            MAX_BITS
        } else {
            raw_bits as u128
        };

        let mut s = Bitseq {
            bits,
            unselected: 0,
            runs: BTreeMap::new(),
            open: BTreeSet::new(),
            curr: 0,
        };
        let nblocks = s.nblocks();
        let last = s.last_block();
        let tail = s.tail_mask();
        let mut next_block: u64 = 0;
        let mut pending: Option<(u64, Run)> = None;
        let mut free: u128 = 0;
        let mut runs: Vec<(u64, Run)> = Vec::with_capacity((data.len() - HEADER_LEN) / RUN_LEN);
        let mut open: Vec<u64> = Vec::new();
        for chunk in data[HEADER_LEN..].chunks_exact(RUN_LEN) {
            let block = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let mut c = [0u8; 8];
            c.copy_from_slice(&chunk[4..12]);
            let count = u64::from_be_bytes(c);
            if count == 0 {
                // Old docker releases wrote empty runs; like Go's CheckConsistency, drop them.
                continue;
            }
            let end = match next_block.checked_add(count) {
                Some(e) if e <= nblocks => e,
                _ => {
                    return err(format!(
                        "runs cover more than the {nblocks} blocks of a {bits}-bit sequence"
                    ))
                }
            };
            if end - 1 == last && block & !tail != 0 {
                return err(format!("bits set past the end of a {bits}-bit sequence"));
            }
            free += (count as u128) * u128::from((!block).count_ones());
            if end - 1 == last {
                // The last block's invalid bits are zero but are not free ordinals.
                free -= u128::from((!tail).count_ones());
            }
            pending = match pending {
                Some((ps, p)) if p.block == block => Some((
                    ps,
                    Run {
                        block,
                        count: p.count + count,
                    },
                )),
                Some((ps, p)) => {
                    if !s.run_is_full(ps, &p) {
                        open.push(ps);
                    }
                    runs.push((ps, p));
                    Some((next_block, Run { block, count }))
                }
                None => Some((next_block, Run { block, count })),
            };
            next_block = end;
        }
        if next_block != nblocks {
            return err(format!(
                "runs cover {next_block} of the {nblocks} blocks of a {bits}-bit sequence"
            ));
        }
        if let Some((ps, p)) = pending {
            if !s.run_is_full(ps, &p) {
                open.push(ps);
            }
            runs.push((ps, p));
        }
        // Keys are strictly increasing: both maps are bulk-built, not inserted one by one.
        s.runs = runs.into_iter().collect();
        s.open = open.into_iter().collect();
        // The header's free count is redundant; the runs are the truth (old docker
        // releases wrote handles whose count had drifted from their runs).
        s.unselected = free;
        Ok(s)
    }
}

impl fmt::Display for Bitseq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Bitseq(bits={}, unselected={}, runs=[",
            self.bits, self.unselected
        )?;
        for (i, r) in self.runs.values().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{:#010x}x{}", r.block, r.count)?;
        }
        write!(f, "])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet as Model;

    fn canonical(s: &Bitseq) -> bool {
        let runs = s.runs();
        runs.windows(2).all(|w| w[0].0 != w[1].0)
            && runs.iter().map(|r| r.1 as u128).sum::<u128>() == s.bits.div_ceil(32)
    }

    #[test]
    fn new_is_one_empty_run() {
        let s = Bitseq::new(64).unwrap();
        assert_eq!(s.runs(), vec![(0, 2)]);
        assert_eq!(
            hex(&s.to_bytes()),
            "00000000000000400000000000000040000000000000000000000002"
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn bad_lengths() {
        assert_eq!(Bitseq::new(0), Err(BitseqError::BadLength(0)));
        assert!(Bitseq::new(MAX_BITS + 1).is_err());
        assert!(Bitseq::new(MAX_BITS).is_ok());
    }

    #[test]
    fn set_any_sequential_and_full() {
        let mut s = Bitseq::new(70).unwrap();
        for i in 0..70 {
            assert_eq!(s.set_any(false), Ok(i));
        }
        assert_eq!(s.set_any(false), Err(BitseqError::NoBitAvailable));
        assert_eq!(s.unselected(), 0);
        assert_eq!(s.runs(), vec![(FULL, 2), (0xfc00_0000, 1)]);
        assert!(canonical(&s));
    }

    #[test]
    fn set_twice_fails_unset_free_is_noop() {
        let mut s = Bitseq::new(100).unwrap();
        s.set(42).unwrap();
        assert_eq!(s.set(42), Err(BitseqError::BitAlreadyAllocated(42)));
        assert_eq!(s.unset(43), Ok(false));
        assert_eq!(s.unset(42), Ok(true));
        assert_eq!(s, Bitseq::new(100).unwrap());
        assert!(matches!(s.set(100), Err(BitseqError::OutOfRange { .. })));
    }

    #[test]
    fn serial_continues_and_wraps() {
        let mut s = Bitseq::new(8).unwrap();
        assert_eq!(s.set_any(true), Ok(0));
        assert_eq!(s.set_any(true), Ok(1));
        s.unset(0).unwrap();
        // Serial does not hand 0 back at once.
        assert_eq!(s.set_any(true), Ok(2));
        for want in 3..8 {
            assert_eq!(s.set_any(true), Ok(want));
        }
        // Wraps to the freed bit.
        assert_eq!(s.set_any(true), Ok(0));
        assert_eq!(s.set_any(true), Err(BitseqError::NoBitAvailable));
    }

    #[test]
    fn range_search() {
        let mut s = Bitseq::new(1000).unwrap();
        assert_eq!(s.set_any_in_range(100, 200, false), Ok(100));
        assert_eq!(s.set_any_in_range(100, 101, false), Ok(101));
        assert_eq!(
            s.set_any_in_range(100, 101, false),
            Err(BitseqError::NoBitAvailable)
        );
        assert!(matches!(
            s.set_any_in_range(5, 1000, false),
            Err(BitseqError::BadRange { .. })
        ));
        assert!(matches!(
            s.set_any_in_range(6, 5, false),
            Err(BitseqError::BadRange { .. })
        ));
    }

    #[test]
    fn two_to_the_64() {
        let mut s = Bitseq::new(MAX_BITS).unwrap();
        let top = u64::MAX;
        s.set(top).unwrap();
        assert!(s.is_set(top).unwrap());
        assert_eq!(s.set_any_in_range(top - 1, top, true), Ok(top - 1));
        assert_eq!(s.unselected(), MAX_BITS - 2);
        let b = s.to_bytes();
        assert_eq!(&b[0..8], &[0u8; 8]);
        let t = Bitseq::from_bytes(&b).unwrap();
        assert_eq!(t, s);
        // serial cursor wrapped past the last ordinal
        assert_eq!(s.set_any(true), Ok(0));
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(Bitseq::from_bytes(&[]).is_err());
        assert!(Bitseq::from_bytes(&[0; 27]).is_err());
        // runs cover too few blocks
        let mut b = Bitseq::new(64).unwrap().to_bytes();
        b[27] = 1;
        assert!(Bitseq::from_bytes(&b).is_err());
        // bits past the end
        let mut b = Bitseq::new(40).unwrap().to_bytes();
        b[16..20].copy_from_slice(&[0, 0, 0, 1]);
        assert!(Bitseq::from_bytes(&b).is_err());
        // a header whose free count disagrees with the runs is repaired from the runs
        let mut b = Bitseq::new(64).unwrap().to_bytes();
        b[15] = 3;
        assert_eq!(Bitseq::from_bytes(&b).unwrap().unselected(), 64);
        // only empty runs: nothing is covered
        let mut b = Bitseq::new(64).unwrap().to_bytes();
        b[27] = 0;
        assert!(Bitseq::from_bytes(&b).is_err());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Set(u64),
        Unset(u64),
        Any(bool),
        Range(u64, u64, bool),
    }

    fn op(bits: u64) -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..bits).prop_map(Op::Set),
            (0..bits).prop_map(Op::Unset),
            any::<bool>().prop_map(Op::Any),
            (0..bits, 0..bits, any::<bool>()).prop_map(|(a, b, s)| Op::Range(
                a.min(b),
                a.max(b),
                s
            )),
        ]
    }

    fn model_first(m: &Model<u64>, from: u64, end: u64) -> Option<u64> {
        (from..=end).find(|o| !m.contains(o))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn matches_a_set_model(bits in 1u64..300, ops in prop::collection::vec(op(300), 0..200)) {
            let mut s = Bitseq::new(bits as u128).unwrap();
            let mut m: Model<u64> = Model::new();
            let mut curr = 0u64;
            for o in ops {
                match o {
                    Op::Set(i) if i < bits => {
                        let r = s.set(i);
                        prop_assert_eq!(r.is_ok(), m.insert(i));
                    }
                    Op::Unset(i) if i < bits => {
                        prop_assert_eq!(s.unset(i).unwrap(), m.remove(&i));
                    }
                    Op::Any(serial) => {
                        let want = if serial && curr > 0 && curr < bits {
                            model_first(&m, curr, bits - 1).or_else(|| model_first(&m, 0, bits - 1))
                        } else {
                            model_first(&m, 0, bits - 1)
                        };
                        let got = s.set_any(serial).ok();
                        prop_assert_eq!(got, want);
                        if let Some(g) = got { m.insert(g); curr = g + 1; }
                    }
                    Op::Range(a, b, serial) if b < bits => {
                        let want = if serial && curr > a && curr <= b {
                            model_first(&m, curr, b).or_else(|| model_first(&m, a, b))
                        } else {
                            model_first(&m, a, b)
                        };
                        let got = s.set_any_in_range(a, b, serial).ok();
                        prop_assert_eq!(got, want);
                        if let Some(g) = got { m.insert(g); curr = g + 1; }
                    }
                    _ => {}
                }
                prop_assert!(canonical(&s));
                prop_assert_eq!(s.unselected(), (bits - m.len() as u64) as u128);
            }
            for i in 0..bits {
                prop_assert_eq!(s.is_set(i).unwrap(), m.contains(&i));
            }
            let t = Bitseq::from_bytes(&s.to_bytes()).unwrap();
            prop_assert_eq!(&t, &s);
            prop_assert_eq!(t.to_bytes(), s.to_bytes());
        }

        #[test]
        fn decode_never_panics(data in prop::collection::vec(any::<u8>(), 0..120)) {
            if let Ok(s) = Bitseq::from_bytes(&data) {
                prop_assert!(canonical(&s));
                let again = Bitseq::from_bytes(&s.to_bytes()).unwrap();
                prop_assert_eq!(again, s);
            }
        }
    }
}
