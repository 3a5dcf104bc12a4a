//! Walks over the page map: every registered granule in address order
//! (`show_alloc_mem`, `visit`, a heap's drop), and every tree node (to give
//! them back).

use core::ptr::NonNull;
use core::sync::atomic::Ordering;

use super::{
    FANOUT, GRANULE_SHIFT, HIGH_MASK, LEVELS, NODE_BITS, NODE_BYTES, Owner, PageMap, run_len,
    slot_at,
};
use crate::provider::PageProvider;

impl PageMap {
    /// Calls `f` with every registered granule's address and owner, in
    /// increasing address order (of the granule index).
    pub(crate) fn for_each(&self, mut f: impl FnMut(usize, Owner)) {
        let flat_len = self.flat_len.load(Ordering::Acquire);
        if flat_len == 0 {
            // SAFETY: `tree` is null or the published tree root.
            unsafe { for_each_in_tree(self.tree.load(Ordering::Acquire), 0, usize::MAX, &mut f) };
            return;
        }
        let start = self.flat_start.load(Ordering::Relaxed);
        let end = start + (flat_len << GRANULE_SHIFT);
        let outside = self.tree.load(Ordering::Acquire);
        // SAFETY: `outside` is null or the published root of the tree of
        // runs outside the span.
        unsafe { for_each_in_tree(outside, 0, start, &mut f) };
        let array = self.flat_array();
        // Only the slots the provider's runs reached so far: a large span's
        // array (1/512 of the span) is committed page by page as written.
        let used = self.flat_used.load(Ordering::Acquire).min(flat_len);
        for g in 0..used {
            // SAFETY: the flat array has `flat_len` slots.
            let slot = unsafe { slot_at(array, g) }.load(Ordering::Acquire);
            if let Some(owner) = Owner::decode(slot) {
                f(start + (g << GRANULE_SHIFT), owner);
            }
        }
        // SAFETY: as above.
        unsafe { for_each_in_tree(outside, end, usize::MAX, &mut f) };
    }
}

/// Calls `f` with every granule registered in the tree at `root` whose
/// address is in `[from, to)`, in increasing order.
///
/// # Safety
///
/// `root` is null or a published tree root.
unsafe fn for_each_in_tree(
    root: *mut u8,
    from: usize,
    to: usize,
    f: &mut impl FnMut(usize, Owner),
) {
    if root.is_null() {
        return;
    }
    let mut visit = |g: usize, slot: *mut u8| {
        if let Some(owner) = Owner::decode(slot) {
            let high = owner.base().as_ptr().addr() & HIGH_MASK;
            let addr = high | (g << GRANULE_SHIFT);
            if (from..to).contains(&addr) {
                f(addr, owner);
            }
        }
    };
    // SAFETY: the root is a published node at the top level.
    unsafe { walk(root, LEVELS - 1, 0, &mut visit) };
}

/// Gives every node of the tree at `root` (null: none) back to `provider`.
///
/// # Safety
///
/// The tree's nodes are runs from `provider` that only the caller can see.
pub(super) unsafe fn release_tree<P: PageProvider>(provider: &P, root: *mut u8) {
    let Some(root) = NonNull::new(root) else {
        return;
    };
    let node_len = run_len(provider, NODE_BYTES);
    let mut release = |node: NonNull<u8>| {
        // SAFETY: every tree node is a node run from `provider`, and only we
        // can see it now.
        unsafe { provider.unmap(node, node_len) };
    };
    // SAFETY: the root is a live node that only we can see.
    unsafe {
        walk_nodes(root.as_ptr(), LEVELS - 1, &mut release);
        provider.unmap(root, node_len);
    }
}

/// Calls `f(granule, slot)` for every non-null leaf slot of the tree under
/// `node`, a node at `level` (0 = leaf) whose first granule is `first`, in
/// increasing granule order.
///
/// # Safety
///
/// `node` is a live tree node at `level`.
unsafe fn walk(node: *mut u8, level: u32, first: usize, f: &mut dyn FnMut(usize, *mut u8)) {
    for i in 0..FANOUT {
        // SAFETY: per the contract; nodes have FANOUT slots.
        let slot = unsafe { slot_at(node, i) }.load(Ordering::Acquire);
        if slot.is_null() {
            continue;
        }
        let g = first | (i << (level * NODE_BITS));
        if level == 0 {
            f(g, slot);
        } else {
            // SAFETY: a non-null slot above the leaves is a live child node.
            unsafe { walk(slot, level - 1, g, f) };
        }
    }
}

/// Calls `f(child)` for every node below `node` (at `level`), each after
/// the nodes below it.
///
/// # Safety
///
/// `node` is a live tree node at `level` that only the caller can see.
unsafe fn walk_nodes(node: *mut u8, level: u32, f: &mut dyn FnMut(NonNull<u8>)) {
    if level == 0 {
        return;
    }
    for i in 0..FANOUT {
        // SAFETY: per the contract.
        let child = unsafe { slot_at(node, i) }.load(Ordering::Relaxed);
        if let Some(child) = NonNull::new(child) {
            // SAFETY: a non-null slot above the leaves is a live child node.
            unsafe { walk_nodes(child.as_ptr(), level - 1, f) };
            f(child);
        }
    }
}
