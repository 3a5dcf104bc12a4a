//! One region's pages: the bitmap that says which are handed out, and the
//! search for a free run (first fit, then best fit once the region is half
//! full). Only the provider (`arena.rs`) touches a [`Pages`], under its lock.
//!
//! The bitmap lives inside the [`Pages`] for regions of up to
//! [`INLINE_PAGES`] pages (so a small region loses no page to it) and in the
//! region's own first pages beyond that.

use crate::provider::MIN_PAGE_SIZE;

pub(super) const PAGE: usize = MIN_PAGE_SIZE;
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

/// Page-aligned start and page count of `[region, region + len)`: a
/// region that is not page aligned loses its first partial page.
pub(super) fn extent(region: *mut u8, len: usize) -> Option<(*mut u8, usize)> {
    let pad = region.addr().next_multiple_of(PAGE) - region.addr();
    Some((region.wrapping_add(pad), len.checked_sub(pad)? / PAGE))
}

/// One region's page bitmap and where to search it from.
pub(super) struct Pages {
    /// First page-aligned byte of the region.
    base: *mut u8,
    /// Pages in the region, including the bitmap's own.
    count: usize,
    /// One bit per page, set when handed out (or used by the bitmap): these
    /// words, or the region's first pages (at `base`) if it has more than
    /// [`INLINE_PAGES`] pages.
    inline: [u64; INLINE_WORDS],
    used: usize,
    /// No page below this index is free.
    first_free: usize,
}

impl Pages {
    /// The bitmap of `[region, region + len)`, every page free, or `None`
    /// if the region holds no page beyond its bitmap's.
    ///
    /// # Safety
    ///
    /// The region must be valid for writes and used by nothing else (the
    /// bitmap of a region over [`INLINE_PAGES`] pages is written into its
    /// first pages here).
    pub(super) unsafe fn init(region: *mut u8, len: usize) -> Option<Pages> {
        let (base, count) = extent(region, len)?;
        let bitmap_pages = Self::bitmap_pages_for(count);
        if count <= bitmap_pages {
            return None;
        }
        let mut pages = Pages {
            base,
            count,
            inline: [0; INLINE_WORDS],
            used: 0,
            first_free: 0,
        };
        if bitmap_pages > 0 {
            // SAFETY: the bitmap's pages are the first of the region, which
            // the caller gives us (the contract).
            unsafe { core::ptr::write_bytes(pages.bitmap(), 0, count.div_ceil(BITS)) };
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

    /// Where the bitmap of a region over [`INLINE_PAGES`] pages lives.
    fn bitmap(&self) -> *mut u64 {
        self.base.cast()
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
        unsafe { core::slice::from_raw_parts(self.bitmap(), self.count.div_ceil(BITS)) }
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
        unsafe { self.bitmap().add(i).write(value) }
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

/// What the provider asks of a region.
impl Pages {
    /// Whether `addr` lies in the region's pages.
    pub(super) fn contains(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.base.addr()) < self.count * PAGE
    }

    /// Bytes handed out, and bytes that can be handed out in all (the
    /// bitmap's own pages excluded from both).
    pub(super) fn used_and_capacity(&self) -> (usize, usize) {
        let bitmap = self.bitmap_pages();
        ((self.used - bitmap) * PAGE, (self.count - bitmap) * PAGE)
    }

    /// Takes a run of `len` bytes aligned to `align` (a power of two).
    pub(super) fn map(&mut self, len: usize, align: usize) -> Option<*mut u8> {
        let n = len.div_ceil(PAGE);
        let start = self.fit(n, align.max(PAGE))?;
        self.set(start, n, true);
        if start == self.first_free {
            self.first_free = self
                .find(start + n, self.count, false)
                .unwrap_or(self.count);
        }
        Some(self.base.wrapping_add(start * PAGE))
    }

    /// Gives back the run of `len` bytes at `run` (which this region holds).
    pub(super) fn unmap(&mut self, run: *mut u8, len: usize) {
        let start = (run.addr() - self.base.addr()) / PAGE;
        self.set(start, len.div_ceil(PAGE), false);
    }

    /// Resizes the run at `run` (which this region holds): shrinks in place,
    /// grows in place if the pages after it are free, or else, if
    /// `may_move`, moves it where [`fit`](Self::fit) chooses counting its own
    /// pages as free. Returns the run's start and whether the caller must
    /// copy the old contents there (it moved).
    pub(super) fn resize(
        &mut self,
        run: *mut u8,
        old_len: usize,
        new_len: usize,
        may_move: bool,
    ) -> Option<(*mut u8, bool)> {
        let start = (run.addr() - self.base.addr()) / PAGE;
        let (old, new) = (old_len.div_ceil(PAGE), new_len.div_ceil(PAGE));
        if new <= old {
            self.set(start + new, old - new, false);
            return Some((run, false));
        }
        if self.grow_in_place(start, old, new) {
            return Some((run, false));
        }
        if !may_move {
            return None;
        }
        let to = self.move_run(start, old, new)?;
        Some((self.base.wrapping_add(to * PAGE), true))
    }
}
