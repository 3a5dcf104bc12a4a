#!/usr/bin/env bash
# The core's crates.io package must hold the core only: its sources, its
# examples, its own tests, its own README (README.crate.md: no `make`, no
# link to a file it does not hold), INTERNALS.md, the licences and Cargo's
# own files. Anything else (the hosted crate, the test kernel, the model
# tests, benchmarks, scripts) means the `include` list in Cargo.toml has
# drifted. Cargo must not warn either (a warning there is one a user of
# `cargo publish` would see).
set -euo pipefail
cd "$(dirname "$0")/.."
allowed='^((src|tests)/([a-z_0-9]+/)*[a-z_0-9]+\.rs|examples/[a-z_0-9]+\.rs|README\.crate\.md|INTERNALS\.md|LICENSE-MIT|LICENSE-APACHE|Cargo\.toml|Cargo\.toml\.orig|Cargo\.lock|\.cargo_vcs_info\.json)$'
list=$(cargo package -p ft_malloc --list --allow-dirty)
if warnings=$(cargo package -p ft_malloc --no-verify --allow-dirty 2>&1 | grep -i '^warning'); then
    echo "check-package: cargo package warns:" >&2
    echo "$warnings" >&2
    exit 1
fi
if unexpected=$(grep -vE "$allowed" <<<"$list"); then
    echo "check-package: files that do not belong in the ft_malloc package:" >&2
    echo "$unexpected" >&2
    exit 1
fi
for required in src/lib.rs README.crate.md LICENSE-MIT LICENSE-APACHE; do
    grep -qx "$required" <<<"$list" || { echo "check-package: $required missing" >&2; exit 1; }
done
echo "check-package: $(wc -l <<<"$list") files, all the core's"
