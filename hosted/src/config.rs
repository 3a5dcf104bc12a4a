//! Debug settings from the environment, read once, at first use.
//!
//! | variable                 | values                                   | effect |
//! |--------------------------|------------------------------------------|--------|
//! | `FT_MALLOC_CHECK`        | unset (default), `abort`, `warn`, `quiet` | what a caught misuse does (`policy.rs`): by default a pointer never handed out is refused with one line on stderr and the program goes on, damage (double free, overflow, corrupt free list) aborts; `abort`: every misuse aborts (the default under `FT_MALLOC_HARDENED`); `warn`: the line, the call refused, no abort; `quiet`: refused silently |
//! | `FT_MALLOC_SCRIBBLE`     | unset or `0`: off; anything else: on     | new blocks are filled with `0xAA`, freed blocks with `0x55` (calloc memory stays zero) |
//! | `FT_MALLOC_TRACE`        | `stderr`, `stdout` or a file descriptor  | one line per call, e.g. `malloc(24) = 0x7f0c2a400010` |
//! | `FT_MALLOC_SHOW_AT_EXIT` | unset or `0`: off; anything else: on     | `show_alloc_mem()` runs when the process exits |
//! | `FT_MALLOC_HARDENED`     | unset or `0`: off; anything else: on     | every defence below (each one's own variable, set to `0`, still turns it off) |
//! | `FT_MALLOC_CANARY`, `FT_MALLOC_QUARANTINE`, `FT_MALLOC_GUARD_PAGES`, `FT_MALLOC_ZERO_ON_FREE`, `FT_MALLOC_SIZED_CHECK`, `FT_MALLOC_RANDOM_SLOTS` | `0`: off; anything else: on | one defence of the hardened mode (`hardened/mod.rs`) |
//!
//! This module only reads and holds the settings; the entry points load
//! them through `lifecycle::settings`, whose first call also readies the
//! process (key, fork handlers) before any block is handed out.
//!
//! Why `environ` and not `getenv` or `/proc/self/environ`: the variables are
//! read by scanning the `environ` array directly, which is what `getenv` does
//! anyway, without depending on libc's internals and without any system call.
//! `malloc` may run before libc has set `environ` (from another library's
//! constructor, or from the dynamic loader): while `environ` is still null the
//! defaults apply and nothing is latched, so the first call after libc's
//! start-up reads the real values. Nothing here allocates.

use core::ffi::c_char;
#[cfg(feature = "c-abi")]
use core::sync::atomic::{AtomicPtr, AtomicUsize};

use core::sync::atomic::{AtomicU64, Ordering};
#[cfg(feature = "c-abi")]
use ft_malloc::cache::{MappedFlat, NO_MAPPED_FLAT};

unsafe extern "C" {
    /// The process environment (`char **environ`, POSIX), set by libc at
    /// start-up and by `setenv`/`putenv` later.
    static mut environ: *const *const c_char;
}

/// What a caught misuse does (the table in `policy.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CheckMode {
    /// The default: print one line on stderr; then `abort()` if memory was
    /// damaged (or is about to be), else refuse the call and go on.
    AbortOnDamage,
    /// Print the line, then `abort()` on every misuse (`FT_MALLOC_CHECK=abort`,
    /// and the default under `FT_MALLOC_HARDENED`).
    Abort,
    /// Print the line and refuse the call; nothing in the heap is changed.
    Warn,
    /// Refuse the call silently.
    Quiet,
}

/// The hardened mode's defences that are on, one bit each (what each does:
/// `hardened/mod.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Defences(u8);

impl Defences {
    pub(crate) const NONE: Defences = Defences(0);
    /// `FT_MALLOC_CANARY`: canary bytes after every block, checked on free
    /// and realloc.
    pub(crate) const CANARY: u8 = 1 << 0;
    /// `FT_MALLOC_QUARANTINE`: freed small blocks held back, zero-filled,
    /// checked when they leave.
    pub(crate) const QUARANTINE: u8 = 1 << 1;
    /// `FT_MALLOC_GUARD_PAGES`: inaccessible pages around every zone and
    /// LARGE run; freed LARGE runs unmapped at once.
    pub(crate) const GUARD_PAGES: u8 = 1 << 2;
    /// `FT_MALLOC_ZERO_ON_FREE`: freed blocks are zeroed.
    pub(crate) const ZERO_ON_FREE: u8 = 1 << 3;
    /// `FT_MALLOC_SIZED_CHECK`: `free_sized` checks the size.
    pub(crate) const SIZED_CHECK: u8 = 1 << 4;
    /// `FT_MALLOC_RANDOM_SLOTS`: a small `malloc` picks a random cached
    /// block.
    pub(crate) const RANDOM_SLOTS: u8 = 1 << 5;
    /// What `FT_MALLOC_HARDENED` turns on.
    pub(crate) const ALL: u8 = 0x3F;

