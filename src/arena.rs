//! A [`PageProvider`] over one fixed region of memory (documented on
//! [`ArenaProvider`], where `cargo doc` shows it).
//!
//! The page bitmap lives inside the provider for regions of up to
//! [`INLINE_PAGES`] pages (so a small region loses no page to it) and in the
//! region's own first pages beyond that.

use core::fmt;
use core::ptr::NonNull;

use crate::provider::{MIN_PAGE_SIZE, PageProvider};

const PAGE: usize = MIN_PAGE_SIZE;
const BITS: usize = u64::BITS as usize;
/// Bitmap words kept inside the provider.
const INLINE_WORDS: usize = 4;
/// Regions of up to this many pages (1 MiB) keep their bitmap inline.
const INLINE_PAGES: usize = INLINE_WORDS * BITS;
/// Once this many eighths of the pages are handed out (half), `map` and a
/// moving `resize` take the
/// smallest hole that fits instead of the lowest: the big holes stay for
/// big runs (first fit splits them for small ones). Below that, first fit
/// is enough and does not scan the whole bitmap.
const BEST_FIT_FILL_EIGHTHS: usize = 4;

/// Page runs carved from one caller-given region: for kernels before paging
/// is up, embedded targets without an MMU, tests and benchmarks.
///
/// The region is cut into 4 KiB pages; a bitmap, kept in the region's own
/// first pages (one bit per page: 32 bytes per MiB), says which are handed
/// out. `map` is first fit from the lowest page that may be free, which
/// keeps runs packed at the bottom of the region, and best fit once half
/// the pages are handed out; `resize` grows a run in place when the pages
/// after it are free, always shrinks in place, and, when it may move, takes
/// the place `map` would choose counting the run's own pages as free (so
/// the free pages before and after it join) and copies the contents there
/// (`memmove`). Freshly mapped pages are not zeroed (`zeroed_on_map` is
/// false): the region may hold anything. A region that is not page aligned
/// loses its first partial page.
///
/// The bookkeeping sits behind a spin lock of its own, taken briefly inside
/// the heap's locks; the region can be any size up to the address space.
///
/// ```
/// use core::mem::MaybeUninit;
/// use ft_malloc::ArenaProvider;
///
/// static mut REGION: [MaybeUninit<u8>; 256 << 10] = [MaybeUninit::uninit(); 256 << 10];
/// // SAFETY: REGION is used by nothing else.
/// let arena = unsafe { ArenaProvider::new((&raw mut REGION).cast(), 256 << 10) };
/// // Less the bitmap page and, the region being byte aligned, a partial page.
/// assert!(arena.capacity_bytes() >= 248 << 10);
/// ```
pub struct ArenaProvider {
    region: *mut u8,
    region_len: usize,
    state: spin::Mutex<Option<Pages>>,
}

// SAFETY: the region is owned by the provider (per `new`'s contract) and all
// bookkeeping is behind the spin lock.
unsafe impl Send for ArenaProvider {}
// SAFETY: as above.
unsafe impl Sync for ArenaProvider {}

/// The region and, without waiting for the lock, how much is handed out.
impl fmt::Debug for ArenaProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ArenaProvider");
        d.field("region", &self.region)
            .field("region_len", &self.region_len);
        // `try_lock`: a Debug print must not wait (or deadlock) on a heap
        // that is in the middle of mapping.
        if let Some(state) = self.state.try_lock()
            && let Some(pages) = state.as_ref()
        {
            d.field("used_bytes", &((pages.used - pages.bitmap_pages()) * PAGE));
        }
        d.finish_non_exhaustive()
    }
}

/// The page bitmap, set up on first use.
struct Pages {
    /// First page-aligned byte of the region.
    base: *mut u8,
    /// Pages in the region, including the bitmap's own.
    count: usize,
    /// One bit per page, set when handed out (or used by the bitmap): the
    /// region's first pages if it has more than [`INLINE_PAGES`] pages...
    bitmap: *mut u64,
    /// ... or else these words.
    inline: [u64; INLINE_WORDS],
    used: usize,
    /// No page below this index is free.
    first_free: usize,
}

