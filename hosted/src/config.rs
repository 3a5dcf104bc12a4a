//! Debug settings from the environment, read once, at first use.
//!
//! | variable                 | values                                   | effect |
//! |--------------------------|------------------------------------------|--------|
//! | `FT_MALLOC_CHECK`        | `abort` (default), `warn`, `quiet`       | what detected heap misuse (a bad `free`/`realloc` pointer, a corrupt free list) does: one line on stderr then `abort()`, as glibc does; the line and the call is ignored; or nothing |
//! | `FT_MALLOC_SCRIBBLE`     | unset or `0`: off; anything else: on     | new blocks are filled with `0xAA`, freed blocks with `0x55` (calloc memory stays zero) |
//! | `FT_MALLOC_TRACE`        | `stderr`, `stdout` or a file descriptor  | one line per call, e.g. `malloc(24) = 0x7f0c2a400010` |
//! | `FT_MALLOC_SHOW_AT_EXIT` | unset or `0`: off; anything else: on     | `show_alloc_mem()` runs when the process exits |
//!
//! Why `environ` and not `getenv` or `/proc/self/environ`: the variables are
//! read by scanning the `environ` array directly, which is what `getenv` does
//! anyway, without depending on libc's internals and without any system call.
//! `malloc` may run before libc has set `environ` (from another library's
//! constructor, or from the dynamic loader): while `environ` is still null the
//! defaults apply and nothing is latched, so the first call after libc's
//! start-up reads the real values. Nothing here allocates.

use core::ffi::c_char;
use core::sync::atomic::{AtomicU64, Ordering};

unsafe extern "C" {
    /// The process environment (`char **environ`, POSIX), set by libc at
    /// start-up and by `setenv`/`putenv` later.
    static mut environ: *const *const c_char;
}

/// What detected heap misuse (a bad pointer given to `free`, `realloc` or
/// `malloc_usable_size`, a corrupt free list) does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CheckMode {
    /// Print one line on stderr, then `abort()` (the default: glibc kills
    /// the process on the misuse it detects, and going on after a heap
    /// corruption is what exploits count on).
    Abort,
    /// Print the line and ignore the call; nothing in the heap is changed.
    Warn,
    /// Ignore the call silently.
    Quiet,
}

/// The settings, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) check: CheckMode,
    pub(crate) scribble: bool,
    pub(crate) show_at_exit: bool,
    /// Where `FT_MALLOC_TRACE` sends its lines, if anywhere.
    pub(crate) trace_fd: Option<i32>,
}

impl Config {
    pub(crate) const DEFAULT: Config = Config {
        check: CheckMode::Abort,
        scribble: false,
        show_at_exit: false,
        trace_fd: None,
    };