    /// Whether the defence `bit` is on.
    #[inline]
    pub(crate) fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// What `malloc` must do more than the heap does.
    /// (The quarantine: every request at least a word, for its tag.)
    const ON_ALLOC: u8 = Self::CANARY | Self::QUARANTINE | Self::GUARD_PAGES | Self::RANDOM_SLOTS;

    /// What `free` and `realloc` must do more than the heap does.
    const ON_FREE: u8 = Self::CANARY | Self::QUARANTINE | Self::GUARD_PAGES | Self::ZERO_ON_FREE;

    /// Whether allocations take the hardened path (canaries change what is
    /// allocated; with guard pages LARGE blocks start on a page; random
    /// slots choose the block).
    #[cfg(feature = "c-abi")]
    #[inline]
    pub(crate) fn on_alloc(self) -> bool {
        self.has(Self::ON_ALLOC)
    }

    /// Whether `free`, `realloc` and `malloc_usable_size` take the hardened
    /// path (every defence but the sized check, which only `free_sized`
    /// asks about).
    #[inline]
    pub(crate) fn on_free(self) -> bool {
        self.0 & Self::ON_FREE != 0
    }
}

/// The settings, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) check: CheckMode,
    pub(crate) scribble: bool,
    pub(crate) show_at_exit: bool,
    /// Where `FT_MALLOC_TRACE` sends its lines, if anywhere.
    pub(crate) trace_fd: Option<i32>,
    pub(crate) defences: Defences,
}

/// The defence variables as read, before `FT_MALLOC_HARDENED` and the
/// individual ones are combined (so their order in the environment does
/// not matter).
#[derive(Clone, Copy, Default)]
struct DefenceVariables {
    hardened: bool,
    on: u8,
    off: u8,
}

impl DefenceVariables {
    /// Records one variable; returns false if `name` is not one of them.
    fn apply(&mut self, name: &[u8], enabled: bool) -> bool {
        let bit = match name {
            b"FT_MALLOC_HARDENED" => {
                self.hardened = enabled;
                return true;
            }
            b"FT_MALLOC_CANARY" => Defences::CANARY,
            b"FT_MALLOC_QUARANTINE" => Defences::QUARANTINE,
            b"FT_MALLOC_GUARD_PAGES" => Defences::GUARD_PAGES,
            b"FT_MALLOC_ZERO_ON_FREE" => Defences::ZERO_ON_FREE,
            b"FT_MALLOC_SIZED_CHECK" => Defences::SIZED_CHECK,
            b"FT_MALLOC_RANDOM_SLOTS" => Defences::RANDOM_SLOTS,
            _ => return false,
        };
        if enabled {
            self.on |= bit;
            self.off &= !bit;
        } else {
            self.off |= bit;
            self.on &= !bit;
        }
        true
    }

    fn resolve(self) -> Defences {
        let all = if self.hardened { Defences::ALL } else { 0 };
        Defences((all | self.on) & !self.off)
    }
}

impl Config {
    pub(crate) const DEFAULT: Config = Config {
        check: CheckMode::AbortOnDamage,
        scribble: false,
        show_at_exit: false,
        trace_fd: None,
        defences: Defences::NONE,
    };

