"""The report's sentences: what a run shows about the paper's claims, each decided by its paired
interval alone, how the model was asked and how the profile was made."""

from __future__ import annotations

from dcsft.conventions import Wording
from dcsft.report import tables
from dcsft.tasks import grounding

VERDICTS = {"better": "beats SFT", "worse": "is behind SFT", "cannot tell": "cannot be told apart from SFT"}
MOVED = {
    "better": "SFT is above its starting point",
    "worse": "SFT is below its starting point",
    "cannot tell": "SFT cannot be told apart from its starting point",
}


def findings(results: dict) -> str:
    """What the run shows about the paper's claims, decided by each paired interval alone."""
    models = results["models"]
    sft = models.get(tables.BASELINE)
    if not sft or sft["n_a"]:
        return "No SFT baseline in this run, so no comparison against it."
    lines = []
    moved = sft.get("vs_coldstart", {}).get(results["id_split"], {})
    if "delta" in moved:
        lines.append(
            f"- What post-training moves: SFT minus the cold start on {results['id_split']} (ID) is "
            f"{tables.interval(moved)} points, so {MOVED[moved['verdict']]}."
        )
    for name in ("sft-m", "sft-em", "grpo", "curriculum"):
        entry = models.get(name)
        if not entry or entry["n_a"]:
            continue
        ood = entry["vs_sft"]["ood_mean"]
        if "n_a" in ood:
            lines.append(f"- {tables.label(name)} against SFT: n/a ({ood['n_a']}).")
            continue
        lines.append(
            f"- {tables.label(name)} {VERDICTS[ood['verdict']]} out of distribution on this run: OOD mean "
            f"minus SFT's {tables.interval(ood)} points (95% paired interval over {ood['seeds']} seed(s) "
            f"and {sum(ood['items'])} test items; the two disagree on {ood['discordance']:.1%} of them)."
        )
    reference = models.get("sft-m", {}).get("vs_sft", {}).get("ood_mean", {})
    if "mde" in reference:
        missing = (
            " With one training seed the seed-to-seed term is missing, so the true MDE is larger; "
            "`--seeds 3` measures it."
            if reference["seeds"] == 1
            else f" Seed-to-seed sd of the difference: {reference['seed_sd']:.2f} points."
        )
        lines.append(
            f"- Power: the smallest OOD-mean difference of SFT-M against SFT this design detects with 80% "
            f"power at alpha = 0.05 (MDE) is {reference['mde']:.2f} points, from the measured discordance "
            f"({reference['discordance']:.1%}) and {reference['seeds']} seed(s).{missing}"
        )
    lines.append(
        '- A difference whose interval covers 0 is "cannot tell", whatever its sign. Intervals come from a '
        'bootstrap over training seeds, then test items (see the README\'s "Reading the tables").'
    )
    return "\n".join(lines)


def how_asked(words: Wording, frame: str) -> str:
    """The prompt, box convention and answer format in force, and where boxes are scored: a
    baseline's accuracy turns on them (RefCOCO from 15% to 82% with the prompt, om-ai-lab/VLM-R1#6)."""
    line = (
        f"Asked with the prompt `{words.template}`"
        if words.template
        else "Asked with each record's own prompt"
    )
    if not words.box:
        return line + "."
    scored = "the original image's pixels" if frame == "original" else "the frame of the answers"
    example = grounding.format_box((10, 20, 30, 40), words.answer_format, "the red star")
    return (
        f"{line}; answers `{words.answer_format}` (e.g. `{example}`), boxes {words.box.describe()}; "
        f"scored at {grounding.METRIC} in {scored} (evaluate.frame {frame})."
    )


def how_profiled(stats: dict) -> str:
    """The profile as it was made (03_profile/stats.json), which an import or `adaptive` makes differ
    from the config's profile section."""
    if stats["method"] == "imported":
        files = len(stats["files"])
        return f"Imported from {files} rollout file(s): k = {stats['k']} draws per training example."
    draws = {"adaptive": "at most ", "exact": "expected outcomes of "}.get(stats["method"], "")
    at = f" at temperature {stats['temperature']}" if "temperature" in stats else ""
    return f"k = {draws}{stats['k']} samples per training example{at} (profile.method {stats['method']})."
