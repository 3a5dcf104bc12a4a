//! The hardened mode: defences against heap misuse, each a named option
//! (`config.rs` reads them; `FT_MALLOC_HARDENED=1` turns them all on).
//!
//! | option | defence | catches |
//! |---|---|---|
//! | `FT_MALLOC_CANARY` | canary bytes and a keyed trailer after the requested size of every block (`canary.rs`), checked on `free`/`realloc` | overflows into the block's slack or the next block; any use of `malloc(0)`'s bytes |
//! | `FT_MALLOC_QUARANTINE` | freed TINY/SMALL blocks held in a per-thread FIFO of 512, zero-filled and tagged, checked when they leave (`quarantine.rs`) | writes after free (while held); double frees of held blocks (from any thread); delays reuse |
//! | `FT_MALLOC_GUARD_PAGES` | an inaccessible page before and after every zone and LARGE run (`guard_pages.rs`); LARGE blocks start on a page, and a freed one is made inaccessible and held (8 blocks, 32 MiB at most) before its run is reused (`large_quarantine.rs`); `malloc(0)` points into an inaccessible region (`zero_size.rs`) | reads/writes after free of LARGE blocks (while held), overflows off a zone or LARGE run, any access through `malloc(0)`: SIGSEGV |
//! | `FT_MALLOC_ZERO_ON_FREE` | freed blocks are zeroed (a held LARGE block when it leaves the quarantine: until then it cannot be read) | reads after free see zeros (or fault), not the old data |
//! | `FT_MALLOC_RANDOM_SLOTS` | a TINY or SMALL `malloc` hands out a random one of the thread's cached blocks of the class, not the last freed | heap layouts an exploit relies on (the next block being the one just freed, or the neighbour of the last one) |
//! | `FT_MALLOC_SIZED_CHECK` | `free_sized`/`free_aligned_sized` compare the size with the block's (exactly with canaries, else against its usable size) | a sized free with the wrong size |
//!
//! All of it runs in the C functions' cold path (`config::plain()` is false
//! when any defence is on): the default mode's fast paths are unchanged.
//! `malloc` and `free` enter it through `config::defences_only()` (one load
//! and a mask, the settings not decoded), a TINY/SMALL block is validated
//! once without a lock (`Heap::small_usable_size`), and the quarantine
//! needs no lock (one FIFO per thread, next to its front cache).
//! What a caught misuse does is the policy's (`policy.rs`: abort by default
//! in the hardened mode). In
//! `warn` or `quiet` mode a block whose canary or quarantine check failed is
//! not freed (kept out of reuse, it leaks), so nothing is corrupted further.
//!
//! `realloc` of a guarded block stays in place when the block has room
//! (a TINY/SMALL block's, `Heap::resize_in_block`; a LARGE block's run,
//! shrunk when a shrink frees a page or more), the canary re-armed; else
//! it is a new allocation, a copy and a hardened free of the old block (no
//! `mremap`). Blocks handed out through
//! Rust's `FtMalloc` are not hardened.

mod bytes;
mod canary;
mod keys;
mod large_quarantine;
pub(crate) mod per_thread;
mod quarantine;
mod zero_size;

use core::ffi::c_void;
use core::ptr::{self, NonNull};

use ft_malloc::{HeapError, SMALL_MAX, SizeClass};

use crate::config::Defences;
use crate::policy::Misuse;
use crate::{HEAP, thread_cache};

/// Fork prepare: no thread may hold a quarantine's lock when the address
/// space is copied.
pub(crate) fn before_fork() {
    large_quarantine::before_fork();
    quarantine::before_fork();
}

/// Fork, parent and child: release the quarantines' locks.
///
/// # Safety
///
/// [`before_fork`] took them on this thread (or on the parent's thread this
/// child is a copy of).
pub(crate) unsafe fn after_fork() {
    // SAFETY: per the contract.
    unsafe {
        large_quarantine::after_fork();
        quarantine::after_fork();
    }
}

/// Makes the calling thread's next allocation of `class` a random one of
/// its cached blocks (`FT_MALLOC_RANDOM_SLOTS`).
fn shuffle(class: SizeClass) {
    if let Some((cache, state)) = thread_cache::hardened_state() {
        cache.shuffle(class, (state.next_random() >> 32) as usize);
    }
}

/// Allocates `size` bytes aligned to `align` with `defences`
/// (the canary's extra bytes). `None` when out of memory.
pub(crate) fn allocate(
    size: usize,
    align: usize,
    zeroed: bool,
    defences: Defences,
) -> Option<NonNull<u8>> {
    if size == 0 && defences.has(Defences::GUARD_PAGES) {
        return allocate_zero_size(align, zeroed, defences);
    }
    allocate_reserving(size, size, align, zeroed, defences)
}

