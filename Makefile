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

.PHONY: all setup test lint miri demo qemu bench bench-hosted bench-callgrind clean fclean re

all: $(NAME)

# Cargo decides whether anything changed; the copy keeps the subject's name.
$(NAME): FORCE
	$(CARGO) build --release -p ft_malloc_hosted
	@# Copy then rename: overwriting a library a running process has mapped
	@# would pull the pages from under it.
	cp $(RELEASE)/libft_malloc_hosted.so $(NAME).tmp && mv -f $(NAME).tmp $(NAME)
	ln -sf $(NAME) $(LINK)

FORCE:

setup:
	@$(SETUP)

## The tests: host tests of every crate (the core's unit, model and thread
## tests; the hosted library under real programs; the QEMU kernel booted),
## the core's tests again as a 32-bit program (i686), then the core under Miri.
test: setup all
	$(CARGO) test --workspace
	$(CARGO) test -p ft_malloc --target i686-unknown-linux-gnu --lib --test heap --test model --test small_heaps
	$(MAKE) miri

miri:
	MIRIFLAGS="-Zmiri-disable-isolation" $(CARGO) +nightly miri test -p ft_malloc --lib --test heap --test model

## Formatting, lints, and the core built for bare metal, 64- and 32-bit.
lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p ft_malloc_qemu_test --target x86_64-unknown-none -- -D warnings
	$(CARGO) build -p ft_malloc --target x86_64-unknown-none
	$(CARGO) build -p ft_malloc --target aarch64-unknown-none
	$(CARGO) build -p ft_malloc --target i686-unknown-linux-gnu
	$(CARGO) build -p ft_malloc --target thumbv7em-none-eabihf
	$(CARGO) build -p ft_malloc --target riscv32imac-unknown-none-elf

## The main job: the seed's workflow (build, link, preload, show_alloc_mem),
## then the kernel's trace of one allocation's page fault.
demo: setup all
	@echo '== the seed: gcc main.c -L. -lft_malloc -o main; LD_PRELOAD=libft_malloc.so ./main'
	gcc -Wall -Wextra main.c -L. -lft_malloc -o main
	LD_LIBRARY_PATH=$(CURDIR) LD_PRELOAD=$(CURDIR)/$(LINK) ./main
	@echo '== the same in a kernel: one allocation, its page fault, traced (QEMU)'
	$(CARGO) qemu trace

qemu: setup
	$(CARGO) qemu

bench: setup
	$(CARGO) run --release -p ft_malloc_bench

bench-hosted: all
	@$(SETUP) --bench
	$(CARGO) run --release -p ft_malloc_hosted --example bench_hosted -- --lib $(CURDIR)/$(NAME)

bench-callgrind:
	bench/callgrind.sh

clean:
	rm -f main

fclean: clean
	rm -f $(NAME) $(LINK)
	$(CARGO) clean

re: fclean all