    /// The settings that `NAME=value` environment entries ask for.
    fn decode<'a>(entries: impl Iterator<Item = &'a [u8]>) -> Config {
        let mut config = Config::DEFAULT;
        let mut defences = DefenceVariables::default();
        let mut check_set = false;
        for entry in entries {
            config.apply(entry, &mut defences, &mut check_set);
        }
        config.defences = defences.resolve();
        // A program run hardened treats every caught misuse as an attack
        // unless told otherwise (`policy.rs`).
        if defences.hardened && !check_set {
            config.check = CheckMode::Abort;
        }
        config
    }

    /// Updates the settings from one `NAME=value` environment entry;
    /// `check_set` records whether `FT_MALLOC_CHECK` was given.
    fn apply(&mut self, entry: &[u8], defences: &mut DefenceVariables, check_set: &mut bool) {
        let Some(eq) = entry.iter().position(|&b| b == b'=') else {
            return;
        };
        let (name, value) = (&entry[..eq], &entry[eq + 1..]);
        let enabled = !value.is_empty() && value != b"0";
        if defences.apply(name, enabled) {
            return;
        }
        match name {
            b"FT_MALLOC_CHECK" => {
                // A misspelt value means the default, never a weaker mode.
                self.check = match value {
                    b"abort" => CheckMode::Abort,
                    b"warn" => CheckMode::Warn,
                    b"quiet" => CheckMode::Quiet,
                    _ => CheckMode::AbortOnDamage,
                };
                *check_set = !value.is_empty();
            }
            b"FT_MALLOC_SCRIBBLE" => self.scribble = enabled,
            b"FT_MALLOC_SHOW_AT_EXIT" => self.show_at_exit = enabled,
            b"FT_MALLOC_TRACE" => {
                self.trace_fd = match value {
                    b"" => None,
                    b"stderr" => Some(2),
                    b"stdout" => Some(1),
                    digits => parse_fd(digits),
                }
            }
            _ => {}
        }
    }

    // Packed into one atomic word so that the hot path is a single load.
    // The low byte is the fast paths' gate: exactly `LOADED` when the
    // settings ask nothing of `malloc` and `free` (`plain`), so the check
    // is one byte compare, with no 64-bit mask to build.
    const LOADED: u64 = 1 << 0;
    /// Scribbling, a trace or a defence on `malloc` or `free`: the fast paths
    /// step aside.
    const SLOW: u64 = 1 << 1;
    const FD_SHIFT: u32 = 8;
    const FD_MASK: u64 = 0xFFFF_FFFF << Self::FD_SHIFT;
    const SCRIBBLE: u64 = 1 << 40;
    const SHOW_AT_EXIT: u64 = 1 << 41;
    const CHECK_SHIFT: u32 = 42;
    const DEFENCES_SHIFT: u32 = 48;
    const DEFENCES_MASK: u64 = 0xFF << Self::DEFENCES_SHIFT;

    fn pack(self) -> u64 {
        let check = match self.check {
            CheckMode::AbortOnDamage => 0,
            CheckMode::Warn => 1,
            CheckMode::Quiet => 2,
            CheckMode::Abort => 3,
        };
        // The fd is stored plus one, so that 0 means "no trace".
        let fd = self.trace_fd.map_or(0, |fd| fd as u64 + 1);
        let slow = self.scribble
            || fd != 0
            || self.defences.on_free()
            || self.defences.0 & Defences::ON_ALLOC != 0;
        Self::LOADED
            | if slow { Self::SLOW } else { 0 }
            | (u64::from(self.defences.0) << Self::DEFENCES_SHIFT)
            | (fd << Self::FD_SHIFT)
            | (check << Self::CHECK_SHIFT)
            | if self.scribble { Self::SCRIBBLE } else { 0 }
            | if self.show_at_exit {
                Self::SHOW_AT_EXIT
            } else {
                0
            }
    }

    fn unpack(word: u64) -> Config {
        Config {
            check: match (word >> Self::CHECK_SHIFT) & 3 {
                0 => CheckMode::AbortOnDamage,
                1 => CheckMode::Warn,
                2 => CheckMode::Quiet,
                _ => CheckMode::Abort,
            },
            scribble: word & Self::SCRIBBLE != 0,
            show_at_exit: word & Self::SHOW_AT_EXIT != 0,
            trace_fd: match (word & Self::FD_MASK) >> Self::FD_SHIFT {
                0 => None,
                fd_plus_one => Some((fd_plus_one - 1) as i32),
            },
            defences: Defences(((word & Self::DEFENCES_MASK) >> Self::DEFENCES_SHIFT) as u8),
        }
    }
}