/// [`allocate`] of 0 bytes with guard pages: a slot of the inaccessible
/// region (`zero_size.rs`), or a heap block if it is full or a bigger
/// alignment is asked.
#[cold]
#[inline(never)]
fn allocate_zero_size(align: usize, zeroed: bool, defences: Defences) -> Option<NonNull<u8>> {
    if align <= crate::layout::DEFAULT_ALIGN
        && let Some(block) = zero_size::allocate()
    {
        return Some(block);
    }
    allocate_reserving(0, 0, align, zeroed, defences)
}

/// [`allocate`], with room for `reserve >= size` bytes (`realloc`'s
/// headroom).
#[inline]
fn allocate_reserving(
    size: usize,
    reserve: usize,
    align: usize,
    zeroed: bool,
    defences: Defences,
) -> Option<NonNull<u8>> {
    let canary = defences.has(Defences::CANARY);
    let total = request_for(reserve, defences)?;
    let class = SizeClass::for_layout(total, align);
    // A LARGE block starts on a page, so that it can be made inaccessible
    // when freed without its run's header (`large_quarantine.rs`).
    let align = if class.is_none() && crate::guard_pages::enabled() {
        align.max(large_quarantine::PAGE)
    } else {
        align
    };
    let layout = crate::layout::c_layout(total, align)?;
    if let Some(class) = class
        && defences.has(Defences::RANDOM_SLOTS)
    {
        shuffle(class);
    }
    let block = if zeroed {
        thread_cache::allocate_zeroed(layout)?
    } else {
        thread_cache::allocate(layout)?
    };
    if canary {
        // What `usable_size` will answer for the block: the request for a
        // TINY or SMALL block (the core's slack canary follows it), the
        // run's usable bytes for a LARGE one (the heap may serve a small
        // request with a LARGE run when zones are scarce).
        let usable = if HEAP.zone_block_size(block).is_some() {
            total
        } else {
            HEAP.usable_size(block).unwrap_or(total)
        };
        // SAFETY: a fresh block of `usable >= size + EXTRA` bytes.
        unsafe { canary::arm(block, size, usable) };
    }
    Some(block)
}

/// What the heap is asked for a request of `size` bytes with `defences`:
/// the canary's bytes added, or room for the quarantine's tag (within the
/// request: the core's slack canary follows it). `None` on overflow.
fn request_for(size: usize, defences: Defences) -> Option<usize> {
    if defences.has(Defences::CANARY) {
        size.checked_add(canary::EXTRA)
    } else if defences.has(Defences::QUARANTINE) {
        Some(size.max(quarantine::TAG_BYTES))
    } else {
        Some(size)
    }
}

/// A live block's size for the program (the requested size when canaries
/// are on) and its usable size, after every check that applies: the
/// heap's, the quarantine's double free, the canary (all of its bytes, or
/// the first `window`).
fn checked(
    block: NonNull<u8>,
    defences: Defences,
    window: Option<usize>,
) -> Result<(usize, usize), Misuse> {
    // The lock-free check first (a live TINY or SMALL block), the heap's
    // locked one for the rest.
    let usable = match HEAP.small_usable_size(block) {
        Some(usable) => usable,
        None => {
            let usable = HEAP.usable_size(block).map_err(Misuse::Heap)?;
            if usable > SMALL_MAX && large_quarantine::holds(block) {
                return Err(Misuse::Heap(HeapError::DoubleFree));
            }
            usable
        }
    };
    // SAFETY: the heap counts `block` as live: `usable` readable bytes.
    if defences.has(Defences::QUARANTINE) && unsafe { quarantine::holds(block) } {
        return Err(Misuse::Heap(HeapError::DoubleFree));
    }
    if defences.has(Defences::CANARY) {
        // SAFETY: as above.
        let Some(size) = (unsafe { canary::check(block, usable, window) }) else {
            // A racing free that claimed the block zero-fills it: then its
            // tag is there, and this is a double free (`quarantine.rs`).
            // SAFETY: as above.
            if defences.has(Defences::QUARANTINE) && unsafe { quarantine::holds(block) } {
                return Err(Misuse::Heap(HeapError::DoubleFree));
            }
            return Err(Misuse::Overflow);
        };
        return Ok((size, usable));
    }
    Ok((usable, usable))
}

/// `malloc_usable_size` with the defences on: the requested size when
/// canaries are on (the bytes after it are not the program's).
pub(crate) fn usable_size(ptr: *mut c_void, defences: Defences) -> usize {
    let Some(block) = NonNull::new(ptr.cast::<u8>()) else {
        return 0;
    };
    if zero_size::contains(block) {
        if let Err(error) = zero_size::check(block) {
            Misuse::Heap(error).report("malloc_usable_size", ptr);
        }
        return 0;
    }
    match checked(block, defences, None) {
        Ok((size, _)) => size,
        Err(misuse) => {
            misuse.report("malloc_usable_size", ptr);
            0
        }
    }
}

