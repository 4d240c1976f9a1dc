//! ID manager: hands out integer IDs in `[start, end]` (VNIs, VLAN IDs) from a bitmask,
//! as libnetwork's `idm` does on top of `bitseq`.

use crate::bitseq::{Bitseq, BitseqError};

/// Why an ID request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdmError {
    /// The set's bounds are inverted.
    BadSet { start: u64, end: u64 },
    /// The ID or range lies outside the set.
    OutOfSet {
        start: u64,
        end: u64,
        lo: u64,
        hi: u64,
    },
    /// From the bitmask: none free, or already taken.
    Bits(BitseqError),
}

impl std::fmt::Display for IdmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadSet { start, end } => write!(f, "invalid ID set range [{start}, {end}]"),
            Self::OutOfSet { start, end, lo, hi } => {
                write!(
                    f,
                    "requested IDs [{start}, {end}] do not belong to the set [{lo}, {hi}]"
                )
            }
            Self::Bits(BitseqError::BitAlreadyAllocated(o)) => {
                write!(f, "ID offset {o} is already allocated")
            }
            Self::Bits(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for IdmError {}

impl From<BitseqError> for IdmError {
    fn from(e: BitseqError) -> Self {
        IdmError::Bits(e)
    }
}

/// A set of IDs `[start, end]`, each handed out at most once until released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idm {
    start: u64,
    end: u64,
    handle: Bitseq,
}

impl Idm {
    /// A set of the IDs `start..=end`. Unlike libnetwork, a set of one ID is allowed.
    pub fn new(start: u64, end: u64) -> Result<Self, IdmError> {
        if end < start {
            return Err(IdmError::BadSet { start, end });
        }
        let handle = Bitseq::new((end - start) as u128 + 1)?;
        Ok(Idm { start, end, handle })
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    /// The bitmask behind the set (offsets from `start`).
    pub fn handle(&self) -> &Bitseq {
        &self.handle
    }

    /// Rebuilds a set from its bitmask, e.g. one loaded from a store.
    pub fn from_handle(start: u64, handle: Bitseq) -> Result<Self, IdmError> {
        let last = start as u128 + handle.bits() - 1;
        if last > u64::MAX as u128 {
            return Err(IdmError::BadSet {
                start,
                end: u64::MAX,
            });
        }
        Ok(Idm {
            start,
            end: last as u64,
            handle,
        })
    }

    fn check(&self, lo: u64, hi: u64) -> Result<(), IdmError> {
        if lo < self.start || hi > self.end || lo > hi {
            return Err(IdmError::OutOfSet {
                start: lo,
                end: hi,
                lo: self.start,
                hi: self.end,
            });
        }
        Ok(())
    }

    /// Any free ID (serial: after the last one handed out, wrapping).
    pub fn get_id(&mut self, serial: bool) -> Result<u64, IdmError> {
        Ok(self.start + self.handle.set_any(serial)?)
    }

    /// Takes `id`; fails if it is taken or outside the set.
    pub fn get_specific_id(&mut self, id: u64) -> Result<(), IdmError> {
        self.check(id, id)?;
        Ok(self.handle.set(id - self.start)?)
    }

    /// Any free ID in `lo..=hi`.
    pub fn get_id_in_range(&mut self, lo: u64, hi: u64, serial: bool) -> Result<u64, IdmError> {
        self.check(lo, hi)?;
        let off = self
            .handle
            .set_any_in_range(lo - self.start, hi - self.start, serial)?;
        Ok(self.start + off)
    }

    /// Returns `id` to the set; returns whether it was taken. IDs outside the set are ignored.
    pub fn release(&mut self, id: u64) -> bool {
        if id < self.start || id > self.end {
            return false;
        }
        self.handle.unset(id - self.start).unwrap_or(false)
    }

    /// Whether `id` is taken.
    pub fn is_taken(&self, id: u64) -> Result<bool, IdmError> {
        self.check(id, id)?;
        Ok(self.handle.is_set(id - self.start)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(Idm::new(10, 9).is_err());
        assert!(Idm::new(5, 5).is_ok());
        let mut i = Idm::new(0, u64::MAX).unwrap();
        assert_eq!(i.get_id(false), Ok(0));
        i.get_specific_id(u64::MAX).unwrap();
    }

    #[test]
    fn get_release_specific() {
        let mut i = Idm::new(50, 52).unwrap();
        assert_eq!(i.get_id(false), Ok(50));
        assert_eq!(i.get_id(false), Ok(51));
        assert_eq!(i.get_id(false), Ok(52));
        assert!(i.get_id(false).is_err());
        assert!(i.release(51));
        assert!(!i.release(1000));
        assert_eq!(i.get_id(false), Ok(51));
        assert!(matches!(
            i.get_specific_id(49),
            Err(IdmError::OutOfSet { .. })
        ));
        assert!(matches!(
            i.get_specific_id(50),
            Err(IdmError::Bits(BitseqError::BitAlreadyAllocated(0)))
        ));
    }

    #[test]
    fn range_and_serial() {
        let mut i = Idm::new(100, 200).unwrap();
        assert_eq!(i.get_id_in_range(150, 160, false), Ok(150));
        assert_eq!(i.get_id_in_range(150, 160, true), Ok(151));
        i.release(150);
        assert_eq!(i.get_id_in_range(150, 160, true), Ok(152));
        assert!(i.get_id_in_range(90, 160, false).is_err());
        let again =
            Idm::from_handle(100, Bitseq::from_bytes(&i.handle().to_bytes()).unwrap()).unwrap();
        assert_eq!(again.end(), 200);
        assert_eq!(again, i);
    }
}