impl ArenaProvider {
    /// A provider over `[start, start + len)`. Nothing is written until the
    /// first `map`.
    ///
    /// # Safety
    ///
    /// The region must be valid for reads and writes, unused by anything
    /// else for as long as the provider (and any heap over it) lives.
    pub const unsafe fn new(start: *mut u8, len: usize) -> Self {
        ArenaProvider {
            region: start,
            region_len: len,
            state: spin::Mutex::new(None),
        }
    }

    /// Bytes currently handed out (the bitmap's own pages excluded).
    pub fn used_bytes(&self) -> usize {
        let mut state = self.state.lock();
        self.pages(&mut state)
            .map_or(0, |p| (p.used - p.bitmap_pages()) * PAGE)
    }

    /// Bytes that can be handed out in total.
    pub fn capacity_bytes(&self) -> usize {
        let mut state = self.state.lock();
        self.pages(&mut state)
            .map_or(0, |p| (p.count - p.bitmap_pages()) * PAGE)
    }

    /// Page-aligned start and page count of the region.
    fn extent(region: *mut u8, len: usize) -> Option<(*mut u8, usize)> {
        let pad = region.addr().next_multiple_of(PAGE) - region.addr();
        Some((region.wrapping_add(pad), len.checked_sub(pad)? / PAGE))
    }

    fn pages<'a>(&self, state: &'a mut Option<Pages>) -> Option<&'a mut Pages> {
        if state.is_none() {
            *state = Pages::init(self.region, self.region_len);
        }
        state.as_mut()
    }
}

impl Pages {
    fn init(region: *mut u8, len: usize) -> Option<Pages> {
        let (base, count) = ArenaProvider::extent(region, len)?;
        let bitmap_pages = Self::bitmap_pages_for(count);
        if count <= bitmap_pages {
            return None;
        }
        let mut pages = Pages {
            base,
            count,
            bitmap: base.cast(),
            inline: [0; INLINE_WORDS],
            used: 0,
            first_free: 0,
        };
        if bitmap_pages > 0 {
            // SAFETY: the bitmap's pages are the first of the region, which
            // the caller of `ArenaProvider::new` gave us.
            unsafe { core::ptr::write_bytes(pages.bitmap, 0, count.div_ceil(BITS)) };
        }
        pages.set(0, bitmap_pages, true);
        pages.first_free = bitmap_pages;
        Some(pages)
    }

    const fn bitmap_pages_for(count: usize) -> usize {
        if count <= INLINE_PAGES {
            0
        } else {
            (count.div_ceil(BITS) * 8).div_ceil(PAGE)
        }
    }

    fn bitmap_pages(&self) -> usize {
        Self::bitmap_pages_for(self.count)
    }

    /// The bitmap's words (chosen once per search, not per word).
    fn words(&self) -> &[u64] {
        if self.count <= INLINE_PAGES {
            return &self.inline;
        }
        // SAFETY: the bitmap's words live in the region's first pages, are
        // only touched under the provider's lock, and `&self` is its guard.
        unsafe { core::slice::from_raw_parts(self.bitmap, self.count.div_ceil(BITS)) }
    }

    fn word(&self, i: usize) -> u64 {
        self.words()[i]
    }

    fn set_word(&mut self, i: usize, value: u64) {
        debug_assert!(i < self.count.div_ceil(BITS));
        if self.count <= INLINE_PAGES {
            self.inline[i] = value;
            return;
        }
        // SAFETY: as in `word`; `&mut self` is the lock's guard.
        unsafe { self.bitmap.add(i).write(value) }
    }