    /// Updates the settings from one `NAME=value` environment entry.
    fn apply(&mut self, entry: &[u8]) {
        let Some(eq) = entry.iter().position(|&b| b == b'=') else {
            return;
        };
        let (name, value) = (&entry[..eq], &entry[eq + 1..]);
        let enabled = !value.is_empty() && value != b"0";
        match name {
            b"FT_MALLOC_CHECK" => {
                self.check = match value {
                    b"warn" => CheckMode::Warn,
                    b"quiet" => CheckMode::Quiet,
                    _ => CheckMode::Abort,
                }
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
    const LOADED: u64 = 1 << 40;
    const SCRIBBLE: u64 = 1 << 32;
    const SHOW_AT_EXIT: u64 = 1 << 33;
    const CHECK_SHIFT: u32 = 34;
    const FD_MASK: u64 = 0xFFFF_FFFF;

    fn pack(self) -> u64 {
        let check = match self.check {
            CheckMode::Abort => 0,
            CheckMode::Warn => 1,
            CheckMode::Quiet => 2,
        };
        // The fd is stored plus one, so that 0 means "no trace".
        let fd = self.trace_fd.map_or(0, |fd| fd as u64 + 1);
        Self::LOADED
            | fd
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
                1 => CheckMode::Warn,
                2 => CheckMode::Quiet,
                _ => CheckMode::Abort,
            },
            scribble: word & Self::SCRIBBLE != 0,
            show_at_exit: word & Self::SHOW_AT_EXIT != 0,
            trace_fd: match word & Self::FD_MASK {
                0 => None,
                fd_plus_one => Some((fd_plus_one - 1) as i32),
            },
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

/// Whether the settings are loaded and ask nothing of `malloc` and `free`
/// (no scribbling, no trace): one load and one compare, the only cost the
/// settings add to the fast paths. `FT_MALLOC_CHECK` only matters once a
/// pointer is refused, and `FT_MALLOC_SHOW_AT_EXIT` at exit.
#[cfg(feature = "c-abi")]
#[inline(always)]
pub(crate) fn plain() -> bool {
    PACKED.load(Ordering::Relaxed) & (Config::LOADED | Config::SCRIBBLE | Config::FD_MASK)
        == Config::LOADED
}

/// The settings. The first call after libc has set `environ` reads it; every
/// later call is one relaxed load.
#[inline]
pub(crate) fn get() -> Config {
    let word = PACKED.load(Ordering::Relaxed);
    if word & Config::LOADED != 0 {
        Config::unpack(word)
    } else {
        load()
    }
}

#[cold]
fn load() -> Config {
    // The first call into the library is also where fork handlers get
    // registered if the load-time constructor has not run yet.
    crate::lifecycle::ensure();
    // SAFETY: reading the pointer value of libc's `environ` (no reference to
    // the static is formed).
    let env = unsafe { (&raw const environ).read() };
    if env.is_null() {
        // Too early: libc has not set up the environment yet. Try again later.
        return Config::DEFAULT;
    }
    let mut config = Config::DEFAULT;
    let mut cursor = env;
    // SAFETY: `environ` is a null-terminated array of pointers to
    // NUL-terminated strings, as libc maintains it.
    unsafe {
        while !(*cursor).is_null() {
            config.apply(core::ffi::CStr::from_ptr(*cursor).to_bytes());
            cursor = cursor.add(1);
        }
    }
    // Racing first callers read the same environment and store the same word.
    PACKED.store(config.pack(), Ordering::Relaxed);
    config
}

/// Changes the loaded settings with `change` (for `mallopt`). The
/// environment is read first if it has not been, so it cannot undo this.
#[cfg(feature = "c-abi")]
fn update(change: impl Fn(&mut Config)) {
    get();
    let _ = PACKED.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
        let mut config = Config::unpack(word);
        change(&mut config);
        Some(config.pack())
    });
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

#[cfg(feature = "c-abi")]
/// Whether the environment variable `name` is set to a non-empty value
/// (read now, not latched: only `show_alloc_mem_ex` asks, for `NO_COLOR`).
pub(crate) fn is_set(name: &[u8]) -> bool {
    // SAFETY: as in `load`.
    let env = unsafe { (&raw const environ).read() };
    if env.is_null() {
        return false;
    }
    let mut cursor = env;
    // SAFETY: as in `load`.
    unsafe {
        while !(*cursor).is_null() {
            let entry = core::ffi::CStr::from_ptr(*cursor).to_bytes();
            if let Some(value) = entry.strip_prefix(name).and_then(|v| v.strip_prefix(b"=")) {
                return !value.is_empty();
            }
            cursor = cursor.add(1);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entries: &[&str]) -> Config {
        let mut config = Config::DEFAULT;
        for entry in entries {
            config.apply(entry.as_bytes());
        }
        Config::unpack(config.pack())
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
        assert_eq!(parse(&["FT_MALLOC_CHECK=bogus"]).check, CheckMode::Abort);
        assert_eq!(parse(&["FT_MALLOC_TRACE=1234567890"]).trace_fd, None);
    }
}
