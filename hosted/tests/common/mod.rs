//! Shared by the integration tests: the built `libft_malloc.so`, C programs
//! compiled against it, and child processes measured with `wait4`.
//!
//! Every test binary that includes this module also runs on the library's
//! own heap, as its Rust global allocator.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: ft_malloc_hosted::FtMalloc = ft_malloc_hosted::FtMalloc;

/// The file Cargo builds for the `cdylib` (its lib name is `ft_malloc_hosted`).
const CARGO_SO: &str = "libft_malloc_hosted.so";
/// Longest any single child may run before the test kills it (a hang is a
/// failure, not a stuck CI).
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(300);

/// A scratch directory of this test binary, emptied when first used (so
/// runs do not pile up files; Cargo runs one test binary at a time).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let binary = exe.file_stem().unwrap().to_str().unwrap();
        let name = binary.split('-').next().unwrap_or(binary);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hosted-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// A directory holding `libft_malloc.so`, a symlink to the library Cargo
/// built for this test run, laid out as the root Makefile installs it.
pub fn lib_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // Integration tests live in target/<profile>/deps, where Cargo also
        // puts the cdylib it built for this same run.
        let exe = std::env::current_exe().unwrap();
        let deps = exe.parent().unwrap();
        let built = [deps.join(CARGO_SO), deps.parent().unwrap().join(CARGO_SO)]
            .into_iter()
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{CARGO_SO} not found next to {}", exe.display()));
        let dir = scratch().join("lib");
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("libft_malloc.so");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&built, &link).unwrap();
        dir
    })
}

/// Path of the preloadable library.
pub fn library() -> PathBuf {
    lib_dir().join("libft_malloc.so")
}

/// The C sources of the tests.
pub fn c_source(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/c")
        .join(name)
}

/// Compiles `tests/c/<name>` with gcc, linked with `-L<lib> -lft_malloc` as
/// the subject's README does. Unoptimised, so that gcc cannot elide
/// malloc/free pairs the tests count on.
pub fn compile(name: &str) -> PathBuf {
    compile_with(name, &["-L", lib_dir().to_str().unwrap(), "-lft_malloc"])
}

/// Compiles `tests/c/<name>` against glibc only (for preload-only runs).
pub fn compile_plain(name: &str) -> PathBuf {
    compile_with(name, &[])
}

/// Compiles each program once per test process; tests running in parallel
/// wait for the one compiling it instead of racing on the output file.
fn compile_with(name: &str, link: &[&str]) -> PathBuf {
    static BUILT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let stem = Path::new(name).file_stem().unwrap().to_str().unwrap();
    let suffix = if link.is_empty() { "-plain" } else { "" };
    let out = scratch().join(format!("{stem}{suffix}"));
    let mut built = BUILT.lock().unwrap();
    if built.contains(&out) {
        return out;
    }
    let status = Command::new("gcc")
        .args(["-O0", "-g", "-pthread", "-Wall", "-Wno-free-nonheap-object"])
        .args(["-Wno-alloc-size-larger-than", "-Wno-use-after-free"])
        .arg(c_source(name))
        .arg("-o")
        .arg(&out)
        .args(link)
        .status()
        .expect("gcc runs");
    assert!(status.success(), "gcc failed on {name}");
    built.push(out.clone());
    out
}

/// Runs `cmd` with the library preloaded (and findable, for programs linked
/// with `-lft_malloc`), as the subject's README does.
pub fn preloaded(cmd: &mut Command) -> &mut Command {
    cmd.env("LD_PRELOAD", library())
        .env("LD_LIBRARY_PATH", lib_dir())
}

/// `cmd` with the library findable but not preloaded.
pub fn linked(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("LD_PRELOAD")
        .env("LD_LIBRARY_PATH", lib_dir())
}

/// A command with none of the library's debug variables inherited.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for var in [
        "FT_MALLOC_CHECK",
        "FT_MALLOC_SCRIBBLE",
        "FT_MALLOC_TRACE",
        "FT_MALLOC_SHOW_AT_EXIT",
        "LD_PRELOAD",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// What a finished child did.
#[derive(Debug)]
pub struct Run {
    /// Exit code, or `128 + signal` if killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// Minor page faults (`ru_minflt`) of the child and its waited-for
    /// descendants.
    pub minor_faults: i64,
    /// Peak resident set in KiB (`ru_maxrss`).
    pub max_rss_kib: i64,
    pub wall: Duration,
    /// Whether the watchdog killed it for running too long (a hang).
    pub timed_out: bool,
}

impl Run {
    /// Panics with everything the child said unless it exited with 0.
    pub fn success(self) -> Self {
        assert_eq!(self.code, 0, "child failed: {self:#?}");
        self
    }
}

/// Runs `cmd` to completion (stdin from /dev/null, outputs captured) and
/// measures it with `wait4`. Kills it after [`CHILD_TIMEOUT`].
pub fn run(cmd: &mut Command) -> Run {
    run_within(cmd, CHILD_TIMEOUT)
}

/// [`run`], but the child is killed (and `timed_out` set) after `timeout`.
pub fn run_within(cmd: &mut Command, timeout: Duration) -> Run {
    let start = Instant::now();
    // Reaped below with wait4, which std's `Child::wait` cannot replace: it
    // returns no resource usage.
    #[allow(clippy::zombie_processes)]
    // Its own process group, so that a hang is killed with any children it
    // forked (they would otherwise keep the output pipes open).
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let readers = [
        read_in_background(child.stdout.take().unwrap()),
        read_in_background(child.stderr.take().unwrap()),
    ];
    let exited = std::sync::Arc::new(AtomicBool::new(false));
    let watchdog = {
        let exited = exited.clone();
        std::thread::spawn(move || {
            while !exited.load(Ordering::Acquire) {
                if start.elapsed() > timeout {
                    // SAFETY: the child is not reaped yet (we wait with
                    // WNOWAIT first), so `pid` still names it and its group.
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                    return true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            false
        })
    };
    // SAFETY: plain waitid/wait4 calls on our own child, with valid
    // out-pointers.
    let (status, usage) = unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        while libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        ) < 0
        {
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EINTR)
            );
        }
        exited.store(true, Ordering::Release);
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::wait4(pid, &mut status, 0, &mut usage), pid);
        (status, usage)
    };
    let wall = start.elapsed();
    let timed_out = watchdog.join().unwrap();
    let [stdout, stderr] = readers.map(|r| r.join().unwrap());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Run {
        code,
        stdout,
        stderr,
        minor_faults: usage.ru_minflt,
        max_rss_kib: usage.ru_maxrss,
        wall,
        timed_out,
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        pipe.read_to_end(&mut bytes).unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Whether `program` can be found in PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