    /// Marks pages `[from, from + n)` used or free.
    fn set(&mut self, from: usize, n: usize, used: bool) {
        let mut page = from;
        let end = from + n;
        while page < end {
            let bit = page % BITS;
            let take = (BITS - bit).min(end - page);
            let mask = if take == BITS {
                u64::MAX
            } else {
                ((1u64 << take) - 1) << bit
            };
            let word = self.word(page / BITS);
            if used {
                debug_assert_eq!(word & mask, 0);
                self.set_word(page / BITS, word | mask);
            } else {
                debug_assert_eq!(word & mask, mask);
                self.set_word(page / BITS, word & !mask);
            }
            page += take;
        }
        if used {
            self.used += n;
        } else {
            self.used -= n;
            self.first_free = self.first_free.min(from);
        }
    }

    /// First page at or after `from` (and before `to`) with the given state.
    fn find(&self, from: usize, to: usize, used: bool) -> Option<usize> {
        let words = self.words();
        let mut page = from;
        while page < to {
            let raw = words[page / BITS];
            let bits = (if used { raw } else { !raw }) >> (page % BITS);
            if bits != 0 {
                let hit = page + bits.trailing_zeros() as usize;
                return (hit < to).then_some(hit);
            }
            page = (page / BITS + 1) * BITS;
        }
        None
    }

    /// Where a run of `n` pages aligned to `align` goes: first fit while
    /// the region has room, best fit once it is [`BEST_FIT_FILL_EIGHTHS`]
    /// full (see there).
    fn fit(&self, n: usize, align: usize) -> Option<usize> {
        let best = self.used * 8 >= self.count * BEST_FIT_FILL_EIGHTHS;
        self.search(n, align, best)
    }

    /// The lowest run of `n` free pages whose address is a multiple of
    /// `align` (first fit) or, if `best_fit`, the one in the smallest hole
    /// (lowest among equals; an exact fit ends the search).
    fn search(&self, n: usize, align: usize, best_fit: bool) -> Option<usize> {
        let align_pages = align / PAGE;
        // Page index of the first `align`-aligned address.
        let phase = (self.base.addr().next_multiple_of(align) - self.base.addr()) / PAGE;
        let align_up = |i: usize| {
            if i <= phase {
                phase
            } else {
                phase + (i - phase).next_multiple_of(align_pages)
            }
        };
        let mut start = align_up(self.first_free);
        let mut best: Option<(usize, usize)> = None;
        loop {
            let Some(end) = start.checked_add(n).filter(|&e| e <= self.count) else {
                return best.map(|b| b.0);
            };
            match self.find(start, end, true) {
                None if !best_fit => return Some(start),
                None => {
                    let hole_end = self.find(end, self.count, true).unwrap_or(self.count);
                    let len = hole_end - start;
                    if len == n {
                        return Some(start);
                    }
                    if best.is_none_or(|b| len < b.1) {
                        best = Some((start, len));
                    }
                    let Some(next) = self.find(hole_end, self.count, false) else {
                        return best.map(|b| b.0);
                    };
                    start = align_up(next);
                }
                Some(used) => {
                    let Some(next) = self.find(used, self.count, false) else {
                        return best.map(|b| b.0);
                    };
                    start = align_up(next);
                }
            }
        }
    }
}

// SAFETY: runs are disjoint page ranges of the caller-given region, aligned
// as asked (the search only accepts aligned starts), and stay handed out
// until `unmap`. `resize` keeps contents: in place, or (only if allowed to
// move) copied to the new place.
unsafe impl PageProvider for ArenaProvider {
    fn page_size(&self) -> usize {
        PAGE
    }

    fn span(&self) -> Option<(usize, usize)> {
        let (base, count) = ArenaProvider::extent(self.region, self.region_len)?;
        Some((base.addr(), base.addr() + count * PAGE))
    }

    fn map(&self, len: usize, align: usize) -> Option<NonNull<u8>> {
        let mut state = self.state.lock();
        let pages = self.pages(&mut state)?;
        let n = len.div_ceil(PAGE);
        let start = pages.fit(n, align.max(PAGE))?;
        pages.set(start, n, true);
        if start == pages.first_free {
            pages.first_free = pages
                .find(start + n, pages.count, false)
                .unwrap_or(pages.count);
        }
        NonNull::new(pages.base.wrapping_add(start * PAGE))
    }

