//! The benchmark thread's own CPU time.
//!
//! On a busy machine (this one has two cores shared with builds) the thread
//! is descheduled now and then; a wall-clock budget would then score the
//! scheduler, not the allocator. Measured runs therefore last a budget of the
//! thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), which equals wall time on an
//! idle machine. `--wall-clock` restores talc's plain wall-clock budget.

use std::time::Duration;

/// CPU time consumed by the calling thread so far.
pub fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; the clock id is a constant
    // every Linux kernel since 2.6.12 supports.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "thread CPU clock")]
    fn spinning_consumes_cpu_time_and_sleeping_does_not() {
        let start = thread_cpu_time();
        let spin_until = std::time::Instant::now() + Duration::from_millis(20);
        while std::time::Instant::now() < spin_until {}
        let spun = thread_cpu_time() - start;
        assert!(spun >= Duration::from_millis(10), "{spun:?}");

        let before_sleep = thread_cpu_time();
        std::thread::sleep(Duration::from_millis(50));
        assert!(thread_cpu_time() - before_sleep < Duration::from_millis(20));
    }
}
