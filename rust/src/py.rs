//! PyO3 layer: converts between Python and the Rust modules and raises
//! `pyln.errors` exceptions. No logic lives here.

/// The extension's Rust allocations go through mimalloc: with the simulator's
/// heap of many small long-lived objects (gigabytes at thousands of nodes),
/// glibc's malloc spent about half of the run consolidating its free lists.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    /// mimalloc's option setter (part of its C library, linked in with the
    /// allocator; the Rust crate only binds it behind a feature).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Tells mimalloc to keep freed pages instead of returning them to the OS
/// (`mi_option_purge_delay` = -1). The simulator frees and reallocates
/// gigabytes of small objects all the time: purging and faulting the pages
/// back in (the kernel zeroes each one) was ~8% of a 1,000-node run. Called
/// when a simulation is created; real nodes keep the default.
pub(crate) fn keep_freed_pages() {
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
    // SAFETY: a plain setter of a global option; mimalloc reads it when it
    // next considers purging.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyType};

use crate::bitseq::{Bitseq, BitseqError};
use crate::idm::{Idm, IdmError};

/// Raises `pyln.errors.<name>(msg)`.
pub(crate) fn typed_error(py: Python<'_>, name: &str, msg: String) -> PyErr {
    let cls = py
        .import("pyln.errors")
        .and_then(|m| m.getattr(name))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
    match cls {
        Ok(cls) => PyErr::from_type(cls, msg),
        Err(e) => e,
    }
}

fn bitseq_err(py: Python<'_>, e: BitseqError) -> PyErr {
    let name = match e {
        BitseqError::NoBitAvailable => "NoBitAvailable",
        BitseqError::BitAlreadyAllocated(_) => "BitAlreadyAllocated",
        BitseqError::OutOfRange { .. } | BitseqError::BadRange { .. } => "BitOutOfRange",
        BitseqError::BadLength(_) => "InvalidBitseqLength",
        BitseqError::Decode(_) => "InvalidBitseqData",
    };
    typed_error(py, name, e.to_string())
}

fn idm_err(py: Python<'_>, e: IdmError) -> PyErr {
    match e {
        IdmError::Bits(BitseqError::BitAlreadyAllocated(_)) => {
            typed_error(py, "IDAlreadyAllocated", e.to_string())
        }
        IdmError::Bits(BitseqError::NoBitAvailable) => {
            typed_error(py, "NoIDAvailable", e.to_string())
        }
        IdmError::Bits(b) => bitseq_err(py, b),
        IdmError::BadSet { .. } => typed_error(py, "InvalidIDSet", e.to_string()),
        IdmError::OutOfSet { .. } => typed_error(py, "IDOutOfRange", e.to_string()),
    }
}

/// Reads a non-negative integer below 2^64; anything else is a typed out-of-range error.
fn ordinal(py: Python<'_>, obj: &Bound<'_, PyAny>, what: &str, err: &str) -> PyResult<u64> {
    match obj.extract::<u64>() {
        Ok(v) => Ok(v),
        Err(_) if obj.is_instance_of::<PyInt>() => Err(typed_error(
            py,
            err,
            format!("{what} {obj} is out of range"),
        )),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{what} must be an int, not {}",
            obj.get_type().name()?
        ))),
    }
}

/// A run-length encoded bitmask of 1..=2^64 bits with libnetwork's semantics and bytes.
#[pyclass(module = "pyln._core", name = "Bitseq", eq)]
#[derive(Clone, PartialEq)]
pub struct PyBitseq {
    inner: Bitseq,
}

#[pymethods]
impl PyBitseq {
    #[new]
    fn new(py: Python<'_>, bits: &Bound<'_, PyAny>) -> PyResult<Self> {
        if !bits.is_instance_of::<PyInt>() {
            return Err(PyTypeError::new_err("Bitseq length must be an int"));
        }
        // Negative or huge lengths map to 0, which Bitseq::new refuses.
        let n: u128 = bits.extract::<u128>().unwrap_or(0);
        Bitseq::new(n).map(|inner| PyBitseq { inner }).map_err(|_| {
            typed_error(
                py,
                "InvalidBitseqLength",
                format!("invalid sequence length {bits}: must be between 1 and 2^64 bits"),
            )
        })
    }

    /// Number of bits.
    #[getter]
    fn bits(&self) -> u128 {
        self.inner.bits()
    }

    /// Number of bits not set.
    #[getter]
    fn unselected(&self) -> u128 {
        self.inner.unselected()
    }

    /// Number of runs in the encoding (the serialized form is 16 + 12 * runs bytes).
    #[getter]
    fn run_count(&self) -> usize {
        self.inner.run_count()
    }

    /// Where the next serial search starts.
    #[getter]
    fn get_serial_cursor(&self) -> u64 {
        self.inner.serial_cursor()
    }

    #[setter]
    fn set_serial_cursor(&mut self, curr: u64) {
        self.inner.set_serial_cursor(curr)
    }

    fn set(&mut self, py: Python<'_>, ordinal_: &Bound<'_, PyAny>) -> PyResult<()> {
        let o = ordinal(py, ordinal_, "ordinal", "BitOutOfRange")?;
        self.inner.set(o).map_err(|e| bitseq_err(py, e))
    }