    unsafe fn unmap(&self, run: NonNull<u8>, len: usize) {
        let mut state = self.state.lock();
        let Some(pages) = state.as_mut() else { return };
        let start = (run.as_ptr().addr() - pages.base.addr()) / PAGE;
        pages.set(start, len.div_ceil(PAGE), false);
    }

    unsafe fn resize(
        &self,
        run: NonNull<u8>,
        old_len: usize,
        new_len: usize,
        may_move: bool,
    ) -> Option<NonNull<u8>> {
        let mut state = self.state.lock();
        let pages = state.as_mut()?;
        let start = (run.as_ptr().addr() - pages.base.addr()) / PAGE;
        let (old, new) = (old_len.div_ceil(PAGE), new_len.div_ceil(PAGE));
        if new <= old {
            pages.set(start + new, old - new, false);
            return Some(run);
        }
        if pages.grow_in_place(start, old, new) {
            return Some(run);
        }
        if !may_move {
            return None;
        }
        let to = pages.move_run(start, old, new)?;
        let moved = pages.base.wrapping_add(to * PAGE);
        // SAFETY: both runs lie in the region; the old one is the caller's
        // (per the contract) and the new one was just taken for it, so no
        // one else reads or writes either. `copy` allows the overlap.
        unsafe { core::ptr::copy(run.as_ptr(), moved, old * PAGE) };
        NonNull::new(moved)
    }
}

impl Pages {
    /// Takes pages `[start + old, start + new)` if they are free.
    fn grow_in_place(&mut self, start: usize, old: usize, new: usize) -> bool {
        let end = start + new;
        if end > self.count || self.find(start + old, end, true).is_some() {
            return false;
        }
        self.set(start + old, new - old, true);
        if (start + old..end).contains(&self.first_free) {
            self.first_free = self.find(end, self.count, false).unwrap_or(self.count);
        }
        true
    }

