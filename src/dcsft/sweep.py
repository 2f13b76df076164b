"""sweep: one study per value of one or more config keys, and a report of how each method's
paired difference to SFT moves with them.

Reads: each point's <task>/07_report/results.json. Writes: SWEEP_DIR/<key>=<value>[,...]/ (one
study run directory per point of the grid), SWEEP_DIR/sweep.json, sweep.md, sweep.html and
figures/<task>.png. A point's stage whose fingerprint another point already finished (one that
does not depend on the swept keys) is linked from that point instead of being run again.

Example: dcsft sweep full --task classification --over data.label_noise=0,0.05,0.1,0.2
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import yaml

from dcsft import stage, study
from dcsft.config import StudyConfig, dump_config, load_config
from dcsft.console import console
from dcsft.errors import ConfigError
from dcsft.report import figures, overview
from dcsft.report.run import to_html
from dcsft.report.tables import interval, label
from dcsft.rundir import hold_lock, write_json, write_text

COLUMNS = ("id", "ood_mean")


def parse_over(over: str) -> tuple[str, list[Any]]:
    """`data.label_noise=0,0.05` -> ("data.label_noise", [0, 0.05]); each value read as YAML."""
    key, sep, raw = over.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--over {over!r} is not of the form section.key=value1,value2,...")
    try:
        values = yaml.safe_load(f"[{raw}]")
    except yaml.YAMLError:
        raise ConfigError(f"--over {over!r}: the values are not valid YAML") from None
    if not values or any(v is None for v in values):
        raise ConfigError(f"--over {over!r}: expected key=value1,value2,... with no empty value")
    if len(set(map(json.dumps, values))) != len(values):
        raise ConfigError(f"--over {over!r}: a value is listed twice")
    return key.strip(), values


def point_name(point: dict[str, Any]) -> str:
    """The folder of one grid point, e.g. `data.label_noise=0.1` (characters unsafe in a path dropped)."""
    return ",".join(
        re.sub(r"[^\w.+=-]", "_", f"{key}={json.dumps(value)}".replace('"', ""))
        for key, value in point.items()
    )


def grid(overs: list[str]) -> list[dict[str, Any]]:
    if not overs:
        raise ConfigError("a sweep needs at least one --over key=value1,value2,...")
    axes = [parse_over(over) for over in overs]
    keys = [key for key, _ in axes]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"--over names a key twice: {keys}")
    return [dict(zip(keys, values)) for values in itertools.product(*(values for _, values in axes))]


def point_configs(
    config: Path | None, overrides: list[str], root: Path, points: list[dict]
) -> list[StudyConfig]:
    """Every point's config, all checked before any work: an unknown key or a value the config
    refuses is one line naming the --over."""
    configs = []
    for point in points:
        sets = [f"{key}={json.dumps(value)}" for key, value in point.items()]
        try:
            configs.append(load_config(config, [*overrides, *sets, f"run_dir={root / point_name(point)}"]))
        except ConfigError as err:
            raise ConfigError(f"sweep point {point_name(point)}: {err}") from None
    return configs


def method_rows(results: dict) -> dict[str, dict]:
    """method -> {id, ood_mean}: each trained method's paired comparison with SFT (n/a kept)."""
    return {
        name: {"id": entry["vs_sft"][results["id_split"]], "ood_mean": entry["vs_sft"]["ood_mean"]}
        for name, entry in results["models"].items()
        if entry.get("vs_sft")
    }


def collect(points: list[dict], configs: list[StudyConfig], task_names: list[str]) -> dict:
    rows = []
    for point, cfg in zip(points, configs):
        tasks = {}
        for task in task_names:
            results, buckets = overview.task_results(cfg.for_task(task))
            sft = results["models"].get("sft", {})
            tasks[task] = {
                "methods": method_rows(results),
                "sft_vs_coldstart": sft.get("vs_coldstart"),
                "buckets": {b: buckets[b] for b in ("easy", "medium", "hard")},
                "kinds_by_bucket": buckets.get("kinds_by_bucket"),
            }
        rows.append({"values": point, "run_dir": cfg.run_dir, "tasks": tasks})
    return {"keys": list(points[0]), "points": rows}


def mislabeled(entry: dict) -> str:
    """`hard / all` mislabeled training samples (the embedded worlds know their injected noise)."""
    wrong = (entry["kinds_by_bucket"] or {}).get("mislabeled")
    if not wrong:
        return "–"
    return f"{wrong['hard']} / {sum(wrong.values())}"


