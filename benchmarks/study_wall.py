"""The default study's wall time at two versions of dcsft, one after the other on this machine,
and whether they produce the same results.

Each version runs `python -m dcsft study` on the packaged default config in a fresh run
directory, from its own source tree (a git worktree of `--base`, and this checkout or a worktree
of `--new`), with the same virtual environment. Then the two runs' results.json and buckets.json
are compared task by task with the wall-clock fields left out (`seconds`, and the GRPO / DC-SFT
wall-time ratio): any other difference is printed by its path.

    python benchmarks/study_wall.py --base ce58c25          # that commit against this checkout

Writes benchmarks/results/study_wall.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASKS = ("classification", "grounding")
WALL_CLOCK_FIELDS = {"seconds", "grpo_seconds", "dcsft_seconds", "peak_rss_mb"}


def worktree(ref: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(where), ref], check=True)
    return where


def run_study(source: Path, run_dir: Path, overrides: list[str]) -> float:
    """Seconds the study took, from `source`'s package (PYTHONPATH comes before the editable install)."""
    env = {**os.environ, "PYTHONPATH": str(source / "src"), "HF_HUB_OFFLINE": "1"}
    args = [arg for kv in overrides for arg in ("--set", kv)]
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "dcsft", "study", "--run-dir", str(run_dir), *args],
        env=env,
        cwd=run_dir.parent,
        capture_output=True,
        text=True,
    )
    seconds = time.time() - started
    if done.returncode != 0:
        sys.exit(f"{source}: the study failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return round(seconds, 1)


def without_wall_clock(value):
    """The value with every wall-clock field dropped (and the wall-time ratio, which is one)."""
    if isinstance(value, dict):
        return {
            k: without_wall_clock(v)
            for k, v in value.items()
            if k not in WALL_CLOCK_FIELDS and not (k == "grpo_over_dcsft" and isinstance(v, dict))
        }
    if isinstance(value, list):
        return [without_wall_clock(v) for v in value]
    return value


def differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {json.dumps(a)[:80]} != {json.dumps(b)[:80]}"]


def compare(base_run: Path, new_run: Path) -> dict[str, list[str]]:
    found = {}
    for task in TASKS:
        for name in ("results.json", "buckets.json"):
            a, b = (json.loads((run / task / "07_report" / name).read_text()) for run in (base_run, new_run))
            found[f"{task}/{name}"] = differences(without_wall_clock(a), without_wall_clock(b))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git ref of the version to compare against")
    parser.add_argument("--new", help="git ref of the new version (default: this checkout as it is)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="a config override for both versions"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = worktree(args.base, tmp / "base")
        new = worktree(args.new, tmp / "new") if args.new else REPO
        (tmp / "runs").mkdir()
        try:
            seconds = {
                name: run_study(source, tmp / "runs" / name, args.overrides)
                for name, source in (("base", base), ("new", new))
            }
            found = compare(tmp / "runs" / "base", tmp / "runs" / "new")
        finally:
            for folder in {base, new} - {REPO}:
                subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder)], check=False
                )
    speedup = round(seconds["base"] / seconds["new"], 2)
    new_name = args.new or "this checkout"
    print(f"default study: {args.base} {seconds['base']} s, {new_name} {seconds['new']} s: {speedup}x")
    for name, diffs in found.items():
        print(f"  {name}: {'identical' if not diffs else f'{len(diffs)} differences'}")
        for line in diffs[:20]:
            print(f"    {line}")
    from dcsft.rundir import write_json

    write_json(
        REPO / "benchmarks" / "results" / "study_wall.json",
        {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "base": args.base,
            "new": args.new or "working tree",
            "seconds": seconds,
            "speedup": speedup,
            "identical_without_wall_clock": {name: not diffs for name, diffs in found.items()},
            "differences": found,
        },
    )


if __name__ == "__main__":
    main()
