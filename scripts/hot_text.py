#!/usr/bin/env python3
"""Writes hosted/hot_text.ld: the library's functions that programs run,
placed first in its text, most shared first (see the script's header).

Why: the kernel maps a file's pages around each page fault, 64 KiB at a
time (fault-around), so one function run in a 64 KiB window of the
library's text makes the whole window resident in every process. With the
functions programs actually run grouped, the rest of the text (show_alloc_mem,
malloc_info, hardened mode, the small-region pool, formatting) stays out of
their resident set: 188 -> 96 KiB for small_churn (BENCHMARKS.md, branch rss).

Usage: scripts/hot_text.py [LIB] [OUT]   (defaults: ./libft_malloc.so,
hosted/hot_text.ld). Builds nothing: run `make` first. Runs the hosted
bench's C workloads (short) and a few ordinary programs under callgrind
with LD_PRELOAD=LIB, and keeps every function of LIB that ran in any of
them. Needs valgrind, gcc, g++. The section names are written without the
symbols' hashes (`17h<hash>E` -> `17h*`), so the script survives rebuilds
and moves; a renamed function simply falls back to the ordinary place
until the next run.
"""
import collections
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
lib = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "libft_malloc.so"))
out_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "hosted/hot_text.ld")
BENCH = os.path.join(ROOT, "hosted/bench")
work = tempfile.mkdtemp(prefix="hot_text.")


def build(name, src, cxx=False):
    exe = os.path.join(work, name)
    cc = "g++" if cxx else "gcc"
    subprocess.run([cc, "-O2", "-pthread", "-o", exe, src], check=True)
    return exe


progs = []
for name, args in [
    ("small_churn", ["100000"]),
    ("large_churn", ["300"]),
    ("realloc_strings", ["1"]),
    ("producer_consumer", ["2", "50000"]),
    ("thread_churn", ["200"]),
    ("fork_threads", ["threads", "2", "3"]),
    ("large_threads", ["2", "300"]),
    ("private_churn", ["2", "50000"]),
]:
    progs.append([build(name, os.path.join(BENCH, name + ".c"))] + args)
progs.append([build("threads", os.path.join(ROOT, "hosted/tests/c/threads.c")), "4", "2000"])
progs.append([build("cxx_objects", os.path.join(BENCH, "cxx_objects.cpp"), cxx=True), "2", "20000"])
progs += [
    ["ls", "-laR", "/usr/include/linux"],
    ["sort", "/etc/services"],
    ["awk", "{s = s $0} END {print length(s)}", "/etc/services"],
    ["perl", "-e", 'my %h; $h{$_}++ for split //, "abc" x 1000; print scalar keys %h'],
    ["python3", "-c", "import json; print(json.dumps({'a': [1, 2, 3]}))"],
    ["sh", "-c", "cd %s && git init -q g && cd g && echo a > a && git add a && "
     "git -c user.name=a -c user.email=b commit -qm x && git log >/dev/null" % work],
]

env = dict(os.environ, LD_PRELOAD=lib)
outs = []
for i, argv in enumerate(progs):
    out = os.path.join(work, "cg.%d.%%p" % i)
    subprocess.run(["valgrind", "--tool=callgrind", "--trace-children=yes",
                    "--callgrind-out-file=" + out] + argv,
                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    outs += [os.path.join(work, f) for f in os.listdir(work)
             if re.fullmatch(r"cg\.%d\.\d+" % i, f)]

# Functions of LIB with a cost of their own, per callgrind output file.
# (Callgrind names LIB's object "???" once its text is reordered; only
# names LIB defines are kept below.)
runs_of = collections.Counter()
base = os.path.basename(os.path.realpath(lib))
for path in outs:
    names = {"ob": {}, "fn": {}}
    ob = fn = None
    in_call = False
    ran = set()
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"^(c?)(ob|fn|fl|fi|fe|cfi|cfl)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if m:
                call, kind, ident, name = m.groups()
                if kind in ("ob", "fn"):
                    if name:
                        names[kind][ident] = name
                    if not call:
                        if kind == "ob":
                            ob = names["ob"][ident]
                        else:
                            fn = names["fn"][ident]
                continue
            if line.startswith("calls="):
                in_call = True
                continue
            if line[:1].isdigit() or line[:1] in "+-*":
                if in_call:
                    in_call = False
                elif ob and (os.path.basename(ob) == base or ob == "???"):
                    ran.add(fn)
    for name in ran:
        runs_of[name] += 1

# Demangled (callgrind's names) -> mangled symbols of LIB.
def nm(*flags):
    return subprocess.run(["nm", "-S", "--defined-only", *flags, lib],
                          capture_output=True, text=True, check=True).stdout.splitlines()

# Both listings keyed by address (their name orders differ).
addresses = collections.defaultdict(set)
for line in nm("-C"):
    f = line.split(" ", 3)
    if len(f) == 4 and f[2] in "tTwW":
        addresses[f[3]].add(f[0])
mangled = collections.defaultdict(list)
for line in nm():
    f = line.split(" ", 3)
    if len(f) == 4 and f[2] in "tTwW":
        mangled[f[0]].append(f[3])

if len(runs_of) < 30:
    sys.exit("hot_text.py: only %d functions ran under callgrind; is valgrind working?" % len(runs_of))
patterns = []
for name, runs in sorted(runs_of.items(), key=lambda x: (-x[1], x[0])):
    for sym in [m for a in sorted(addresses.get(name, ())) for m in mangled[a]]:
        sym = re.sub(r"\.llvm\.\d+$", "", sym)
        sym = re.sub(r"17h[0-9a-f]{16}E$", "17h*", sym)
        # `$` is not a pattern character for the linker; any one character
        # matches it.
        sym = sym.replace("$", "?")
        pat = ".text.%s .text.unlikely.%s" % (sym, sym)
        if pat not in patterns:
            patterns.append(pat)

with open(out_path, "w") as o:
    o.write("/* Generated by scripts/hot_text.py: the functions of libft_malloc.so that\n"
            "   the hosted bench's workloads and a few ordinary programs run, most\n"
            "   shared first, placed before the rest of the text so that they share\n"
            "   the fewest 64 KiB fault-around windows. Regenerate after large code\n"
            "   changes; a function missing here only lands in the ordinary text. */\n")
    # The PLT (the stubs to `__register_atfork`, run at load, and
    # `__cxa_finalize`, at exit) goes right before them, and the C runtime's
    # own start-up code (`.init`, then `.text`'s first functions) is just
    # around them: so a program's start and exit touch no other window.
    # `*(.text)`: the C objects' code (the C runtime's, and
    # `pthread_atfork` from libc_nonshared.a), run at load.
    o.write("SECTIONS\n{\n  .plt : { *(.plt) }\n  .text.ft_hot :\n  {\n    *(.text)\n")
    for p in patterns:
        o.write("    *(%s)\n" % p)
    o.write("  }\n}\nINSERT BEFORE .text;\n")
    # The large zero-initialised statics (the window's books, 16 KiB, of
    # which a program writes the first entries; the hardened mode's rings,
    # written only in that mode) after every other one, so that the small
    # statics every program writes (the window's state, the fork flags)
    # share a page instead of landing on three.
    o.write("\nSECTIONS\n{\n  .bss.ft_large :\n  {\n"
            "    *(.bss._ZN16ft_malloc_hosted6window5BOOKS17h*)\n"
            "    *(.bss._ZN16ft_malloc_hosted8hardened*)\n"
            "  }\n}\nINSERT AFTER .bss;\n")
print("%s: %d functions from %d runs" % (out_path, len(patterns), len(outs)))
