#!/usr/bin/env bash
# Installs what this project needs on a fresh Debian machine with rustup:
# the bare-metal target, a nightly with Miri, QEMU, a C compiler and the
# programs the hosted tests run under LD_PRELOAD. Idempotent and quiet when
# everything is already there.  Usage: scripts/setup.sh [--bench | --plots]
set -euo pipefail

need_apt=()
want() { dpkg -s "$1" >/dev/null 2>&1 || need_apt+=("$1"); }

want qemu-system-x86   # the test kernel (make qemu, make demo)
want gcc               # the hosted C test programs
want libc6-dev         # their headers (gcc only recommends it)
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
if [ "${1:-}" = "--plots" ]; then
    want python3-matplotlib   # scripts/plots.py (make plots), run by /usr/bin/python3
fi

if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx x86_64-unknown-none; then
    echo "setup: adding the x86_64-unknown-none target"
    rustup target add x86_64-unknown-none
fi
for component in clippy rustfmt; do
    rustup component list --installed | grep -q "^$component" || rustup component add "$component"
done
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "setup: installing a nightly toolchain with Miri"
    rustup toolchain install nightly --profile minimal -c miri -c rust-src
fi
