//! Cache hints for the hot paths: a simulated node's state is cold when its
//! event comes round, so loops over many records ask for lines ahead.

/// Asks the CPU to start loading the line holding `r` (a hint only: nothing
/// is read, and a needless one costs only the bandwidth).
#[inline]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only hints; `r` is a valid reference.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
