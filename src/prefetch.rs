//! Asking the CPU to start loading memory the model is about to read.
//!
//! The one `unsafe` in the crate: at 10,000 engineers the model's state is
//! larger than the caches, and loading an engineer's baseline, then where a
//! resource sits in it, one after the other for each access left the model
//! waiting on memory for most of its time. A prefetch starts such a load
//! and goes on without waiting for it, so the look-ahead ([`crate::replay::Ahead`])
//! can have the loads of many accesses under way at once, each step reading
//! what the step before brought in. Measured in the README's performance section.

#![allow(unsafe_code)]

/// Starts loading the cache line holding `p` (a hint: nothing is read, and
/// nothing happens on a CPU without the instruction).
#[inline(always)]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` reads nothing the program sees and cannot fault,
    // whatever the address; SSE, which it belongs to, is part of every
    // x86_64 target.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`prefetch`] of the lines of `v` (a value up to two cache lines long,
/// aligned to one).
#[inline(always)]
pub(crate) fn prefetch_value<T>(v: &T) {
    let p = (v as *const T).cast::<u8>();
    prefetch(p);
    if std::mem::size_of::<T>() > 64 {
        prefetch(p.wrapping_add(64));
    }
}
