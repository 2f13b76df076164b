"""The report's tables, figures and HTML page, built from hand-made results."""

import re

import pytest
from PIL import Image

from dcsft.report import figures, stats, tables
from dcsft.report.findings import findings
from dcsft.report.run import to_html


def _scores(photo, rendition, adversarial, n=1000):
    return {
        s: {"accuracy": a, "n": n}
        for s, a in (("photo", photo), ("rendition", rendition), ("adversarial", adversarial))
    }


def _entry(*runs):
    cols = ["photo", "rendition", "adversarial"]
    per_col = {c: [r[i] for r in runs] for i, c in enumerate(cols)}
    per_col["ood_mean"] = [(r[1] + r[2]) / 2 for r in runs]
    return {"n_a": False, "runs": len(runs), "accuracy": {c: tables.summary(v) for c, v in per_col.items()}}


def _vs_sft(delta, low, high, seeds=2):
    comparison = {
        "delta": delta,
        "low": low,
        "high": high,
        "verdict": stats.verdict(low, high),
        "seeds": seeds,
        "items": [1000, 1000],
        "discordance": 0.08,
        "mcnemar_p": [0.5] * seeds,
        "seed_sd": 0.4,
        "mde": 1.9,
    }
    return {c: dict(comparison) for c in ("photo", "rendition", "adversarial", "ood_mean")}


@pytest.fixture
def results():
    return {
        "task": "classification",
        "id_split": "photo",
        "ood_splits": ["rendition", "adversarial"],
        "seeds": [0, 1],
        "split_sizes": {"photo": 1000, "rendition": 1000, "adversarial": 1000},
        "models": {
            "base": _entry((80.0, 70.0, 30.0)),
            "sft": _entry((86.0, 80.0, 38.0), (88.0, 82.0, 40.0)),
            "sft-m": {**_entry((85.0, 80.0, 37.0), (85.0, 80.0, 37.0)), "vs_sft": _vs_sft(-1.5, -2.9, -0.2)},
            "sft-h": {"n_a": True, "samples": 0},
            "sft-m+h5": {
                **_entry((84.0, 79.0, 36.0), (86.0, 79.0, 36.0)),
                "hard_percent": 4.98,
                "vs_sft": _vs_sft(-2.0, -4.0, 0.5),
            },
        },
    }


def test_summary_is_mean_and_sample_std():
    assert tables.summary([1.0, 3.0]) == {"mean": 2.0, "std": 1.41, "runs": [1.0, 3.0]}
    assert tables.summary([5.0])["std"] is None


def test_accuracy_table_shows_std_and_paired_intervals(results):
    table = tables.accuracy_table(results)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "87.00 ± 1.41 |" in rows["SFT"]  # the baseline has no delta
    assert "85.00 ± 0.00 (-1.50 [-2.90, -0.20])" in rows["SFT-M"]
    assert "80.00 |" in rows["Base"] and "(" not in rows["Base"]  # reference models: no delta
    assert rows["SFT-H"].count("n/a (0 samples)") == 4
    assert "SFT-M + 5% hard" in rows
    assert "Accuracy % (greedy, exact match)" in table and "95% paired bootstrap interval" in table
    assert "Accuracy % (greedy, IoU >= 0.5)" in tables.accuracy_table({**results, "task": "grounding"})


def test_comparison_table_lists_every_comparison(results):
    table = tables.comparison_table(results)
    assert "| SFT-M | OOD mean | -1.50 [-2.90, -0.20] | worse | 0.5, 0.5 | 8.0% | 1.90 |" in table
    results["models"]["sft-m"]["vs_sft"]["rendition"] = stats.not_available(
        "no test items in common on rendition"
    )
    assert "| SFT-M | rendition | n/a: no test items in common on rendition |" in tables.comparison_table(
        results
    )


def test_findings_decide_from_the_interval_never_the_raw_difference(results):
    text = findings(results)
    assert (
        "SFT-M is behind SFT out of distribution on this run: OOD mean minus SFT's -1.50 [-2.90, -0.20]"
        in text
    )
    assert "MDE) is 1.90 points" in text and "Seed-to-seed sd of the difference: 0.40" in text
    results["models"]["sft-m"]["vs_sft"] = _vs_sft(0.8, 0.1, 1.6)
    assert "SFT-M beats SFT out of distribution" in findings(results)
    results["models"]["sft-m"]["vs_sft"] = _vs_sft(1.8, -0.1, 3.6)  # ahead, but the interval covers 0
    assert "SFT-M cannot be told apart from SFT out of distribution" in findings(results)
    results["models"]["sft-m"]["vs_sft"] = _vs_sft(1.8, -0.1, 3.6, seeds=1)
    assert "the seed-to-seed term is missing" in findings(results)
    results["models"]["sft-m"]["vs_sft"]["ood_mean"] = stats.not_available("fewer seeds (1) than SFT (2)")
    assert "SFT-M against SFT: n/a (fewer seeds (1) than SFT (2))." in findings(results)


