//! The misuse policy: what the library does when it catches the program
//! misusing the heap. Every entry point that refuses a pointer, and every
//! defence that finds a block damaged, hands the finding to [`refuse`]; this
//! file alone decides what is said and whether the process goes on.
//!
//! A caught misuse is one of two kinds, by what it tells about the memory:
//!
//! | kind | misuses | why |
//! |---|---|---|
//! | **nothing damaged** | a pointer the heap never handed out: interior (the subject's `free(addr + 5)`), misaligned, on the stack, in a global, in another allocator's memory | the page map refuses it before anything is read or written through it: the heap is exactly as before, and the program's blocks are intact |
//! | **damage** | a double free or any use of a freed block (`realloc`, `malloc_usable_size`), an overwritten canary (heap overflow), a quarantined block written after free, a free list overwritten after free, corrupt metadata, a sized free with another size | memory the heap manages was already written where it must not be, or the program holds stale pointers it will write through next: going on is what exploits count on (glibc and hardened_malloc abort here) |
//!
//! What each mode (`FT_MALLOC_CHECK`, `mallopt(M_CHECK_ACTION)`) does:
//!
//! | mode | nothing damaged | damage |
//! |---|---|---|
//! | default (unset) | one line on stderr, the call is refused, the program goes on | one line, then `abort()` |
//! | default with `FT_MALLOC_HARDENED=1` | one line, then `abort()` | one line, then `abort()` |
//! | `abort` | one line, then `abort()` | one line, then `abort()` |
//! | `warn` | one line, refused, goes on | one line, refused, goes on |
//! | `quiet` | refused silently | refused silently |
//!
//! "Refused" always means the heap is unchanged by the call: `free` returns,
//! `realloc` returns NULL (with `errno` untouched) and the block stays where
//! it was, `malloc_usable_size` returns 0, and a damaged block is kept out of
//! reuse (it leaks) so that nothing the damage reached is handed out again.
//! The hardened mode aborts on both kinds by default because a program that
//! asked for defences wants a forged pointer treated as an attack, as
//! hardened_malloc does.

use core::ffi::c_void;
use core::ptr::NonNull;

use ft_malloc::HeapError;

use crate::config::{self, CheckMode};
use crate::{os, report};

/// A misuse the library caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// The hardened mode's findings exist only with the C ABI (`c-abi`).
#[cfg_attr(not(feature = "c-abi"), allow(dead_code))]
pub(crate) enum Misuse {
    /// The heap refused the pointer (`Heap::deallocate` and friends).
    Heap(HeapError),
    /// A hardened canary or its trailer was overwritten.
    Overflow,
    /// A quarantined block was written after it was freed.
    WriteAfterFree,
    /// `free_sized` was told another size than the block's.
    WrongSize,
    /// A free list was found overwritten after a free, while serving an
    /// allocation (the heap's corruption handler).
    PoisonedList(HeapError),
}

impl Misuse {
    /// Whether memory was damaged, or is about to be (the table above);
    /// `false` only for a pointer the heap never handed out.
    pub(crate) fn is_damage(self) -> bool {
        // `HeapError` may grow variants: a new one counts as damage until
        // it is known not to be.
        !matches!(self, Misuse::Heap(HeapError::InvalidPointer))
    }

    /// What the report line says after `function():`.
    fn what(self, function: &str) -> &'static str {
        match self {
            // "double free" describes only a second free; elsewhere
            // (realloc, malloc_usable_size) the pointer is simply stale.
            Misuse::Heap(HeapError::DoubleFree)
                if !function.starts_with("free") && !function.starts_with("operator delete") =>
            {
                "pointer already freed"
            }
            Misuse::Heap(error) => error.as_str(),
            Misuse::Overflow => "heap overflow (canary overwritten) at block",
            Misuse::WriteAfterFree => "write after free (quarantined block changed)",
            Misuse::WrongSize => "size differs from the block's",
            Misuse::PoisonedList(HeapError::Corrupted) => {
                "corrupted heap metadata: free list overwritten after free at"
            }
            Misuse::PoisonedList(_) => "free list overwritten after free at",
        }
    }

    /// Hands this misuse of `ptr`, caught in `function`, to [`refuse`].
    #[cold]
    pub(crate) fn report(self, function: &str, ptr: *const c_void) {
        refuse(function, ptr, self);
    }
}

/// Whether `misuse` ends the process in mode `check`.
pub(crate) fn is_fatal(check: CheckMode, misuse: Misuse) -> bool {
    match check {
        CheckMode::AbortOnDamage => misuse.is_damage(),
        CheckMode::Abort => true,
        CheckMode::Warn | CheckMode::Quiet => false,
    }
}

/// The one place a caught misuse goes: reported (one line on stderr,
/// `ft_malloc: free(): invalid pointer 0x…`) unless `quiet`, then
/// `abort()` if the mode makes it fatal. The caller has left the heap
/// unchanged and refuses the call when this returns.
#[cold]
pub(crate) fn refuse(function: &str, ptr: *const c_void, misuse: Misuse) {
    let check = config::current().check;
    if check != CheckMode::Quiet {
        report::misuse_line(function, misuse.what(function), ptr);
    }
    if is_fatal(check, misuse) {
        os::abort();
    }
}

/// The heap's corruption handler (`Heap::set_corruption_handler`): a free
/// list was found overwritten after a free while serving an allocation. The
/// heap already cut the list there (the block at `at` is handed out once,
/// the ones after it leak).
#[cold]
pub(crate) fn heap_corrupted(error: HeapError, at: NonNull<u8>) {
    refuse("malloc", at.as_ptr().cast(), Misuse::PoisonedList(error));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_pointer_never_handed_out_is_harmless() {
        assert!(!Misuse::Heap(HeapError::InvalidPointer).is_damage());
        for damage in [
            Misuse::Heap(HeapError::DoubleFree),
            Misuse::Heap(HeapError::Overflow),
            Misuse::Heap(HeapError::Corrupted),
            Misuse::Overflow,
            Misuse::WriteAfterFree,
            Misuse::WrongSize,
            Misuse::PoisonedList(HeapError::Corrupted),
        ] {
            assert!(damage.is_damage(), "{damage:?}");
        }
    }

    #[test]
    fn each_mode_decides_by_the_kind() {
        let harmless = Misuse::Heap(HeapError::InvalidPointer);
        let damage = Misuse::Heap(HeapError::DoubleFree);
        assert!(!is_fatal(CheckMode::AbortOnDamage, harmless));
        assert!(is_fatal(CheckMode::AbortOnDamage, damage));
        assert!(is_fatal(CheckMode::Abort, harmless) && is_fatal(CheckMode::Abort, damage));
        for quiet in [CheckMode::Warn, CheckMode::Quiet] {
            assert!(!is_fatal(quiet, harmless) && !is_fatal(quiet, damage));
        }
    }

    #[test]
    fn a_stale_pointer_is_not_called_a_double_free_outside_free() {
        let stale = Misuse::Heap(HeapError::DoubleFree);
        assert_eq!(stale.what("free"), "double free");
        assert_eq!(stale.what("free_sized"), "double free");
        assert_eq!(stale.what("operator delete"), "double free");
        assert_eq!(stale.what("realloc"), "pointer already freed");
    }
}
