//! The out-of-memory hook: a function the heap calls when a request fails,
//! which may find more memory (grow the provider, drop a cache) before the
//! heap tries once more.
//!
//! It costs nothing on the allocation paths that succeed: the hook is read
//! only after the provider and `trim` have failed. It is one atomic word, so
//! a `const` static heap can have one, set at run time.

use core::alloc::Layout;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};

use lock_api::RawMutex;

use crate::heap::Heap;
use crate::provider::PageProvider;

/// What [`Heap::set_oom_handler`] installs: called with the heap and the
/// request that failed; returns `true` if it made room and the heap should
/// try again.
pub type OomHandler<P, R> = fn(&Heap<P, R>, Layout) -> bool;

/// Where a heap keeps its [`OomHandler`], type-erased (the heap's type
/// fixes the handler's type, so only `Heap::set_oom_handler` writes it).
pub(crate) struct OomHook(AtomicPtr<()>);

impl OomHook {
    pub(crate) const fn new() -> Self {
        OomHook(AtomicPtr::new(ptr::null_mut()))
    }
}

impl<P: PageProvider, R: RawMutex> Heap<P, R> {
    /// Installs `handler` (or removes it, with `None`), replacing any
    /// earlier one.
    ///
    /// When an allocation cannot be served (the provider refused, and
    /// giving back what the heap caches did not help), the heap calls the
    /// handler with itself and the failed request's layout. If it returns
    /// `true`, the heap tries the request once more; the result of that
    /// attempt is final (the handler is not called a second time for it).
    /// Reallocations that must move a block call it too.
    ///
    /// The handler runs with no heap lock held, on the thread whose request
    /// failed, possibly on several threads at once. It may call
    /// [`trim`](Self::trim), [`stats`](Self::stats) and the provider
    /// ([`provider`](Self::provider)), for example to hand an arena more
    /// room; it should not allocate from this heap, whose next failure
    /// would call it again, recursively.
    pub fn set_oom_handler(&self, handler: Option<OomHandler<P, R>>) {
        let raw = handler.map_or(ptr::null_mut(), |f| f as *mut ());
        self.oom.0.store(raw, Ordering::Release);
    }

    /// The installed handler, if any.
    fn oom_handler(&self) -> Option<OomHandler<P, R>> {
        let raw = self.oom.0.load(Ordering::Acquire);
        if raw.is_null() {
            return None;
        }
        // SAFETY: only `set_oom_handler` of this heap stores a non-null
        // value, an `OomHandler<P, R>` cast to a data pointer; function and
        // data pointers have the same size on every target Rust supports,
        // and the round trip gives back the same function pointer.
        Some(unsafe { core::mem::transmute::<*mut (), OomHandler<P, R>>(raw) })
    }

    /// A request failed: call the handler, and if it made room, try once
    /// more. No heap lock is held here.
    #[cold]
    #[inline(never)]
    pub(crate) fn out_of_memory(&self, layout: Layout, zeroed: bool) -> Option<NonNull<u8>> {
        let handler = self.oom_handler()?;
        if !handler(self, layout) {
            return None;
        }
        self.allocate_with(layout, zeroed, false)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use core::alloc::Layout;
    use core::ptr::NonNull;
    use core::sync::atomic::{AtomicUsize, Ordering};

    use crate::{ArenaProvider, Heap, PageProvider};

    /// An arena that hands out at most `limit` bytes: memory an OOM handler
    /// can "add" by raising the limit.
    struct Limited {
        arena: ArenaProvider,
        limit: AtomicUsize,
        calls: AtomicUsize,
    }

    // SAFETY: forwards to the arena, refusing some `map`s.
    unsafe impl PageProvider for Limited {
        fn page_size(&self) -> usize {
            self.arena.page_size()
        }
        fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
            if self.arena.used_bytes() + len > self.limit.load(Ordering::Relaxed) {
                return None;
            }
            self.arena.map(len, align)
        }
        unsafe fn unmap(&self, run: NonNull<u8>, len: usize) {
            // SAFETY: same contract.
            unsafe { self.arena.unmap(run, len) }
        }
    }

    type LimitedHeap = Heap<Limited>;

    /// Raises the limit by what the request needs (plus room for a zone
    /// and a page-map node) and asks for a retry.
    fn grow(heap: &LimitedHeap, layout: Layout) -> bool {
        let p = heap.provider();
        p.calls.fetch_add(1, Ordering::Relaxed);
        let need = layout.size().next_multiple_of(4096) + (128 << 10);
        p.limit.fetch_add(need, Ordering::Relaxed);
        true
    }

    /// Claims to have made room without doing so.
    fn lie(heap: &LimitedHeap, _: Layout) -> bool {
        heap.provider().calls.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn with_heap(test: impl FnOnce(&LimitedHeap)) {
        let mut region = std::vec![0u8; 8 << 20];
        // SAFETY: the region outlives the heap, dropped inside this function.
        let arena = unsafe { ArenaProvider::new(region.as_mut_ptr(), region.len()) };
        let heap = Heap::new(Limited {
            arena,
            limit: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
        });
        test(&heap);
        drop(heap);
        drop(region);
    }

    fn calls(heap: &LimitedHeap) -> usize {
        heap.provider().calls.load(Ordering::Relaxed)
    }

    const SMALL: Layout = Layout::new::<[u64; 4]>();
    const LARGE: Layout = Layout::new::<[u8; 100_000]>();

    #[test]
    fn without_a_handler_a_failure_is_final() {
        with_heap(|heap| {
            assert!(heap.allocate(SMALL).is_none());
            assert!(heap.allocate(LARGE).is_none());
        });
    }

    #[test]
    fn a_handler_that_grows_the_provider_makes_the_retry_succeed() {
        with_heap(|heap| {
            heap.set_oom_handler(Some(grow));
            let small = heap.allocate(SMALL).expect("retried after the handler");
            assert_eq!(calls(heap), 1);
            let large = heap.allocate_zeroed(LARGE).expect("LARGE too");
            assert_eq!(calls(heap), 2);
            // SAFETY: 100_000 zeroed bytes just allocated.
            assert!(
                unsafe { core::slice::from_raw_parts(large.as_ptr(), 100_000) }
                    .iter()
                    .all(|&b| b == 0)
            );
            // Requests that fit are never reported.
            let again = heap.allocate(SMALL).unwrap();
            assert_eq!(calls(heap), 2);
            // SAFETY: blocks of this heap, not used afterwards.
            unsafe {
                heap.deallocate(small).unwrap();
                heap.deallocate(again).unwrap();
                heap.deallocate(large).unwrap();
            }
        });
    }

    #[test]
    fn the_retry_happens_once_and_a_refusal_is_respected() {
        with_heap(|heap| {
            heap.set_oom_handler(Some(lie));
            assert!(heap.allocate(SMALL).is_none());
            assert_eq!(calls(heap), 1, "one call, one retry, no loop");
            assert!(heap.allocate(LARGE).is_none());
            assert_eq!(calls(heap), 2);
            heap.set_oom_handler(Some(|heap, _| {
                heap.provider().calls.fetch_add(1, Ordering::Relaxed);
                false
            }));
            assert!(heap.allocate(SMALL).is_none());
            assert_eq!(calls(heap), 3);
            heap.set_oom_handler(None);
            assert!(heap.allocate(SMALL).is_none());
            assert_eq!(calls(heap), 3);
        });
    }
}
