//! Zero-size blocks with guard pages on (`FT_MALLOC_GUARD_PAGES`):
//! `malloc(0)` returns a unique pointer into one inaccessible (`PROT_NONE`)
//! region, as hardened_malloc does, so any read or write through it faults
//! at once (a zero-size block from the heap has 16 bytes a program can
//! use unseen until `free`, or forever for a read).
//!
//! The region holds [`SLOTS`] slots of [`SLOT`] bytes (address space only:
//! it is never touched, so it costs no memory), reserved at the first
//! zero-size `malloc`. Which slots are handed out is a bitmap outside the
//! region, so a slot is unique while live, a double free of one is found,
//! and `free`, `realloc` and `malloc_usable_size` (0) know it by its
//! address. When every slot is live, `malloc(0)` falls back to a heap block
//! (caught by the canaries, as before).
//!
//! # Concurrency
//!
//! No lock: a slot is claimed by the `fetch_or` that sets its bit and given
//! back by the `fetch_and` that clears it, so of two racing frees of one
//! slot exactly one finds the bit set. The region's address is published
//! once by a compare-exchange (a thread that loses the race unmaps its own
//! reservation). Fork needs nothing: atomics only.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ft_malloc::HeapError;

/// Bytes per slot: the default alignment, so every slot is a valid
/// `malloc` result.
const SLOT: usize = 16;
/// Slots in the region (1 MiB of address space).
const SLOTS: usize = 1 << 16;
const REGION: usize = SLOT * SLOTS;
const WORDS: usize = SLOTS / 64;

/// One bit per slot: set while the slot is handed out.
static LIVE: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];
/// The region's start, 0 until reserved.
static BASE: AtomicUsize = AtomicUsize::new(0);
/// Where the next search starts (a hint: any word may be searched).
static CURSOR: AtomicUsize = AtomicUsize::new(0);

/// The region, reserved at the first call; `None` if the kernel refuses.
fn region() -> Option<usize> {
    let base = BASE.load(Ordering::Acquire);
    if base != 0 {
        return Some(base);
    }
    let _errno = crate::os::ErrnoGuard::save();
    // SAFETY: a new private anonymous mapping at an address of the kernel's
    // choosing touches no existing memory.
    let mapped = unsafe {
        libc::mmap(
            ptr::null_mut(),
            REGION,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if mapped == libc::MAP_FAILED {
        return None;
    }
    match BASE.compare_exchange(0, mapped.addr(), Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Some(mapped.addr()),
        Err(theirs) => {
            // SAFETY: our own reservation, never published.
            unsafe { libc::munmap(mapped, REGION) };
            Some(theirs)
        }
    }
}

/// A unique inaccessible pointer for a zero-size request, `None` if the
/// region cannot be reserved or every slot is live.
pub(crate) fn allocate() -> Option<NonNull<u8>> {
    let base = region()?;
    let start = CURSOR.load(Ordering::Relaxed);
    for i in 0..WORDS {
        let w = (start + i) % WORDS;
        let mut bits = LIVE[w].load(Ordering::Relaxed);
        while bits != u64::MAX {
            let bit = (!bits).trailing_zeros() as usize;
            let before = LIVE[w].fetch_or(1 << bit, Ordering::Relaxed);
            if before & (1 << bit) == 0 {
                CURSOR.store(w, Ordering::Relaxed);
                return NonNull::new((base + (w * 64 + bit) * SLOT) as *mut u8);
            }
            bits = before | (1 << bit);
        }
    }
    None
}

/// The slot `ptr` points at, if it lies in the region (whether live or
/// not); `Err` for a pointer inside the region that no slot starts at.
fn slot(ptr: NonNull<u8>) -> Option<Result<usize, HeapError>> {
    let base = BASE.load(Ordering::Acquire);
    let offset = ptr.as_ptr().addr().wrapping_sub(base);
    if base == 0 || offset >= REGION {
        return None;
    }
    Some(if offset.is_multiple_of(SLOT) {
        Ok(offset / SLOT)
    } else {
        Err(HeapError::InvalidPointer)
    })
}

/// Whether `ptr` points into the region: a zero-size block, live or not.
#[inline]
pub(crate) fn contains(ptr: NonNull<u8>) -> bool {
    let base = BASE.load(Ordering::Relaxed);
    base != 0 && ptr.as_ptr().addr().wrapping_sub(base) < REGION
}

/// Checks that `ptr` (in the region, see [`contains`]) is a live zero-size
/// block.
pub(crate) fn check(ptr: NonNull<u8>) -> Result<(), HeapError> {
    let index = slot(ptr).ok_or(HeapError::InvalidPointer)??;
    if LIVE[index / 64].load(Ordering::Relaxed) & (1 << (index % 64)) == 0 {
        return Err(HeapError::DoubleFree);
    }
    Ok(())
}

/// Frees the zero-size block `ptr` (in the region, see [`contains`]):
/// exactly one of two frees of it succeeds, the other is a double free.
pub(crate) fn release(ptr: NonNull<u8>) -> Result<(), HeapError> {
    let index = slot(ptr).ok_or(HeapError::InvalidPointer)??;
    let bit = 1 << (index % 64);
    if LIVE[index / 64].fetch_and(!bit, Ordering::Relaxed) & bit == 0 {
        return Err(HeapError::DoubleFree);
    }
    Ok(())
}
