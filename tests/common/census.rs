//! What `Heap::visit` saw: the live blocks and the count of cached ones.

use ft_malloc::{BlockInfo, HeapVisitor, ZoneInfo};

/// The live blocks (address, requested size) and cached blocks `visit` saw.
#[derive(Default)]
pub struct Census {
    pub live: Vec<(usize, usize)>,
    pub cached: usize,
}

impl HeapVisitor for Census {
    fn zone(&mut self, zone: &ZoneInfo) {
        self.cached += zone.cached;
    }
    fn block(&mut self, _zone: &ZoneInfo, block: &BlockInfo) {
        self.live.push((block.start, block.requested));
    }
}
