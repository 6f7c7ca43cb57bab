#!/usr/bin/env python3
"""Table of kernels_bench results: time, effective GB/s and the ratio against ATen.

    build/bin/kernels_bench --benchmark_format=json --benchmark_repetitions=5 \
        --benchmark_enable_random_interleaving=true | benchmarks/kernel_table.py

Uses medians when repetitions are given. Ratio = ATen time / Tandem time, against
each ATen variant measured in the same run (> 1: Tandem is faster).
"""
import json
import re
import sys

runs = json.load(sys.stdin)["benchmarks"]
rows = {}
for r in runs:
    if r.get("run_type") == "aggregate" and r.get("aggregate_name") != "median":
        continue
    if r.get("run_type") == "iteration" and any(x.get("run_type") == "aggregate" for x in runs):
        continue
    m = re.match(r"BM_(\w+?)_(tandem\w*|aten\w*)/shape:(\d+)", r["name"])
    if not m:
        continue
    op, impl, shape = m.groups()
    rows[(op, shape, impl)] = (r["real_time"], r.get("GB/s", 0.0))

shapes = {"Embedding": ["fbgemm B512 T32 D128 L20", "dlrm_kaggle B2048 T26 D16 L1",
                        "fbgemm, 1e3 rows (cached)", "dlrm_kaggle, 1e3 rows (cached)"],
          "LayerNorm": ["16384 x 256", "4096 x 1024", "65536 x 16"],
          "ColumnMoments": ["1e6 x 64 float32"]}
print("| op | shape | impl | time (us) | GB/s | ATen / Tandem |")
print("|---|---|---|---|---|---|")
for (op, shape, impl), (t, gbps) in sorted(rows.items()):
    names = shapes[next((k for k in shapes if op.startswith(k)), "Embedding")]
    label = names[int(shape)] if int(shape) < len(names) else shape
    if impl.startswith("tandem"):
        ratios = [f"{rows[k][0] / t:.2f}x vs {k[2]}" for k in sorted(rows)
                  if k[0] == op and k[1] == shape and k[2].startswith("aten")]
        ratio = ", ".join(ratios)
    else:
        ratio = "anchor"
    print(f"| {op} | {label} | {impl} | {t:.0f} | {gbps:.1f} | {ratio} |")