/// A non-negative decimal file descriptor.
fn parse_fd(digits: &[u8]) -> Option<i32> {
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    let mut fd: i32 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        fd = fd * 10 + i32::from(d - b'0');
    }
    Some(fd)
}

/// The latched settings; 0 until the environment has been read.
static PACKED: AtomicU64 = AtomicU64::new(0);

/// `malloc`'s gate, from [`PACKED`]: sizes below it take the fast path.
/// `SMALL_MAX + 1` when [`plain`] holds, 0 otherwise (every size then goes
/// to the slow path, which reads the settings): one compare of the size
/// decides both "plain" and "not LARGE". Written only by [`sync_gate`].
#[cfg(feature = "c-abi")]
static FAST_BELOW: AtomicUsize = AtomicUsize::new(0);

/// `free`'s gate: the heap's flat page map (`Heap::mapped_flat`) when
/// [`plain`] holds, else the sentinel `NO_MAPPED_FLAT`, which the lock-free
/// free declines: one load gives `free` both "plain" and the map. Also the
/// sentinel while the heap has not published its map (the declined `free`
/// refreshes it: [`refresh_free_gate`]). Written only by [`sync_gate`].
#[cfg(feature = "c-abi")]
static FREE_GATE: AtomicPtr<MappedFlat> = AtomicPtr::new((&raw const NO_MAPPED_FLAT).cast_mut());

/// The heap's free-mark key (`ft_malloc::current_key`), copied here for
/// `free`: a static of this crate is one load, the core's a load of its
/// address from the GOT first. Stored by [`sync_gate`] before the gate
/// opens (Release, read after the gate's Acquire), and the key never
/// changes once the heap is in use: a `free` that passed the gate reads
/// the right one.
#[cfg(feature = "c-abi")]
static FREE_KEY: AtomicUsize = AtomicUsize::new(0);

/// `free`'s gate (see [`FREE_GATE`]).
#[cfg(feature = "c-abi")]
#[inline(always)]
pub(crate) fn free_gate() -> *const MappedFlat {
    FREE_GATE.load(Ordering::Acquire)
}

/// The key `free`'s lock-free path checks marks and canaries with (see
/// [`FREE_KEY`]); read after [`free_gate`].
#[cfg(feature = "c-abi")]
#[inline(always)]
pub(crate) fn free_key() -> usize {
    FREE_KEY.load(Ordering::Relaxed)
}

/// Sets `free`'s gate to the heap's flat map if the settings are plain and
/// the gate still holds the sentinel from before the heap published it.
#[cfg(feature = "c-abi")]
pub(crate) fn refresh_free_gate() {
    let none = (&raw const NO_MAPPED_FLAT).cast_mut();
    if plain()
        && FREE_GATE.load(Ordering::Relaxed) == none
        && crate::HEAP.mapped_flat() != none.cast_const()
    {
        sync_gate();
    }
}

/// Brings [`FAST_BELOW`] and [`FREE_GATE`] in line with [`PACKED`] (and the
/// heap's flat map), after each store to it.
/// Each updater stores what it read, then reads again: one that stored a
/// value an update made stale meanwhile sees the change and stores again,
/// so the last store follows the last update.
fn sync_gate() {
    #[cfg(feature = "c-abi")]
    loop {
        let word = PACKED.load(Ordering::SeqCst);
        let plain = word as u8 == Config::LOADED as u8;
        FAST_BELOW.store(
            if plain { ft_malloc::SMALL_MAX + 1 } else { 0 },
            Ordering::SeqCst,
        );
        let flat = if plain {
            crate::HEAP.mapped_flat()
        } else {
            &raw const NO_MAPPED_FLAT
        };
        // The key first: a `free` that sees the map sees the key.
        FREE_KEY.store(ft_malloc::current_key(), Ordering::SeqCst);
        FREE_GATE.store(flat.cast_mut(), Ordering::SeqCst);
        if PACKED.load(Ordering::SeqCst) == word {
            break;
        }
    }
}

/// [`plain`], and `size` not LARGE: `malloc`'s fast path may serve it.
#[cfg(feature = "c-abi")]
#[inline(always)]
pub(crate) fn plain_and_small(size: usize) -> bool {
    let below = FAST_BELOW.load(Ordering::Relaxed);
    // SAFETY: `sync_gate` stores nothing else than 0 and `SMALL_MAX + 1`
    // (so a size below the gate needs no second test for LARGE).
    unsafe { core::hint::assert_unchecked(below <= ft_malloc::SMALL_MAX + 1) };
    size < below
}