    /// Where a run of `old` pages at `start` grows to `new` pages when it
    /// may move: the place [`fit`](Self::fit) chooses counting its own pages
    /// as free, so the free pages before it and after it can join. Marks the new pages used and
    /// the rest of the old ones free; the caller copies the contents.
    fn move_run(&mut self, start: usize, old: usize, new: usize) -> Option<usize> {
        let first_free = self.first_free;
        self.set(start, old, false);
        let Some(to) = self.fit(new, PAGE) else {
            // Nothing fits: the run stays where it was.
            self.set(start, old, true);
            self.first_free = first_free;
            return None;
        };
        self.set(to, new, true);
        if to <= self.first_free {
            self.first_free = self.find(to, self.count, false).unwrap_or(self.count);
        }
        Some(to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;

    fn arena(pages: usize) -> (std::vec::Vec<u8>, ArenaProvider) {
        let mut buf = vec![0u8; pages * PAGE + PAGE];
        // SAFETY: the buffer outlives the provider in each test (returned
        // together, dropped after).
        let p = unsafe { ArenaProvider::new(buf.as_mut_ptr(), buf.len()) };
        (buf, p)
    }

    #[test]
    fn maps_disjoint_aligned_runs_and_reuses_freed_pages() {
        let (_buf, a) = arena(64);
        let cap = a.capacity_bytes();
        assert!(cap >= 63 * PAGE);
        let r1 = a.map(3 * PAGE, PAGE).unwrap();
        let r2 = a.map(PAGE, 8 * PAGE).unwrap();
        assert_eq!(r2.as_ptr().addr() % (8 * PAGE), 0);
        assert!(
            r1.as_ptr().addr() + 3 * PAGE <= r2.as_ptr().addr()
                || r2.as_ptr().addr() + PAGE <= r1.as_ptr().addr()
        );
        assert_eq!(a.used_bytes(), 4 * PAGE);
        unsafe { a.unmap(r1, 3 * PAGE) };
        let r3 = a.map(2 * PAGE, PAGE).unwrap();
        assert_eq!(r3, r1, "first fit reuses the lowest hole");
        unsafe {
            a.unmap(r3, 2 * PAGE);
            a.unmap(r2, PAGE);
        }
        assert_eq!(a.used_bytes(), 0);
        assert!(a.map(cap + PAGE, PAGE).is_none());
        let all = a.map(cap, PAGE).unwrap();
        assert!(a.map(PAGE, PAGE).is_none());
        unsafe { a.unmap(all, cap) };
    }

    #[test]
    fn resizes_in_place_unless_allowed_to_move() {
        let (_buf, a) = arena(32);
        let r = a.map(2 * PAGE, PAGE).unwrap();
        let blocker = a.map(PAGE, PAGE).unwrap();
        unsafe {
            assert_eq!(a.resize(r, 2 * PAGE, PAGE, true), Some(r));
            assert_eq!(a.resize(r, PAGE, 2 * PAGE, false), Some(r));
            assert_eq!(
                a.resize(r, 2 * PAGE, 3 * PAGE, false),
                None,
                "blocked by the next run"
            );
            a.unmap(blocker, PAGE);
            assert_eq!(a.resize(r, 2 * PAGE, 5 * PAGE, false), Some(r));
            a.unmap(r, 5 * PAGE);
        }
        assert_eq!(a.used_bytes(), 0);
    }

    /// A run that may move grows into the free pages before it and after
    /// it together, its contents copied; with nothing free around it, it
    /// moves to a hole elsewhere; with no hole anywhere, it stays.
    #[test]
    fn a_moving_resize_joins_the_free_pages_around_the_run() {
        let (_buf, a) = arena(16);
        let cap = a.capacity_bytes();
        let before = a.map(2 * PAGE, PAGE).unwrap();
        let r = a.map(2 * PAGE, PAGE).unwrap();
        let after = a.map(PAGE, PAGE).unwrap();
        let rest = a.map(cap - 5 * PAGE, PAGE).unwrap();
        unsafe {
            for i in 0..2 * PAGE {
                r.as_ptr().add(i).write(i as u8 ^ 0x5a);
            }
            a.unmap(before, 2 * PAGE);
            a.unmap(after, PAGE);
            // 2 pages before + 2 of its own + 1 after: 5 fit, 6 do not.
            assert_eq!(a.resize(r, 2 * PAGE, 6 * PAGE, true), None);
            assert_eq!(a.used_bytes(), cap - 3 * PAGE);
            let moved = a.resize(r, 2 * PAGE, 5 * PAGE, true).unwrap();
            assert_eq!(moved, before, "the lowest fit, overlapping the old run");
            for i in 0..2 * PAGE {
                assert_eq!(moved.as_ptr().add(i).read(), i as u8 ^ 0x5a);
            }
            assert_eq!(a.used_bytes(), cap);
            a.unmap(moved, 5 * PAGE);
            a.unmap(rest, cap - 5 * PAGE);
        }
        assert_eq!(a.used_bytes(), 0);
    }

    /// Once half of the pages are handed out, a run goes to the
    /// smallest hole that fits, not the lowest: the bigger hole stays whole.
    #[test]
    fn a_full_region_maps_into_the_smallest_hole() {
        let (_buf, a) = arena(16);
        let cap = a.capacity_bytes();
        let wide = a.map(3 * PAGE, PAGE).unwrap();
        let _fence = a.map(PAGE, PAGE).unwrap();
        let narrow = a.map(PAGE, PAGE).unwrap();
        let _rest = a.map(cap - 5 * PAGE, PAGE).unwrap();
        unsafe {
            a.unmap(wide, 3 * PAGE);
            a.unmap(narrow, PAGE);
        }
        // 4 of 16 or 17 pages free: at least half used.
        assert_eq!(a.map(PAGE, PAGE), Some(narrow));
        assert_eq!(a.map(3 * PAGE, PAGE), Some(wide));
    }

    #[test]
    fn too_small_region_maps_nothing() {
        let mut buf = [0u8; 100];
        let a = unsafe { ArenaProvider::new(buf.as_mut_ptr(), buf.len()) };
        assert!(a.map(PAGE, PAGE).is_none());
        assert_eq!(a.capacity_bytes(), 0);
    }
}
