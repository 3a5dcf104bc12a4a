//! What `Heap::visit` reports of a pool segment: a SMALL zone of 16-byte
//! slots and its live blocks, walked by their headers in address order.

use core::ptr::NonNull;

use lock_api::RawMutex;

use crate::coalesce::block::{self, GRAIN, HEADER};
use crate::coalesce::segment;
use crate::heap::Heap;
use crate::introspect::{BlockInfo, HeapVisitor, ZoneInfo};
use crate::provider::PageProvider;
use crate::size_class::Kind;

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// Reports a segment and its live blocks (`visit`, every lock held).
    pub(crate) fn visit_pool(&self, base: NonNull<u8>, visitor: &mut impl HeapVisitor) {
        // SAFETY: a registered segment; every lock is held.
        let Some(len) = (unsafe { segment::len(base) }) else {
            return;
        };
        let start = base.as_ptr().addr();
        let info = ZoneInfo {
            kind: Kind::Small,
            start,
            len,
            block_size: GRAIN,
            capacity: len / GRAIN,
            carved: len / GRAIN,
            // SAFETY: as above.
            live: unsafe { segment::live(base) },
            cached: 0,
        };
        visitor.zone(&info);
        let end = start + len;
        let mut h = base.as_ptr().wrapping_add(segment::blocks_offset(len));
        while h.addr() < end {
            // SAFETY: blocks tile the segment; a broken header ends the walk.
            let Some(hd) = (unsafe { block::intact(h, end) }) else {
                return;
            };
            if hd.is_live() {
                let user = h.addr() + HEADER;
                visitor.block(
                    &info,
                    &BlockInfo {
                        start: user,
                        requested: hd.requested(),
                        usable: hd.size as usize - HEADER,
                        index: (user - start) / GRAIN,
                    },
                );
            }
            h = h.wrapping_add(hd.size as usize);
        }
    }
}