/// Whether the settings are loaded and ask nothing of `malloc` and `free`
/// (no scribbling, no trace, no defence): one byte compare, the only cost the
/// settings add to the fast paths. `FT_MALLOC_CHECK` only matters once a
/// pointer is refused, and `FT_MALLOC_SHOW_AT_EXIT` at exit.
#[cfg(feature = "c-abi")]
#[inline(always)]
pub(crate) fn plain() -> bool {
    PACKED.load(Ordering::Relaxed) as u8 == Config::LOADED as u8
}

/// [`plain`], and the sized check off: a sized free (`free_sized`, C++'s
/// sized `delete`) is then a plain `free`. One load, a mask, a compare.
#[cfg(feature = "c-abi")]
#[inline(always)]
pub(crate) fn plain_unsized() -> bool {
    let sized = u64::from(Defences::SIZED_CHECK) << Config::DEFENCES_SHIFT;
    PACKED.load(Ordering::Relaxed) & (0xFF | sized) == Config::LOADED
}

/// The defences that are on, when the settings are loaded and ask for
/// nothing else of `malloc` and `free` (no scribbling, no trace): the
/// hardened mode's entry, one load and a mask, without decoding the rest.
#[cfg(feature = "c-abi")]
#[inline(always)]
pub(crate) fn defences_only() -> Option<Defences> {
    let word = PACKED.load(Ordering::Relaxed);
    (word & (Config::LOADED | Config::SCRIBBLE | Config::FD_MASK) == Config::LOADED).then_some(
        Defences(((word & Config::DEFENCES_MASK) >> Config::DEFENCES_SHIFT) as u8),
    )
}

/// The settings if they have been loaded (one relaxed load), else `None`.
#[inline(always)]
pub(crate) fn loaded() -> Option<Config> {
    let word = PACKED.load(Ordering::Relaxed);
    (word & Config::LOADED != 0).then(|| Config::unpack(word))
}

/// The settings as they stand: the loaded ones, or the defaults before the
/// environment has been read. Never reads it (entry points load it through
/// `lifecycle::settings`, which first makes the process ready for its first
/// block).
#[inline]
pub(crate) fn current() -> Config {
    loaded().unwrap_or(Config::DEFAULT)
}

/// Reads the environment and latches the settings (after libc has set
/// `environ`; before, the defaults are returned and nothing is latched, so a
/// later call reads the real values). Racing first callers read the same
/// environment and store the same word.
#[cold]
pub(crate) fn load() -> Config {
    let Some(entries) = environment() else {
        return Config::DEFAULT;
    };
    let config = Config::decode(entries);
    if config.defences.has(Defences::GUARD_PAGES) {
        crate::guard_pages::request();
    }
    PACKED.store(config.pack(), Ordering::Relaxed);
    sync_gate();
    config
}

/// Changes the loaded settings with `change` (for `mallopt`). The
/// environment is read first if it has not been, so it cannot undo this.
#[cfg(feature = "c-abi")]
fn update(change: impl Fn(&mut Config)) {
    if loaded().is_none() {
        load();
    }
    let _ = PACKED.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
        let mut config = Config::unpack(word);
        change(&mut config);
        Some(config.pack())
    });
    sync_gate();
}

/// `mallopt(M_CHECK_ACTION)`: what detected misuse does from now on.
#[cfg(feature = "c-abi")]
pub(crate) fn set_check(check: CheckMode) {
    update(|c| c.check = check);
}

/// `mallopt(M_PERTURB)`: scribbling on or off from now on.
#[cfg(feature = "c-abi")]
pub(crate) fn set_scribble(scribble: bool) {
    update(|c| c.scribble = scribble);
}

