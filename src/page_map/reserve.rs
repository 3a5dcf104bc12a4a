//! The page map's node reserve: the nodes one owner (the LARGE state) sets
//! aside so that re-registering a run it moves can never fail for want of a
//! node (`page_map.rs`, "Concurrency").

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::{LEVELS, NODE_BYTES, PageMap, flat_extent, run_len};
use crate::provider::PageProvider;

/// A registration of one granule creates at most one node per tree level
/// below the root (which exists once anything was registered: a move
/// re-registers a run that was registered before).
const RESERVE_NODES: usize = LEVELS as usize - 1;

/// Nodes set aside by one owner (the LARGE state, under its lock) so that
/// registering one granule later cannot fail, whatever the provider says
/// then. Nobody else draws on it: a class that runs out of nodes cannot
/// take what a LARGE move counted on.
pub(crate) struct NodeReserve {
    nodes: [Option<NonNull<u8>>; RESERVE_NODES],
}

// SAFETY: the reserved nodes are provider memory owned by the reserve.
unsafe impl Send for NodeReserve {}

impl NodeReserve {
    pub(crate) const fn new() -> Self {
        NodeReserve {
            nodes: [None; RESERVE_NODES],
        }
    }

    /// Maps the missing nodes. Returns `false` if the provider refused (the
    /// reserve keeps what it has). A flat map needs none: its one array
    /// exists once anything was registered.
    pub(crate) fn fill<P: PageProvider>(&mut self, provider: &P, metadata: &AtomicUsize) -> bool {
        if flat_extent(provider).is_some() {
            return true;
        }
        for node in &mut self.nodes {
            if node.is_none() {
                *node = Some(match PageMap::new_run(provider, NODE_BYTES, metadata) {
                    Some(fresh) => fresh,
                    None => return false,
                });
            }
        }
        true
    }

    pub(super) fn take(&mut self) -> Option<NonNull<u8>> {
        self.nodes.iter_mut().find_map(Option::take)
    }

    /// Keeps an unpublished node for later; `false` if the reserve is full.
    pub(super) fn put(&mut self, node: NonNull<u8>) -> bool {
        match self.nodes.iter_mut().find(|n| n.is_none()) {
            Some(slot) => {
                *slot = Some(node);
                true
            }
            None => false,
        }
    }

    /// Gives every reserved node back to the provider.
    pub(crate) fn release<P: PageProvider>(&mut self, provider: &P, metadata: &AtomicUsize) {
        while let Some(node) = self.take() {
            let len = run_len(provider, NODE_BYTES);
            // SAFETY: reserved nodes are unpublished node runs from `provider`.
            unsafe { provider.unmap(node, len) };
            metadata.fetch_sub(len, Ordering::Relaxed);
        }
    }
}
