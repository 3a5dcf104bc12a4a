//! A C request as a Rust [`Layout`]: the rules every C entry point and the
//! hardened mode share.

use core::alloc::Layout;

/// The alignment `malloc` guarantees (`alignof(max_align_t)` on x86_64).
pub(crate) const DEFAULT_ALIGN: usize = ft_malloc::DEFAULT_ALIGN;

/// The layout of a C request, or `None` when the size is impossible: larger
/// than `PTRDIFF_MAX`, as glibc refuses (pointer differences inside the block
/// must be representable).
#[inline]
pub(crate) fn c_layout(size: usize, align: usize) -> Option<Layout> {
    if size > isize::MAX as usize {
        return None;
    }
    Layout::from_size_align(size, align).ok()
}