/// The entries of the environment (`NAME=value`), or `None` while libc has
/// not set `environ` up yet.
fn environment() -> Option<impl Iterator<Item = &'static [u8]>> {
    // SAFETY: reading the pointer value of libc's `environ` (no reference to
    // the static is formed).
    let env = unsafe { (&raw const environ).read() };
    if env.is_null() {
        return None;
    }
    Some(
        (0..)
            // SAFETY: `environ` is a null-terminated array of pointers to
            // NUL-terminated strings, as libc maintains it; the walk stops at
            // the null one.
            .map(move |i| unsafe { *env.add(i) })
            .take_while(|entry| !entry.is_null())
            // SAFETY: as above: each entry is a NUL-terminated string.
            .map(|entry| unsafe { core::ffi::CStr::from_ptr(entry) }.to_bytes()),
    )
}

#[cfg(feature = "c-abi")]
/// Whether the environment variable `name` is set to a non-empty value
/// (read now, not latched: only `show_alloc_mem_ex` asks, for `NO_COLOR`).
pub(crate) fn is_set(name: &[u8]) -> bool {
    environment().is_some_and(|mut entries| {
        entries.any(|entry| {
            entry
                .strip_prefix(name)
                .and_then(|v| v.strip_prefix(b"="))
                .is_some_and(|value| !value.is_empty())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entries: &[&str]) -> Config {
        Config::unpack(Config::decode(entries.iter().map(|e| e.as_bytes())).pack())
    }

    #[test]
    fn hardened_turns_every_defence_on_unless_one_is_turned_off() {
        assert_eq!(
            parse(&["FT_MALLOC_HARDENED=1"]).defences,
            Defences(Defences::ALL)
        );
        let one_off = parse(&["FT_MALLOC_QUARANTINE=0", "FT_MALLOC_HARDENED=1"]).defences;
        assert!(!one_off.has(Defences::QUARANTINE) && one_off.has(Defences::CANARY));
        let one_on = parse(&["FT_MALLOC_CANARY=1"]).defences;
        assert_eq!(one_on, Defences(Defences::CANARY));
        assert_eq!(parse(&["FT_MALLOC_HARDENED=0"]).defences, Defences::NONE);
        assert_eq!(
            parse(&["FT_MALLOC_HARDENED=1", "FT_MALLOC_CHECK=warn"]).check,
            CheckMode::Warn
        );
        // Hardened, every caught misuse is fatal unless FT_MALLOC_CHECK says.
        assert_eq!(parse(&["FT_MALLOC_HARDENED=1"]).check, CheckMode::Abort);
        assert_eq!(
            parse(&["FT_MALLOC_CANARY=1"]).check,
            CheckMode::AbortOnDamage
        );
        assert_eq!(parse(&[]).check, CheckMode::AbortOnDamage);
    }

    #[test]
    fn defaults_without_variables() {
        assert_eq!(parse(&["PATH=/bin", "FT_MALLOC=1"]), Config::DEFAULT);
    }

    #[test]
    fn every_variable_round_trips() {
        let c = parse(&[
            "FT_MALLOC_CHECK=warn",
            "FT_MALLOC_SCRIBBLE=1",
            "FT_MALLOC_TRACE=17",
            "FT_MALLOC_SHOW_AT_EXIT=yes",
        ]);
        assert_eq!(c.check, CheckMode::Warn);
        assert!(c.scribble && c.show_at_exit);
        assert_eq!(c.trace_fd, Some(17));
        assert_eq!(parse(&["FT_MALLOC_CHECK=quiet"]).check, CheckMode::Quiet);
        assert_eq!(parse(&["FT_MALLOC_CHECK=abort"]).check, CheckMode::Abort);
        assert_eq!(parse(&["FT_MALLOC_TRACE=stderr"]).trace_fd, Some(2));
        assert_eq!(parse(&["FT_MALLOC_TRACE=stdout"]).trace_fd, Some(1));
        assert_eq!(parse(&["FT_MALLOC_TRACE=0"]).trace_fd, Some(0));
    }

    #[test]
    fn off_and_malformed_values() {
        let c = parse(&[
            "FT_MALLOC_SCRIBBLE=0",
            "FT_MALLOC_SHOW_AT_EXIT=",
            "FT_MALLOC_TRACE=x1",
        ]);
        assert_eq!(c, Config::DEFAULT);
        // A misspelt value must not weaken the default.
        assert_eq!(
            parse(&["FT_MALLOC_CHECK=bogus"]).check,
            CheckMode::AbortOnDamage
        );
        assert_eq!(parse(&["FT_MALLOC_TRACE=1234567890"]).trace_fd, None);
    }
}
