#!/usr/bin/env python3
"""Interleaves `pipeline` bench children of several binaries (two commits, say) and prints,
per child, the median `tx_per_s` with its spread and the per-round ratio to the first.

    ab.py LABEL=BINARY:CASE/VARIANT ...      (ROUNDS=5, TX=1000000 by default)

    ab.py old_off=/old/pipeline-…:telemetry_off/off new_off=target/release/deps/pipeline-…:telemetry_off/off

Each round runs every child once, in the order given, so that a shared host's drift falls
on all of them alike (BENCHMARKS.md: "Method"). The binaries are what
`cargo bench -p ergon-runner --bench pipeline --no-run` prints as `Executable`.
"""
import os
import statistics
import subprocess
import sys

rounds = int(os.environ.get("ROUNDS", "5"))
children = [arg.split("=", 1) for arg in sys.argv[1:]]
if not children:
    sys.exit(__doc__)
runs = {label: [] for label, _ in children}
for _ in range(rounds):
    for label, spec in children:
        binary, case = spec.split(":", 1)
        env = dict(os.environ, ERGON_BENCH_CHILD=case, ERGON_BENCH_TX=os.environ.get("TX", "1000000"))
        out = subprocess.run([binary], env=env, capture_output=True, text=True, check=True).stdout
        sample = [line for line in out.splitlines() if line.startswith("sample ")][-1]
        fields = dict(kv.split("=", 1) for kv in sample.split()[1:])
        runs[label].append(float(fields["tx_per_s"]))
base = children[0][0]
for label, values in runs.items():
    ratios = [v / b for v, b in zip(values, runs[base])]
    print(
        f"{label}: median {statistics.median(values):.0f} min {min(values):.0f} max {max(values):.0f} "
        f"runs {[round(v) for v in values]} ratio_to_{base} median {statistics.median(ratios):.2f} "
        f"({min(ratios):.2f}-{max(ratios):.2f})"
    )