    fn unset(&mut self, py: Python<'_>, ordinal_: &Bound<'_, PyAny>) -> PyResult<bool> {
        let o = ordinal(py, ordinal_, "ordinal", "BitOutOfRange")?;
        self.inner.unset(o).map_err(|e| bitseq_err(py, e))
    }

    fn is_set(&self, py: Python<'_>, ordinal_: &Bound<'_, PyAny>) -> PyResult<bool> {
        let o = ordinal(py, ordinal_, "ordinal", "BitOutOfRange")?;
        self.inner.is_set(o).map_err(|e| bitseq_err(py, e))
    }

    #[pyo3(signature = (serial = false))]
    fn set_any(&mut self, py: Python<'_>, serial: bool) -> PyResult<u64> {
        self.inner.set_any(serial).map_err(|e| bitseq_err(py, e))
    }

    #[pyo3(signature = (start, end, serial = false))]
    fn set_any_in_range(
        &mut self,
        py: Python<'_>,
        start: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
        serial: bool,
    ) -> PyResult<u64> {
        let s = ordinal(py, start, "range start", "BitOutOfRange")?;
        let e = ordinal(py, end, "range end", "BitOutOfRange")?;
        self.inner
            .set_any_in_range(s, e, serial)
            .map_err(|err| bitseq_err(py, err))
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Self> {
        Bitseq::from_bytes(data)
            .map(|inner| PyBitseq { inner })
            .map_err(|e| bitseq_err(py, e))
    }

    /// The encoding's runs as (block, count) pairs.
    fn runs(&self) -> Vec<(u32, u64)> {
        self.inner.runs()
    }

    fn copy(&self) -> Self {
        self.clone()
    }

    fn __copy__(&self) -> Self {
        self.clone()
    }

    fn __deepcopy__(&self, _memo: &Bound<'_, PyAny>) -> Self {
        self.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "Bitseq(bits={}, unselected={}, runs={})",
            self.inner.bits(),
            self.inner.unselected(),
            self.inner.run_count()
        )
    }
}

/// An ID set `[start, end]` on a bitmask, as libnetwork's idm.
#[pyclass(module = "pyln._core", name = "Idm", eq)]
#[derive(Clone, PartialEq)]
pub struct PyIdm {
    inner: Idm,
}

#[pymethods]
impl PyIdm {
    #[new]
    fn new(py: Python<'_>, start: &Bound<'_, PyAny>, end: &Bound<'_, PyAny>) -> PyResult<Self> {
        let s = ordinal(py, start, "set start", "InvalidIDSet")?;
        let e = ordinal(py, end, "set end", "InvalidIDSet")?;
        Idm::new(s, e)
            .map(|inner| PyIdm { inner })
            .map_err(|err| idm_err(py, err))
    }

    #[getter]
    fn start(&self) -> u64 {
        self.inner.start()
    }

    #[getter]
    fn end(&self) -> u64 {
        self.inner.end()
    }

    /// Number of IDs still free.
    #[getter]
    fn free(&self) -> u128 {
        self.inner.handle().unselected()
    }

    #[pyo3(signature = (serial = false))]
    fn get_id(&mut self, py: Python<'_>, serial: bool) -> PyResult<u64> {
        self.inner.get_id(serial).map_err(|e| idm_err(py, e))
    }

    fn get_specific_id(&mut self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<()> {
        let i = ordinal(py, id, "ID", "IDOutOfRange")?;
        self.inner.get_specific_id(i).map_err(|e| idm_err(py, e))
    }

    #[pyo3(signature = (start, end, serial = false))]
    fn get_id_in_range(
        &mut self,
        py: Python<'_>,
        start: &Bound<'_, PyAny>,
        end: &Bound<'_, PyAny>,
        serial: bool,
    ) -> PyResult<u64> {
        let s = ordinal(py, start, "range start", "IDOutOfRange")?;
        let e = ordinal(py, end, "range end", "IDOutOfRange")?;
        self.inner
            .get_id_in_range(s, e, serial)
            .map_err(|err| idm_err(py, err))
    }

    fn release(&mut self, id: &Bound<'_, PyAny>) -> bool {
        id.extract::<u64>()
            .map(|i| self.inner.release(i))
            .unwrap_or(false)
    }

    fn is_taken(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let i = ordinal(py, id, "ID", "IDOutOfRange")?;
        self.inner.is_taken(i).map_err(|e| idm_err(py, e))
    }

    /// The bitmask of offsets from `start`, in libnetwork's bytes.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.handle().to_bytes())
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, start: u64, data: &[u8]) -> PyResult<Self> {
        let handle = Bitseq::from_bytes(data).map_err(|e| bitseq_err(py, e))?;
        Idm::from_handle(start, handle)
            .map(|inner| PyIdm { inner })
            .map_err(|e| idm_err(py, e))
    }

    fn __repr__(&self) -> String {
        format!(
            "Idm(start={}, end={}, free={})",
            self.inner.start(),
            self.inner.end(),
            self.inner.handle().unselected()
        )
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBitseq>()?;
    m.add_class::<PyIdm>()?;
    crate::py_swim::register(m)?;
    crate::py_ndb::register(m)?;
    crate::py_networkdb::register(m)?;
    crate::py_sim::register(m)?;
    Ok(())
}
