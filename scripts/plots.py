#!/usr/bin/env python3
"""Draws the benchmark CSVs as ratios to the peers (`make plots`).

bench/results/core.csv   (cargo run --release -p ft_malloc_bench -- --csv):
    allocator,max_size,ops_median,heap_efficiency
    -> docs/bench_core.png: random-actions throughput relative to talc per
       max size, and heap efficiency, one bar per allocator.
bench/results/hosted.csv (bench_hosted --csv):
    workload,allocator,wall_ms,max_rss_kib
    -> docs/bench_hosted.png: wall time relative to glibc per workload.

Offline: matplotlib (Debian's python3-matplotlib, `scripts/setup.sh --plots`)
with the Agg backend, no fonts or data fetched. A missing CSV is skipped.
"""

import csv
import sys
from collections import OrderedDict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs"

# One colour per allocator, the same in both charts; ft_malloc stands out.
COLOURS = {
    "ft_malloc": "#1f5fa8",
    "talc": "#e69f00",
    "rlsf": "#009e73",
    "linked_list": "#cc79a7",
    "buddy": "#999999",
    "glibc": "#e69f00",
    "jemalloc": "#009e73",
    "mimalloc": "#cc79a7",
    "tcmalloc": "#999999",
}


def read(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def grouped_bars(ax, groups, series, values, baseline_label):
    """Bars of `values[(group, name)]`, grouped by `groups`, one per series."""
    width = 0.8 / len(series)
    for i, name in enumerate(series):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        ys = [values.get((group, name), float("nan")) for group in groups]
        bars = ax.bar(xs, ys, width, label=name, color=COLOURS.get(name))
        for bar, y in zip(bars, ys):
            if y == y:  # not NaN
                ax.annotate(
                    f"{y:.2f}",
                    (bar.get_x() + bar.get_width() / 2, y),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=90,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
    # The baseline goes in the legend: a label on the line would hit bars.
    ax.axhline(1.0, color="black", linewidth=0.8, label=baseline_label)
    ax.set_xticks(range(len(groups)))


def core_plot(rows, out):
    sizes = list(OrderedDict.fromkeys(int(r["max_size"]) for r in rows))
    names = list(OrderedDict.fromkeys(r["allocator"] for r in rows))
    ops = {(int(r["max_size"]), r["allocator"]): float(r["ops_median"]) for r in rows}
    if "talc" not in names:
        sys.exit("core.csv has no talc rows to compare with")
    ratios = {(s, n): ops[(s, n)] / ops[(s, "talc")] for (s, n) in ops}
    efficiency = OrderedDict(
        (r["allocator"], float(r["heap_efficiency"]))
        for r in rows
        if r["heap_efficiency"]
    )

    fig, (left, right) = plt.subplots(
        1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [3, 1.2]}
    )
    grouped_bars(left, sizes, names, ratios, "talc = 1")
    left.set_xticklabels([str(s) for s in sizes])
    left.set_xlabel("random actions: max request size (bytes)")
    left.set_ylabel("operations completed / talc's (higher is faster)")
    left.set_title("Throughput relative to talc (median of trials)")
    left.set_ylim(0, max(ratios.values()) * 1.35)
    left.legend(fontsize=8, ncol=len(names) + 1, loc="upper center")

    xs = range(len(efficiency))
    bars = right.bar(
        xs,
        [100 * e for e in efficiency.values()],
        color=[COLOURS.get(n) for n in efficiency],
    )
    for bar, e in zip(bars, efficiency.values()):
        right.annotate(
            f"{100 * e:.1f}%",
            (bar.get_x() + bar.get_width() / 2, 100 * e),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    right.set_xticks(list(xs))
    right.set_xticklabels(list(efficiency), rotation=30, ha="right", fontsize=8)
    right.set_ylim(0, 110)
    right.set_ylabel("live requested bytes / arena at first failure (%)")
    right.set_title("Heap efficiency")
    fig.suptitle("ft_malloc core vs no_std allocators, 128 MiB arena (make bench)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def hosted_plot(rows, out):
    workloads = list(OrderedDict.fromkeys(r["workload"] for r in rows))
    names = [n for n in OrderedDict.fromkeys(r["allocator"] for r in rows) if n != "glibc"]
    wall = {(r["workload"], r["allocator"]): float(r["wall_ms"]) for r in rows}
    ratios = {
        (w, n): wall[(w, n)] / wall[(w, "glibc")]
        for (w, n) in wall
        if n != "glibc" and (w, "glibc") in wall
    }

    fig, ax = plt.subplots(figsize=(12, 5.2))
    grouped_bars(ax, workloads, names, ratios, "glibc = 1")
    ax.set_xticklabels(workloads, rotation=28, ha="right", fontsize=8)
    ax.set_ylabel("wall time / glibc's (lower is faster)")
    ax.set_ylim(0, max(ratios.values()) * 1.2)
    ax.set_title("libft_malloc.so and other allocators: time relative to glibc (medians)")
    ax.legend(fontsize=8, ncol=len(names) + 1, loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    DOCS.mkdir(exist_ok=True)
    drawn = 0
    for name, plot, out in [
        ("core.csv", core_plot, "bench_core.png"),
        ("hosted.csv", hosted_plot, "bench_hosted.png"),
    ]:
        path = RESULTS / name
        if not path.exists():
            print(f"skipping {path}: not there (make bench-csv)")
            continue
        plot(read(path), DOCS / out)
        print(f"wrote {DOCS / out}")
        drawn += 1
    return 0 if drawn else 1


if __name__ == "__main__":
    sys.exit(main())
