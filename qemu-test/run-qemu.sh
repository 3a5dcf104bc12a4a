#!/usr/bin/env bash
# Boots the ft_malloc test kernel under QEMU and turns the way it ended into
# an exit status: 0 only when the kernel reported success.
#
#   run-qemu.sh KERNEL_ELF [COMMAND LINE WORDS...]
#
# Cargo calls it as the runner of the x86_64-unknown-none target (see
# .cargo/config.toml), so `cargo qemu trace` boots the kernel with the
# command line "trace". The kernel leaves through the isa-debug-exit device:
# writing code C makes QEMU exit with (C << 1) | 1, so the kernel's success
# code 0x10 gives 33 and its failure code 0x11 gives 35.
#
# Anything but 33 is a failure: 35 (a test failed, a panic, an unexpected
# fault), 124 (the kernel hung and `timeout` killed QEMU), 0 (QEMU stopped
# on its own: with -no-reboot a triple fault resets the machine and QEMU
# exits 0), or QEMU failing to start.
#
# -icount shift=0 makes the guest clock tick once per executed instruction,
# so the benchmark's TSC readings are instruction counts, the same on every
# run (TCG's TSC otherwise follows the busy host's clock).
#
# QEMU_SMP=N (`make qemu SMP=N`) gives the machine N CPUs, which the kernel
# finds in the ACPI tables and starts. icount cannot run CPUs in parallel
# (QEMU then runs them one at a time, in turns), so with N > 1 the default
# is multi-threaded TCG (`thread=multi`, one host thread per CPU, a
# host-clock TSC); QEMU_ICOUNT=on keeps icount (single-threaded TCG) for
# exact instruction counts.
#
# Environment: QEMU_TIMEOUT (seconds, default 120), QEMU_MEMORY (default 128M;
# the kernel only uses RAM inside its 1 GiB identity map), QEMU_SMP (CPUs,
# default 1), QEMU_ICOUNT ("on"/"off"; default on for one CPU, off for
# more), QEMU (the binary).
set -u

readonly SUCCESS_STATUS=33
readonly FAILURE_STATUS=35

if [ $# -lt 1 ]; then
    echo "usage: $0 KERNEL_ELF [COMMAND LINE WORDS...]" >&2
    exit 2
fi
kernel=$1
shift
qemu=${QEMU:-qemu-system-x86_64}
if ! command -v "$qemu" >/dev/null 2>&1; then
    echo "run-qemu: $qemu not found (Debian: apt-get install qemu-system-x86)" >&2
    exit 2
fi

cpus=${QEMU_SMP:-1}
if ! [[ $cpus =~ ^[1-9][0-9]*$ ]]; then
    echo "run-qemu: QEMU_SMP must be a CPU count, not '$cpus'" >&2
    exit 2
fi
if [ "$cpus" -gt 1 ]; then
    default_icount=off
else
    default_icount=on
fi
# TCG: on these machines KVM is present but about 100x slower.
if [ "${QEMU_ICOUNT:-$default_icount}" = on ]; then
    accel=(-accel tcg -icount shift=0,sleep=off)
else
    accel=(-accel tcg,thread=multi)
fi

timeout --foreground --kill-after=5 "${QEMU_TIMEOUT:-120}" \
    "$qemu" \
    "${accel[@]}" \
    -smp "$cpus" \
    -m "${QEMU_MEMORY:-128M}" \
    -kernel "$kernel" \
    -append "$*" \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -serial stdio \
    -display none \
    -monitor none \
    -no-reboot
status=$?

case $status in
    "$SUCCESS_STATUS")
        echo "run-qemu: PASS (kernel reported success)"
        exit 0 ;;
    "$FAILURE_STATUS")
        echo "run-qemu: FAIL (kernel reported failure)" ;;
    124 | 137)
        echo "run-qemu: FAIL (timeout after ${QEMU_TIMEOUT:-120}s: the kernel hung)" ;;
    0)
        echo "run-qemu: FAIL (QEMU exited without the kernel's verdict: a triple fault or reset)" ;;
    *)
        echo "run-qemu: FAIL (QEMU exited with status $status)" ;;
esac
exit 1
