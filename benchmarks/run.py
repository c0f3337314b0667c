"""Run every benchmarks/bench_*.py and write benchmarks/results.md and results.json.

Each module defines ``run(quick: bool) -> list[dict]``; a row is
``{"area", "name", "value", "unit", "target"?, "baseline"?, "ok"?, "note"?}`` where
``baseline`` names the thing measured side by side in the same run. Usage:

    python benchmarks/run.py [--quick] [--only lake,engine]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem = f"{int(open('/proc/meminfo').readline().split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip(),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller data, for a smoke run")
    ap.add_argument("--only", default="", help="comma-separated module names without bench_")
    args = ap.parse_args()
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    sys.path.insert(0, str(HERE.parent))
    rows: list[dict] = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem[len("bench_") :]
        if only and name not in only:
            continue
        print(f"== {name}", flush=True)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        t0 = time.perf_counter()
        try:
            spec.loader.exec_module(mod)
            got = mod.run(args.quick)
        except Exception:
            traceback.print_exc()
            got = [
                {"area": name, "name": "benchmark failed", "value": None, "unit": "", "ok": False}
            ]
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        for r in got:
            r.setdefault("area", name)
            r.setdefault("measured", stamp)
            print(
                f"   {r['name']}: {r['value']} {r.get('unit', '')}  target {r.get('target', '-')}  ok={r.get('ok', '-')}",
                flush=True,
            )
        rows.extend(got)
        print(f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
    suffix = "-quick" if args.quick else ""
    previous = HERE / f"results{suffix}.json"
    if only and previous.exists():  # --only re-measures some areas: keep the others' rows
        kept = [r for r in json.loads(previous.read_text())["results"] if r["area"] not in only]
        rows = sorted(kept + rows, key=lambda r: r["area"])  # stable: each area's order kept
    out = {"machine": machine(), "quick": args.quick, "results": rows}
    (HERE / f"results{suffix}.json").write_text(json.dumps(out, indent=2, default=str))
    lines = [
        "# Benchmark results",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in out["machine"].items()),
        "",
        "Each row's baseline was measured in the same run as the row; `measured` says when.",
        "",
        "| area | benchmark | value | unit | baseline (same run) | target | ok | measured |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        v = r["value"]
        vs = f"{v:,.4g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
        lines.append(
            f"| {r['area']} | {r['name']} | {vs} | {r.get('unit', '')} | {r.get('baseline', '')} | {r.get('target', '')} | {r.get('ok', '')} | {r.get('measured', '')} |"
        )
    notes = [r for r in rows if r.get("note")]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {r['area']} / {r['name']}: {r['note']}" for r in notes]
    (HERE / f"results{suffix}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / f'results{suffix}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