def sweep_table(sweep: dict, task: str) -> str:
    keys = sweep["keys"]
    lines = [
        "| " + " | ".join(keys) + " | Method | ID minus SFT | OOD mean minus SFT | OOD verdict |",
        "|---" * (len(keys) + 4) + "|",
    ]
    for row in sweep["points"]:
        values = " | ".join(str(row["values"][k]) for k in keys)
        for method, comparison in row["tasks"][task]["methods"].items():
            ood = comparison["ood_mean"]
            lines.append(
                f"| {values} | {label(method)} | {interval(comparison['id'])} | {interval(ood)} | "
                f"{ood.get('verdict', ood.get('n_a'))} |"
            )
    return "\n".join(lines)


def points_table(sweep: dict, task: str) -> str:
    """Per point: the buckets, where the injected label noise went, and what SFT moves."""
    keys = sweep["keys"]
    lines = [
        "| " + " | ".join(keys) + " | Easy / medium / hard | Mislabeled in hard / all | "
        "SFT minus cold start, ID | SFT minus cold start, OOD mean |",
        "|---" * (len(keys) + 4) + "|",
    ]
    for row in sweep["points"]:
        entry = row["tasks"][task]
        shares = " / ".join(f"{entry['buckets'][b]['percent']:.1f}%" for b in ("easy", "medium", "hard"))
        moved = entry["sft_vs_coldstart"] or {}
        id_moved = next((c for name, c in moved.items() if name != "ood_mean"), {"n_a": "no SFT"})
        lines.append(
            f"| {' | '.join(str(row['values'][k]) for k in keys)} | {shares} | {mislabeled(entry)} | "
            f"{interval(id_moved)} | {interval(moved.get('ood_mean', {'n_a': ''}))} |"
        )
    return "\n".join(lines)


def render(sweep: dict, task_names: list[str], figure_names: list[str]) -> str:
    keys = ", ".join(f"`{k}`" for k in sweep["keys"])
    parts = [
        f"# DC-SFT sweep over {keys}",
        f"{len(sweep['points'])} studies, one per value; each method minus SFT on the same test items, "
        "with the "
        f'95% paired bootstrap interval over training seeds and items ("cannot tell" when it covers 0). '
        f"Each point's full report is in its run directory.",
    ]
    for task in task_names:
        parts += [f"## {task}", sweep_table(sweep, task), points_table(sweep, task)]
        if task in figure_names:
            parts.append(f"![{task}](figures/{task}.png)")
    return "\n\n".join(parts) + "\n"


def run(configs: list[StudyConfig], points: list[dict], root: Path, task: str | None) -> Path:
    """Run every point's study in turn (finished stages skip, shared ones are linked), then the
    sweep report; returns sweep.md's path."""
    task_names = [task] if task else configs[0].task_names
    for name in task_names:
        configs[0].for_task(name)  # an unknown --task is one line before any work
    hold_lock(root)
    finished: list[Path] = []
    for number, (point, cfg) in enumerate(zip(points, configs), start=1):
        console.print(
            f"[bold]sweep point {number}/{len(points)}[/]: {point_name(point)} "
            f"({len(points) - number} left after it)"
        )
        point_root = Path(cfg.run_dir)
        hold_lock(point_root)
        write_text(point_root / "config.yaml", dump_config(cfg))
        stage.REUSE[point_root] = finished[:]
        try:
            study.run_tasks(cfg, [cfg.for_task(name) for name in task_names])
        finally:
            stage.REUSE.pop(point_root, None)
        finished.append(point_root)
    sweep = collect(points, configs, task_names)
    drawn = []
    for name in task_names:
        if figures.sweep_lines(sweep, name, root / "figures" / f"{name}.png"):
            drawn.append(name)
    markdown = render(sweep, task_names, drawn)
    write_json(root / "sweep.json", sweep)
    write_text(root / "sweep.md", markdown)
    write_text(root / "sweep.html", to_html(markdown, root, f"DC-SFT sweep: {root}"))
    return root / "sweep.md"


def default_root(cfg: StudyConfig, overs: list[str]) -> Path:
    """runs/<config's run dir>-sweep-<first swept key's last part>, unless --run-dir says otherwise."""
    first = parse_over(overs[0])[0].split(".")[-1] if overs else "sweep"
    return Path(f"{cfg.run_dir}-sweep-{first.replace('_', '-')}")
