#!/usr/bin/env bash
# Installs what this project needs on a fresh Debian machine with rustup:
# the bare-metal and 32-bit targets, a nightly with Miri, QEMU, a C compiler and the
# programs the hosted tests run under LD_PRELOAD. Idempotent and quiet when
# everything is already there.  Usage: scripts/setup.sh [--bench]
set -euo pipefail

need_apt=()
want() { dpkg -s "$1" >/dev/null 2>&1 || need_apt+=("$1"); }

want qemu-system-x86   # the test kernel (make qemu, make demo)
want gcc               # the hosted C test programs
want libc6-dev         # their headers (gcc only recommends it)
want gcc-multilib      # linking the core's tests for i686 (make test)
want make
want python3           # real programs under LD_PRELOAD
want git
want perl
want gawk
want coreutils
if [ "${1:-}" = "--bench" ]; then
    want libjemalloc2
    want libmimalloc2.0
    want libtcmalloc-minimal4
    want hyperfine
    want valgrind
fi

if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Bare metal (the QEMU kernel; the core on 64- and 32-bit targets, make lint)
# and i686 Linux (the core's tests as a 32-bit program, make test).
for target in x86_64-unknown-none aarch64-unknown-none i686-unknown-linux-gnu \
    thumbv7em-none-eabihf riscv32imac-unknown-none-elf; do
    if ! rustup target list --installed | grep -qx "$target"; then
        echo "setup: adding the $target target"
        rustup target add "$target"
    fi
done
for component in clippy rustfmt; do
    rustup component list --installed | grep -q "^$component" || rustup component add "$component"
done
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "setup: installing a nightly toolchain with Miri"
    rustup toolchain install nightly --profile minimal -c miri -c rust-src
fi