/// Frees `ptr` for `function` with the defences on, `expected` the size
/// `free_sized` was told. Returns whether the pointer was accepted.
pub(crate) fn release(
    function: &str,
    ptr: *mut c_void,
    expected: Option<usize>,
    defences: Defences,
) -> bool {
    let Some(block) = NonNull::new(ptr.cast::<u8>()) else {
        return true;
    };
    if zero_size::contains(block) {
        let result = if let Some(expected) = expected
            && expected != 0
            && defences.has(Defences::SIZED_CHECK)
        {
            zero_size::check(block)
                .map_err(Misuse::Heap)
                .and(Err(Misuse::WrongSize))
        } else {
            zero_size::release(block).map_err(Misuse::Heap)
        };
        return result
            .map_err(|misuse| misuse.report(function, ptr))
            .is_ok();
    }
    // A TINY or SMALL block no defence acts on (guard pages act on LARGE
    // runs only; random slots on `malloc`): the cache's own free validates
    // it, once.
    if expected.is_none()
        && !defences.has(Defences::CANARY | Defences::QUARANTINE | Defences::ZERO_ON_FREE)
        && HEAP.zone_block_size(block).is_some()
    {
        // SAFETY: `deallocate` validates the pointer first.
        return match unsafe { thread_cache::deallocate(block) } {
            Ok(()) => true,
            Err(error) => {
                Misuse::Heap(error).report(function, ptr);
                false
            }
        };
    }
    // Not a TINY or SMALL block: with guard pages, a LARGE free runs from
    // its check to its hold alone (`large_quarantine.rs`, "Racing frees").
    let _serialised = (crate::guard_pages::enabled() && HEAP.zone_block_size(block).is_none())
        .then(large_quarantine::serialise_free);
    let (size, usable) = match checked(block, defences, None) {
        Ok(sizes) => sizes,
        Err(misuse) => {
            misuse.report(function, ptr);
            return false;
        }
    };
    if let Some(expected) = expected
        && defences.has(Defences::SIZED_CHECK)
        && (expected > size || (defences.has(Defences::CANARY) && expected != size))
    {
        Misuse::WrongSize.report(function, ptr);
        return false;
    }
    let large = usable > SMALL_MAX;
    // A block too small for the tag (allocated before the settings were
    // read) is not held.
    if defences.has(Defences::QUARANTINE) && !large && usable >= quarantine::TAG_BYTES {
        // Of two frees racing for the block, one claims it.
        // SAFETY: a live small block the program gave up.
        if !unsafe { quarantine::claim(block) } {
            Misuse::Heap(HeapError::DoubleFree).report(function, ptr);
            return false;
        }
        // SAFETY: a live small block the program gave up, claimed above.
        let ring = thread_cache::hardened_state().map(|(_, state)| &mut state.quarantine);
        // SAFETY: as above.
        if let Some((old, old_usable)) = unsafe { quarantine::hold(ring, block, usable) } {
            // SAFETY: an evicted block: still live in the heap, ours.
            if unsafe { quarantine::check_and_release(old, old_usable) } {
                free_now(old);
            } else {
                // Kept out of reuse: whoever wrote to it may still.
                Misuse::WriteAfterFree.report(function, old.as_ptr().cast());
            }
        }
        return true;
    }
    let zero = defences.has(Defences::ZERO_ON_FREE);
    if large && crate::guard_pages::enabled() {
        // Held inaccessible for a while, zeroed first if asked: now, while
        // its pages are still in the TLB and perhaps the cache (zeroing it
        // when it leaves, eight frees later, cost twice as much: 13 us
        // against 4.4 without zeroing, per 200 KB pair). Only the pages of
        // the bytes the program had (`size`): a reused run may be several
        // times bigger, and each page protected costs.
        let held = size.max(1).next_multiple_of(large_quarantine::PAGE);
        if zero {
            // SAFETY: the block's first `held <= usable` bytes (`size`
            // rounded up to the page, and runs are whole pages), which the
            // program gave up.
            unsafe { ptr::write_bytes(block.as_ptr(), 0, held.min(usable)) };
        }
        let give_back = |old: NonNull<u8>, _held: usize| free_now(old);
        // SAFETY: a live LARGE block the program gave up, checked above.
        if !unsafe { large_quarantine::hold(block, held, usable, give_back) } {
            // Not held: unmapped (no freed LARGE run stays mapped; an
            // unmapped run needs no zeroing).
            free_now(block);
            HEAP.trim_large_cache();
        }
        return true;
    }
    if zero {
        // SAFETY: the block's `usable` bytes, which the program gave up.
        unsafe { ptr::write_bytes(block.as_ptr(), 0, usable) };
    }
    free_now(block);
    true
}