def test_ablation_table_gives_the_reached_hard_share(results):
    table = tables.ablation_table(results, ["sft-m", "sft-m+h5", "sft-h"])
    assert (
        "| SFT-M | 0.0% |" in table and "| SFT-M + 5% hard | 5.0% |" in table and "n/a (0 samples)" in table
    )


def test_cost_table_and_ratio():
    compute = {
        "rows": {
            "coldstart": {
                "seconds": 2.0,
                "steps": 25,
                "samples_seen": 100,
                "tokens_forwarded": 4900,
                "tokens_generated": 0,
            },
            "profile": {
                "seconds": 13.0,
                "steps": 0,
                "samples_seen": 1600,
                "tokens_forwarded": None,
                "tokens_generated": None,
            },
            "sft-h": None,
        },
        "grpo_over_dcsft": {
            "seconds": 2.5,
            "tokens_forwarded": 3.1,
            "grpo_seconds": 100.0,
            "dcsft_seconds": 40.0,
        },
    }
    table = tables.cost_table(compute)
    assert "| Cold start | 2.0 | 25 | 100 | 4,900 | 0 |" in table
    assert (
        "| Profile (k draws per sample) | 13.0 | 0 | 1,600 | – | – |" in table
    )  # not recorded: a dash, not 0
    assert "n/a (0 samples)" in table
    assert "GRPO / DC-SFT = 2.50x wall time" in tables.cost_ratio_line(compute)
    assert "needs both" in tables.cost_ratio_line({"rows": {}, "grpo_over_dcsft": None})


def _png(path):
    with Image.open(path) as image:
        return image.format, image.size


def test_figures_are_drawn_even_with_an_empty_bucket(tmp_path, results):
    image = tmp_path / "x.png"
    Image.new("RGB", (84, 84), "red").save(image)
    sample = {
        "image": str(image),
        "solution": "circle",
        "responses": ["circle"] * 6 + ["square"] * 2,
        "noise": None,
    }
    figures.gallery({"easy": [sample] * 3, "medium": [sample], "hard": []}, tmp_path / "gallery.png")
    figures.accuracy_bars(results, tmp_path / "accuracy.png")
    figures.loss_per_bucket(
        {"easy": [[0.5, 0.4, 0.3]], "hard": [[2.0, 1.9, 1.5], [2.1, 1.8]]}, tmp_path / "loss.png"
    )
    figures.zero_advantage([[0.5, 0.75, 0.5]], 0.6, 0.7, tmp_path / "zero.png")
    results["models"]["sft-m+h5"]["vs_sft"]["rendition"] = stats.not_available("no items in common")
    figures.forest(results, tmp_path / "forest.png")
    for name in ("gallery", "accuracy", "loss", "zero", "forest"):
        fmt, (width, height) = _png(tmp_path / f"{name}.png")
        assert fmt == "PNG" and width > 300 and height > 200
    assert not list(tmp_path.glob(".*.tmp"))


def test_answer_line_counts_the_sampled_answers():
    assert figures.answer_line(["moon", "moon", " ", "star"]) == "moon x2, (empty) x1, star x1"


def test_html_is_self_contained(tmp_path):
    (tmp_path / "figures").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "figures" / "accuracy.png")
    page = to_html(
        "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![accuracy](figures/accuracy.png)\n", tmp_path, "t"
    )
    assert "<table>" in page and "<td>1</td>" in page
    assert re.findall(r'src="([^"]*)"', page)[0].startswith("data:image/png;base64,")
    assert "figures/" not in page


def test_kind_accuracy_tables_list_each_split_with_its_kinds(results):
    by_kind = {"photo": {"context": {"accuracy": 80.0, "n": 40}, "none": {"accuracy": 70.5, "n": 60}}}
    results["models"]["base"]["by_kind"] = by_kind
    results["models"]["sft"]["by_kind"] = {
        "photo": {"context": {"accuracy": 90.0, "n": 40}, "none": {"accuracy": 66.0, "n": 60}}
    }
    text = tables.kind_accuracy_tables(results)
    assert "| Model | habitat background (n=40) | none of these (n=60) |" in text
    assert "| Base | 80.0 | 70.5 |" in text and "| SFT | 90.0 | 66.0 |" in text
    assert "SFT-H" not in text  # a method with no samples has no row
    for entry in results["models"].values():
        entry.pop("by_kind", None)
    assert tables.kind_accuracy_tables(results) == ""  # real data: no kinds, no section
