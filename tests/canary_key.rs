//! The free-mark key is always odd, whatever `set_key` is given: every mark
//! is then odd and the slack canary (the mark's low byte) never zero, so a
//! string's terminating NUL one byte past the request is caught at every
//! address. A test binary of its own: the key is the process's, and must be
//! set before any heap hands out a block.

mod common;

use std::alloc::Layout;

use common::{Counting, arena};
use ft_malloc::{FrontCache, Heap, HeapError};

/// With an even key, a block whose address ends in the key's low byte
/// would have a zero canary, and a NUL written there would go unseen.
#[test]
fn an_even_key_still_catches_a_nul_past_the_request_at_every_address() {
    // SAFETY: the first thing this process does with a heap.
    unsafe { ft_malloc::set_key(0) };
    let heap: Heap<_> = Heap::new(Counting::new(arena(1 << 20)));
    let mut cache = FrontCache::new();
    let layout = Layout::from_size_align(15, 16).unwrap();
    // 16 blocks of 16 bytes cover every value of an address's low byte
    // (bits 4-7); a key of 0 would make that byte the canary.
    for through_cache in [false, true] {
        for _ in 0..16 {
            let p = if through_cache {
                cache.allocate(&heap, layout)
            } else {
                heap.allocate(layout)
            }
            .unwrap();
            // SAFETY: the byte right after the 15 requested ones, inside
            // the 16-byte block: the program's overflow.
            unsafe { p.as_ptr().add(15).write(0) };
            // SAFETY: a block of this heap, not used afterwards.
            let freed = unsafe {
                if through_cache {
                    cache.deallocate(&heap, p)
                } else {
                    heap.deallocate(p)
                }
            };
            assert_eq!(freed, Err(HeapError::Overflow), "{p:p}");
        }
    }
}
