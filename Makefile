# ft_malloc: thin wrapper around cargo, for the commands the ft_malloc
# subject (and its users) expect. `make` builds libft_malloc.so.

ifeq ($(HOSTTYPE),)
HOSTTYPE := $(shell uname -m)_$(shell uname -s)
endif

NAME    := libft_malloc_$(HOSTTYPE).so
LINK    := libft_malloc.so
CARGO   ?= cargo
RELEASE := $(or $(CARGO_TARGET_DIR),target)/release
SETUP   := scripts/setup.sh
# Debian's python3-matplotlib belongs to the system python3, which a PATH
# python3 (pyenv, venv) may hide.
PLOT_PY ?= $(if $(wildcard /usr/bin/python3),/usr/bin/python3,python3)

.PHONY: all setup setup-demo test stress lint miri miri-heap miri-lib-cache demo qemu bench bench-hosted bench-callgrind bench-kernel bench-csv \
	pictures plots clean fclean re

all: $(NAME)

# Cargo decides whether anything changed; the copy keeps the subject's name.
# `c-abi` exports malloc & co. (the crate's default is Rust's allocator only);
# `own-panic-handler` leaves Rust std out of the library (a smaller footprint).
$(NAME): FORCE
	$(CARGO) build --release -p ft_malloc_hosted --features c-abi,own-panic-handler
	@# Copy then rename: overwriting a library a running process has mapped
	@# would pull the pages from under it.
	cp $(RELEASE)/libft_malloc_hosted.so $(NAME).tmp && mv -f $(NAME).tmp $(NAME)
	ln -sf $(NAME) $(LINK)

FORCE:

## Everything the tests need (nightly + Miri included).
setup:
	@$(SETUP)

## Only what the demo and the kernel use: gcc, make, QEMU, the bare-metal target.
setup-demo:
	@$(SETUP) --demo

## The tests: host tests of every crate (the core's unit, heap and thread
## tests; its shadow model and loom model in workspace-tests/; the hosted library
## under real programs; the QEMU kernel booted), the examples run, then the
## core under Miri.
test: setup all
	$(CARGO) test --workspace
	$(CARGO) test -p ft_malloc --target i686-unknown-linux-gnu --lib --test heap --test small_heaps --test cache --test spans --test regions --test heap_cache
	$(CARGO) test -p ft_malloc_workspace_tests --target i686-unknown-linux-gnu --test model
	$(CARGO) run -q --example arena_global
	$(CARGO) run -q --example kernel_provider
	$(CARGO) run -q -p ft_malloc_hosted --example hosted_global
	$(MAKE) miri

## The stress harness (hosted/tests/c/stress.c) alone, for longer than the
## 30 s it gets inside `make test`: STRESS_SECONDS=600 make stress.
STRESS_SECONDS ?= 120
stress:
	STRESS_SECONDS=$(STRESS_SECONDS) $(CARGO) test -p ft_malloc_hosted --test concurrency \
		stress_harness_mixed_load -- --nocapture

## The core under Miri: unit, heap and front-cache tests. The model test
## (proptest against a reference, workspace-tests/) runs natively in `cargo test`; under Miri
## it added 1.5 min to a CI run near its 30 min budget.
# Miri interprets one thread at a time: the heap tests (about half of the
# time) run beside the unit and cache tests, one on each core.
# (`env -u MAKEFLAGS -u MFLAGS`: cargo would look for make's jobserver, whose
# descriptors a recipe does not inherit.)
MIRI = env -u MAKEFLAGS -u MFLAGS MIRIFLAGS="-Zmiri-disable-isolation" $(CARGO) +nightly miri test -p ft_malloc
miri:
	$(MIRI) --no-run --lib --test heap --test held_blocks --test cache --test spans --test heap_cache --test purge --test affinity
	$(MAKE) --no-print-directory -j2 miri-heap miri-lib-cache
miri-heap:
	$(MIRI) --test heap --test held_blocks
	env -u MAKEFLAGS -u MFLAGS MIRIFLAGS="-Zmiri-disable-isolation" $(CARGO) +nightly miri run -p ft_malloc --example arena_global
# spans without weak-memory emulation: its heap re-carves freed zones as
# classes of other slot widths, so a size slot's atomic store can partly
# overlap an earlier one of another width, ordered by the class locks; Miri's
# store-buffer model panics on that (an internal error of the nightly that
# make setup installs, not a report about this code). Data races are still
# checked there.
miri-lib-cache:
	$(MIRI) --lib --test cache --test heap_cache --test purge --test affinity
	env -u MAKEFLAGS -u MFLAGS MIRIFLAGS="-Zmiri-disable-isolation -Zmiri-disable-weak-memory-emulation" $(CARGO) +nightly miri test -p ft_malloc --test spans