/// Gives a checked block back to the heap.
fn free_now(block: NonNull<u8>) {
    // SAFETY: `deallocate` validates the pointer first.
    if let Err(error) = unsafe { thread_cache::deallocate(block) } {
        Misuse::Heap(error).report("free", block.as_ptr().cast());
    }
}

/// `realloc(ptr, size)` (`ptr` not NULL, `size` not 0) with the defences on.
/// In place when the block has room (the canary re-armed); else a new block
/// (a LARGE one with half again as much room, so a block grown a few bytes
/// at a time moves O(log n) times: with guard pages there is no `mremap`),
/// the old contents copied, the old block freed with every defence.
/// `Err(())` when the old pointer was refused (and reported); `Ok(None)`
/// when out of memory (the old block intact).
pub(crate) fn reallocate(
    function: &str,
    ptr: *mut c_void,
    size: usize,
    defences: Defences,
) -> Result<Option<NonNull<u8>>, ()> {
    let old = NonNull::new(ptr.cast::<u8>()).ok_or(())?;
    if zero_size::contains(old) {
        // Nothing to copy: a new block, then the zero-size one freed.
        zero_size::check(old).map_err(|error| Misuse::Heap(error).report(function, ptr))?;
        let Some(new) = allocate(size, crate::layout::DEFAULT_ALIGN, false, defences) else {
            return Ok(None);
        };
        release(function, ptr, None, defences);
        return Ok(Some(new));
    }
    let (old_size, usable) = checked(old, defences, Some(canary::REALLOC_WINDOW))
        .map_err(|misuse| misuse.report(function, ptr))?;
    let canary = defences.has(Defences::CANARY);
    let Some(needed) = request_for(size, defences) else {
        return Ok(None);
    };
    // A TINY or SMALL block: its usable size is its request (the core's
    // slack canary follows it), but its block may hold more. The core moves
    // its request's end (and its slack canary) within the block.
    if usable <= SMALL_MAX && HEAP.zone_block_size(old).is_some() {
        // SAFETY: a live block the caller holds, checked above.
        match unsafe { HEAP.resize_in_block(old, needed) } {
            Ok(true) => {
                if canary {
                    // SAFETY: a live block whose request is now `needed =
                    // size + EXTRA` bytes.
                    unsafe { canary::arm(old, size, needed) };
                }
                return Ok(Some(old));
            }
            Ok(false) => {}
            Err(error) => {
                Misuse::Heap(error).report(function, ptr);
                return Err(());
            }
        }
    } else if needed <= usable
        && SizeClass::for_layout(needed, crate::layout::DEFAULT_ALIGN).is_none()
    {
        // A LARGE block with room (a shrink to a TINY or SMALL size moves,
        // below, as in the default mode). A shrink that frees a page or more
        // gives the run's tail back: the heap shrinks the run in place (the
        // provider unmaps the tail, past a new guard page when runs have
        // them). A growth keeps the room a move reserved: without canaries
        // the request is not known here (`old_size` is the run's room, half
        // again the request after a move), so only a shrink to half the
        // room or less counts.
        let shrink = if canary {
            size < old_size
        } else {
            needed <= usable / 2
        };
        if shrink
            && needed + large_quarantine::PAGE <= usable
            && let Some(layout) = crate::layout::c_layout(needed, crate::layout::DEFAULT_ALIGN)
            // SAFETY: a live block the caller holds, checked above. A LARGE
            // size keeps it LARGE, and a shrink never moves a run.
            && let Ok(shrunk) = unsafe { HEAP.reallocate(old, layout) }
        {
            if canary {
                // Re-armed whole: the old trailer went with the tail.
                let usable = HEAP.usable_size(shrunk).unwrap_or(needed);
                // SAFETY: a live block of `usable >= needed = size + EXTRA`
                // bytes, ours.
                unsafe { canary::arm(shrunk, size, usable) };
            }
            return Ok(Some(shrunk));
        }
        if canary {
            // SAFETY: a live block of `usable >= size + EXTRA` bytes, armed
            // for `old_size` (just checked).
            unsafe { canary::resize_in_place(old, old_size, size, usable) };
        }
        return Ok(Some(old));
    }
    let reserve = if size > SMALL_MAX {
        size.saturating_add(size / 2)
    } else {
        size
    };
    let Some(new) =
        allocate_reserving(size, reserve, crate::layout::DEFAULT_ALIGN, false, defences)
            .or_else(|| allocate(size, crate::layout::DEFAULT_ALIGN, false, defences))
    else {
        return Ok(None);
    };
    // SAFETY: both blocks are live and distinct; `min(old, new)` bytes fit
    // in each.
    unsafe { ptr::copy_nonoverlapping(old.as_ptr(), new.as_ptr(), old_size.min(size)) };
    release(function, ptr, None, defences);
    Ok(Some(new))
}
