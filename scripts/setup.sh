#!/usr/bin/env bash
# Installs what this project needs on a fresh Debian machine with rustup.
# Idempotent and quiet when everything is already there.
#
#   scripts/setup.sh          everything the tests need (make test, make lint,
#                             .ci/run): the demo's needs, plus the programs the
#                             hosted tests run under LD_PRELOAD, clippy,
#                             rustfmt and a nightly with Miri (make miri)
#   scripts/setup.sh --demo   only what make demo uses: gcc, make, QEMU and
#                             the x86_64-unknown-none target
#   scripts/setup.sh --bench  everything, plus the allocators and tools
#                             make bench-hosted compares against
#   scripts/setup.sh --plots  everything, plus python3-matplotlib (make plots)
set -euo pipefail

mode="${1:-test}"
case "$mode" in
    --demo) mode=demo ;;
    --bench) mode=bench ;;
    --plots) mode=plots ;;
    test) ;;
    *) echo "usage: $0 [--demo|--bench|--plots]" >&2; exit 2 ;;
esac

need_apt=()
want() { dpkg -s "$1" >/dev/null 2>&1 || need_apt+=("$1"); }

# The demo: link and preload main.c, boot the kernel.
want qemu-system-x86   # the test kernel (make qemu, make demo)
want gcc               # main.c and the hosted C test programs
want libc6-dev         # their headers (gcc only recommends it)
want make
if [ "$mode" != demo ]; then
    want gcc-multilib  # linking the core's tests for i686 (make test)
    want g++           # the C++ operators test (hosted/tests/cxx.rs)
    want python3       # real programs under LD_PRELOAD
    want git
    want perl
    want gawk
    want coreutils
    want binutils      # nm: tests/features.rs checks the exported symbols
fi
if [ "$mode" = bench ]; then
    want libjemalloc2
    want libmimalloc2.0
    want libtcmalloc-minimal4
    want hyperfine
    want valgrind
fi
if [ "$mode" = plots ]; then
    want python3-matplotlib   # scripts/plots.py (make plots), run by /usr/bin/python3
fi

if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Bare metal (the QEMU kernel; the core on 64- and 32-bit targets, make lint)
# and i686 Linux (the core's tests as a 32-bit program, make test). The demo
# boots only the x86_64 kernel.
targets=(x86_64-unknown-none)
[ "$mode" = demo ] || targets+=(aarch64-unknown-none i686-unknown-linux-gnu
    thumbv7em-none-eabihf riscv32imac-unknown-none-elf)
for target in "${targets[@]}"; do
    if ! rustup target list --installed | grep -qx "$target"; then
        echo "setup: adding the $target target"
        rustup target add "$target"
    fi
done
[ "$mode" = demo ] && exit 0
for component in clippy rustfmt; do
    rustup component list --installed | grep -q "^$component" || rustup component add "$component"
done
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "setup: installing a nightly toolchain with Miri"
    rustup toolchain install nightly --profile minimal -c miri -c rust-src
fi