## Formatting, lints, the core built for bare metal, its docs, and what its
## crates.io package holds.
lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@# The tests turn on the hosted crate's `c-abi`; lint its default too.
	$(CARGO) clippy -p ft_malloc_hosted --lib -- -D warnings
	@# And the library as `make` builds it (no std: its own panic handler).
	$(CARGO) clippy -p ft_malloc_hosted --lib --features c-abi,own-panic-handler -- -D warnings
	$(CARGO) clippy -p ft_malloc_qemu_test --target x86_64-unknown-none -- -D warnings
	$(CARGO) build -p ft_malloc --target x86_64-unknown-none --all-features
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps -p ft_malloc --all-features
	scripts/check-package.sh
	$(CARGO) build -p ft_malloc --target aarch64-unknown-none
	$(CARGO) build -p ft_malloc --target i686-unknown-linux-gnu
	@# The hosted library for a 32-bit process (no window: the page map's tree).
	$(CARGO) clippy -p ft_malloc -p ft_malloc_hosted --lib --target i686-unknown-linux-gnu -- -D warnings
	$(CARGO) build -p ft_malloc --target thumbv7em-none-eabihf
	$(CARGO) build -p ft_malloc --target riscv32imac-unknown-none-elf

## The main job: the seed's workflow (build, link, preload, show_alloc_mem),
## then the kernel's trace of one allocation's page fault.
demo: setup-demo all
	@echo '== the seed: gcc main.c -L. -lft_malloc -o main; LD_PRELOAD=libft_malloc.so ./main'
	gcc -Wall -Wextra main.c -L. -lft_malloc -o main
	LD_LIBRARY_PATH=$(CURDIR) LD_PRELOAD=$(CURDIR)/$(LINK) ./main
	@echo '== the same in a kernel: one allocation, its page fault, traced (QEMU)'
	$(CARGO) qemu trace

## The test kernel under QEMU: `make qemu` (one CPU), `make qemu SMP=4`
## (4 CPUs, found in the ACPI tables and started by the kernel);
## QEMU_ARGS=... sets the kernel command line (default: tests bench).
SMP ?= 1
QEMU_ARGS ?=
qemu: setup-demo
	QEMU_SMP=$(SMP) $(CARGO) qemu $(QEMU_ARGS)

bench: setup
	$(CARGO) run --release -p ft_malloc_bench

## A small kernel's everyday work in the QEMU kernel (issue 19,
## qemu-test/src/bench_kernel.rs), instructions per operation (-icount):
## the kernel built optimised, then as a debug kernel's dev profile builds
## it (opt-level 0, debug assertions and overflow checks on; the core, talc
## and linked_list_allocator alike), in its own target directory.
KERNEL_O0_TARGET := $(or $(CARGO_TARGET_DIR),target)/kernel-o0
bench-kernel: setup-demo
	$(CARGO) qemu bench-kernel
	CARGO_PROFILE_RELEASE_OPT_LEVEL=0 CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true \
		CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true CARGO_TARGET_DIR=$(KERNEL_O0_TARGET) \
		QEMU_TIMEOUT=600 $(CARGO) qemu bench-kernel

bench-hosted: all
	@$(SETUP) --bench
	$(CARGO) run --release -p ft_malloc_hosted --example bench_hosted -- --lib $(CURDIR)/$(NAME)

bench-callgrind:
	bench/callgrind.sh

## Both benchmarks again, as CSV into bench/results/ (what `make plots` draws).
## BENCH_RUNS: runs per hosted workload (the tables use 5).
BENCH_RUNS ?= 5
bench-csv: all
	@$(SETUP) --bench
	mkdir -p bench/results
	$(CARGO) run --release -p ft_malloc_bench -- --csv > bench/results/core.csv.tmp
	mv bench/results/core.csv.tmp bench/results/core.csv
	$(CARGO) run --release -p ft_malloc_hosted --example bench_hosted -- \
		--lib $(CURDIR)/$(NAME) --runs $(BENCH_RUNS) --csv > bench/results/hosted.csv.tmp
	mv bench/results/hosted.csv.tmp bench/results/hosted.csv

## The pictures of the README: the heap of a C program under LD_PRELOAD,
## drawn by show_alloc_mem_svg into docs/heap.svg, then the benchmark plots
## from the saved CSVs.
pictures: all
	mkdir -p docs
	gcc -Wall -Wextra hosted/tests/c/show_svg.c -L. -lft_malloc -o show_svg
	LD_LIBRARY_PATH=$(CURDIR) LD_PRELOAD=$(CURDIR)/$(LINK) ./show_svg docs/heap.svg
	@echo "wrote docs/heap.svg"
	$(MAKE) plots

## docs/bench_core.png and docs/bench_hosted.png from bench/results/*.csv
## (matplotlib, offline).
plots:
	@$(SETUP) --plots
	$(PLOT_PY) scripts/plots.py

clean:
	rm -f main show_svg

fclean: clean
	rm -f $(NAME) $(LINK)
	$(CARGO) clean

re: fclean all
