"""curate.rule: the paper's all-or-none, a pass-rate window, graded scores; a profile's own
bucket kept; the sft-window method; and the default's fingerprint left as it was."""

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from dcsft import curate
from dcsft.compare import load_buckets, run_rule
from dcsft.config import CurateConfig, StudyConfig, is_method, load_config
from dcsft.curate import BUCKETS, bucket_of, bucket_of_row, describe_rule
from dcsft.errors import ConfigError, DataError, StageError
from dcsft.report.tables import label, proportions_table
from dcsft.rundir import RunDir, read_json, read_jsonl, write_json, write_jsonl
from dcsft.tasks.classification import PROMPT
from dcsft.train import run as train_run

WINDOW = CurateConfig(rule="window", window=[0.1, 0.9])
GRADED = CurateConfig(rule="graded")


def row(correct: list[int], **more) -> dict:
    return {"id": "x", "correct": correct, "pass_count": sum(correct), "k": len(correct), **more}


def counts(pass_count: int, k: int) -> dict:
    return row([1] * pass_count + [0] * (k - pass_count))


# --- window ---------------------------------------------------------------------------------


def test_window_edges_k10():
    """0.1 < p < 0.9 is medium; p = 0.1 exactly is hard and p = 0.9 exactly easy."""
    buckets = [bucket_of_row(counts(n, 10), WINDOW) for n in range(11)]
    assert buckets == ["hard", "hard"] + ["medium"] * 7 + ["easy", "easy"]


@pytest.mark.parametrize(
    "pass_count, bucket", [(1, "hard"), (2, "hard"), (3, "medium"), (5, "medium"), (6, "easy"), (8, "easy")]
)
def test_window_edges_k8(pass_count, bucket):
    rule = CurateConfig(rule="window", window=[0.25, 0.75])  # 2/8 and 6/8 sit on the edges
    assert bucket_of_row(counts(pass_count, 8), rule) == bucket


def test_window_of_k8_at_open_r1s_bounds_is_all_or_none():
    """With k = 8 no pass rate falls in (0, 0.1] or [0.9, 1): the window agrees with the paper."""
    assert [bucket_of_row(counts(n, 8), WINDOW) for n in range(9)] == [bucket_of(n, 8) for n in range(9)]


@given(st.integers(1, 64).flatmap(lambda k: st.tuples(st.integers(0, k), st.just(k))))
def test_the_whole_unit_window_is_all_or_none(case):
    pass_count, k = case
    rule = CurateConfig(rule="window", window=[0, 1])
    assert bucket_of_row(counts(pass_count, k), rule) == bucket_of(pass_count, k)


@given(
    st.integers(1, 32).flatmap(lambda k: st.tuples(st.integers(0, k), st.just(k))),
    st.floats(0, 1).flatmap(lambda low: st.tuples(st.just(low), st.floats(low, 1).filter(lambda h: h > low))),
)
def test_window_bucket_follows_the_pass_rate(case, window):
    pass_count, k = case
    low, high = window
    bucket = bucket_of_row(counts(pass_count, k), CurateConfig(rule="window", window=[low, high]))
    p = pass_count / k
    assert bucket == ("medium" if low < p < high else "hard" if p <= low else "easy")


@pytest.mark.parametrize(
    "window", ["[0.9,0.1]", "[0.5,0.5]", "[-0.1,0.5]", "[0.2,1.5]", "[0.1]", "[0.1,0.5,0.9]"]
)
def test_a_bad_window_is_one_config_line(window):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[f"curate.window={window}"])
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"--set curate.window={window}: curate.window: expected [low, high]")
    assert "0 <= low < high <= 1" in message


def test_the_yaml_shape(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("curate: {rule: window, window: [0.2, 0.8]}\n")
    cfg = load_config(path)
    assert (cfg.curate.rule, cfg.curate.window) == ("window", [0.2, 0.8])
    assert StudyConfig().curate == CurateConfig(rule="all-or-none", window=[0.1, 0.9], min_spread=0.0)
    with pytest.raises(
        ConfigError, match=r"curate\.rule: Input should be 'all-or-none', 'window' or 'graded'"
    ):
        load_config(path, ["curate.rule=top-k"])


# --- graded ---------------------------------------------------------------------------------


binary = st.lists(st.integers(0, 1), min_size=1, max_size=32)


@given(binary)
def test_graded_on_binary_scores_is_all_or_none(correct):
    expected = bucket_of(sum(correct), len(correct))
    assert bucket_of_row(row(correct), GRADED) == expected  # no scores: the 0/1 correct
    assert bucket_of_row(row(correct, scores=[float(c) for c in correct]), GRADED) == expected


@pytest.mark.parametrize("value, bucket", [(0.3, "hard"), (0.1, "hard"), (0.5, "easy"), (0.7, "easy")])
def test_graded_equal_scores_are_settled_exactly(value, bucket):
    """k equal scores spread 0 (not a rounding error above it), so min_spread 0 settles them."""
    for k in (1, 3, 7, 10):
        assert bucket_of_row(row([0] * k, scores=[value] * k), GRADED) == bucket


def test_graded_spread_against_min_spread():
    close = row([0, 1], scores=[0.4, 0.6])  # mean 0.5, population std 0.1
    low = row([0, 0], scores=[0.2, 0.4])  # mean 0.3, std 0.1
    wide = row([0, 1], scores=[0.0, 0.9])  # mean 0.45, std 0.45
    assert [bucket_of_row(r, GRADED) for r in (close, low, wide)] == ["medium"] * 3
    settle = CurateConfig(rule="graded", min_spread=0.1)
    assert [bucket_of_row(r, settle) for r in (close, low, wide)] == ["easy", "hard", "medium"]
    assert bucket_of_row(wide, CurateConfig(rule="graded", min_spread=0.45)) == "hard"
    assert bucket_of_row(wide, CurateConfig(rule="graded", min_spread=0.449)) == "medium"


@pytest.mark.parametrize("scores", [[], [0.5, 1.2], [-0.1], [float("nan")], "0.5", [None]])
def test_graded_refuses_scores_outside_the_unit_interval(scores):
    with pytest.raises(ValueError, match="scores"):
        bucket_of_row(row([0], scores=scores), GRADED)


# --- a profile's own bucket -------------------------------------------------------------------


@pytest.mark.parametrize("rule", [None, CurateConfig(), WINDOW, GRADED])
@pytest.mark.parametrize("bucket", BUCKETS)
def test_a_rows_own_bucket_is_kept_under_every_rule(rule, bucket):
    for correct in ([1] * 8, [0] * 8, [1, 0] * 4):
        assert bucket_of_row(row(correct, bucket=bucket), rule) == bucket


def test_a_rows_own_bucket_must_be_a_bucket():
    with pytest.raises(ValueError, match="'middle' is not one of easy, medium, hard"):
        bucket_of_row(row([1], bucket="middle"))


# --- the curate stage -------------------------------------------------------------------------

K = 10
PASS_COUNTS = [10, 9, 8, 5, 2, 1, 0, 3]
SCORES = [
    [0.8] * K,
    [0.6] * K,
    [0.5] * K,
    [0.4, 0.6] * 5,
    [0.2] * K,
    [0.0, 0.2] * 5,
    [0.0] * K,
    [1.0, 0.0] * 5,
]


def mark_done(stage, current: str, stats: dict | None = None) -> None:
    stage.root.mkdir(parents=True, exist_ok=True)
    write_json(stage.root / "stats.json", {"seconds": 0.0, **(stats or {})})
    write_json(stage.marker, {"fingerprint": current})


@pytest.fixture
def profiled(tmp_path) -> Path:
    """A run directory through profile (k = 10, graded scores beside the 0/1 correct), written by hand."""
    root = tmp_path / "run"
    rundir = RunDir(root)
    images = rundir.prepare.root / "images" / "train"
    images.mkdir(parents=True)
    records = []
    for index in range(len(PASS_COUNTS)):
        path = images / f"{index:05d}.png"
        Image.new("RGB", (8, 8), (30 * index, 90, 90)).save(path)
        records.append(
            {"id": f"t{index}", "problem": PROMPT, "solution": "circle", "image": str(path), "meta": {}}
        )
    write_json(rundir.records("train"), records)
    mark_done(rundir.prepare, "prepare-fp", {"task": "classification", "classes": ["circle", "square"]})
    rows = [
        {"id": r["id"], "correct": [1] * p + [0] * (K - p), "pass_count": p, "k": K, "pass_rate": p / K}
        for r, p in zip(records, PASS_COUNTS)
    ]
    write_jsonl(rundir.profile_file, [{**r, "scores": s} for r, s in zip(rows, SCORES)])
    mark_done(rundir.profile, "profile-fp", {"method": "sample"})
    mark_done(rundir.coldstart, "coldstart-fp")
    return root


def curated(root: Path, *overrides: str) -> tuple[StudyConfig, dict[str, str], list[dict]]:
    cfg = load_config(overrides=[f"run_dir={root}", "task=classification", "tasks={}", *overrides])
    curate.run(cfg)
    assignments = read_jsonl(RunDir(root).assignments_file)
    return cfg, {a["id"]: a["bucket"] for a in assignments}, assignments


def test_default_fingerprint_is_todays(profiled):
    """The default rule adds nothing to curate's fingerprint: studies curated before the rule was a
    setting stay done. Other rules (and their settings) each give their own."""
    cfg = StudyConfig(run_dir=str(profiled))
    before = hashlib.sha256(json.dumps(("curate", "profile-fp"), sort_keys=True).encode()).hexdigest()[:16]
    assert curate.stage_fingerprint(cfg) == before
    moved = cfg.model_copy(update={"curate": CurateConfig(window=[0.2, 0.8], min_spread=0.3)})
    assert curate.stage_fingerprint(moved) == before  # settings the default rule does not read
    others = [
        CurateConfig(rule="window"),
        CurateConfig(rule="window", window=[0.2, 0.8]),
        CurateConfig(rule="graded"),
        CurateConfig(rule="graded", min_spread=0.1),
    ]
    prints = {curate.stage_fingerprint(cfg.model_copy(update={"curate": c})) for c in others}
    assert len(prints) == len(others) and before not in prints


def test_curate_default_rule(profiled):
    _, buckets, assignments = curated(profiled)
    assert list(buckets.values()) == [bucket_of(p, K) for p in PASS_COUNTS]
    assert [a["pass_rate"] for a in assignments] == [p / K for p in PASS_COUNTS]
    assert all(
        set(a) == {"id", "bucket", "pass_count", "k", "pass_rate", "noise", "kinds"} for a in assignments
    )
    folder = RunDir(profiled).curate.root
    assert read_json(folder / "buckets.json")["rule"] == "all-or-none"
    assert read_json(folder / "stats.json")["rule"] == "all-or-none"
    before = {b: v for b, v in read_json(folder / "buckets.json").items() if b != "rule"}  # an older run
    assert proportions_table("cold start", "shapes", before).endswith(
        "\n\nBucketing rule `all-or-none`: easy: all k draws correct, hard: none, medium: the rest "
        "(the paper's rule)."
    )


def test_curate_window_rule(profiled):
    _, buckets, _ = curated(profiled, "curate.rule=window", "curate.window=[0.1,0.9]")
    assert list(buckets.values()) == ["easy", "easy", "medium", "medium", "medium", "hard", "hard", "medium"]
    table = read_json(RunDir(profiled).curate.root / "buckets.json")
    assert table["rule"] == "window (0.1, 0.9)"
    assert (table["easy"]["count"], table["medium"]["count"], table["hard"]["count"]) == (2, 4, 2)
    text = proportions_table("cold start", "shapes", table)
    assert "| 25.0% (2) | 50.0% (4) | 25.0% (2) | 8 |" in text
    assert "Bucketing rule `window (0.1, 0.9)`: medium: pass rate strictly inside the window" in text


def test_curate_graded_rule_records_mean_and_spread(profiled):
    _, buckets, assignments = curated(profiled, "curate.rule=graded")
    assert list(buckets.values()) == ["easy", "easy", "easy", "medium", "hard", "medium", "hard", "medium"]
    assert [a["score_mean"] for a in assignments] == [0.8, 0.6, 0.5, 0.5, 0.2, 0.1, 0.0, 0.5]
    assert [a["score_spread"] for a in assignments] == [0.0, 0.0, 0.0, 0.1, 0.0, 0.1, 0.0, 0.5]
    assert read_json(RunDir(profiled).curate.root / "stats.json")["rule"] == "graded (min spread 0)"
    _, buckets, _ = curated(profiled, "curate.rule=graded", "curate.min_spread=0.1")
    assert list(buckets.values())[3:6] == ["easy", "hard", "hard"]


def test_curate_keeps_a_profiles_own_buckets(profiled):
    rundir = RunDir(profiled)
    rows = read_jsonl(rundir.profile_file)
    rows[0]["bucket"] = "hard"  # all 10 correct, but the profile method says hard
    write_jsonl(rundir.profile_file, rows)
    for rule in ("all-or-none", "window", "graded"):
        _, buckets, _ = curated(profiled, f"curate.rule={rule}")
        assert buckets["t0"] == "hard"
    assert read_json(rundir.curate.root / "buckets.json")["rule"] == (
        "graded (min spread 0); 1 bucketed by the profile"
    )
    text = proportions_table("cold start", "shapes", read_json(rundir.curate.root / "buckets.json"))
    assert "Bucketing rule `graded (min spread 0); 1 bucketed by the profile`: settled (easy if" in text
    write_jsonl(rundir.profile_file, [{**r, "bucket": "medium"} for r in rows])
    _, buckets, _ = curated(profiled)
    assert set(buckets.values()) == {"medium"}
    assert read_json(rundir.curate.root / "buckets.json")["rule"] == "profile"


def test_curate_takes_loss_rows_as_they_are(profiled):
    """Rows of profile method `loss` draw nothing (correct = []) and estimate their pass rate: curate
    keeps their bucket and pass rate under every rule, and graded leaves their scores unstated."""
    rundir = RunDir(profiled)
    rows = read_jsonl(rundir.profile_file)
    loss = {"correct": [], "responses": [], "pass_count": 6, "k": K, "pass_rate": 0.63, "bucket": "medium"}
    rows[0] = {"id": "t0", "solution": "circle", **loss}
    write_jsonl(rundir.profile_file, rows)
    for rule in ("all-or-none", "window", "graded"):
        _, buckets, assignments = curated(profiled, f"curate.rule={rule}")
        assert buckets["t0"] == "medium" and assignments[0]["pass_rate"] == 0.63
    assert (assignments[0]["score_mean"], assignments[0]["score_spread"]) == (None, None)


def test_curate_names_the_line_of_a_row_it_cannot_bucket(profiled):
    rundir = RunDir(profiled)
    rows = read_jsonl(rundir.profile_file)
    rows[2]["scores"] = [0.5, 2.0]
    write_jsonl(rundir.profile_file, rows)
    with pytest.raises(StageError) as err:
        curated(profiled, "curate.rule=graded")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{rundir.profile_file}: line 3 (id t2): no bucket under rule graded")


def test_compare_buckets_a_profile_by_the_runs_rule(profiled):
    """Before curate has run, compare buckets a run's profile by the curate settings in its
    config.yaml, with the one bucketing curate uses."""
    rundir = RunDir(profiled)
    assert list(load_buckets(profiled).values()) == [bucket_of(p, K) for p in PASS_COUNTS]
    window = load_config(overrides=[f"run_dir={profiled}", "curate.rule=window"])
    (profiled / "config.yaml").write_text(yaml.safe_dump(window.model_dump()))
    by_window = {r["id"]: bucket_of_row(r, window.curate) for r in read_jsonl(rundir.profile_file)}
    assert load_buckets(profiled) == load_buckets(rundir.profile_file) == by_window
    assert load_buckets(profiled, rule=GRADED)["t3"] == "medium"
    _, buckets, _ = curated(profiled, "curate.rule=window")
    assert load_buckets(profiled) == buckets == by_window


def test_the_rule_of_a_task_in_a_study_of_several(tmp_path):
    study = {"curate": {"rule": "window"}, "tasks": {"grounding": {"curate": {"window": [0.2, 0.8]}}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(study))
    assert run_rule(tmp_path / "grounding") == CurateConfig(rule="window", window=[0.2, 0.8])
    assert run_rule(tmp_path) == CurateConfig(rule="window")
    assert run_rule(tmp_path / "elsewhere" / "run") == CurateConfig()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"curate": {"window": [0.8, 0.2]}}))
    with pytest.raises(DataError, match=r"config.yaml: curate.window: expected \[low, high\]"):
        run_rule(tmp_path)


# --- sft-window -------------------------------------------------------------------------------


def test_sft_window_is_a_method_but_not_a_default_one():
    assert is_method("sft-window") and "sft-window" not in StudyConfig().train.methods
    assert label("sft-window") == "SFT-window"
    assert load_config(overrides=["train.methods=[sft-m,sft-window]"]).train.methods == [
        "sft-m",
        "sft-window",
    ]


def test_in_window_edges_and_older_assignments():
    assignments = [
        {"id": "a", "pass_rate": 0.1, "pass_count": 1, "k": 10},
        {"id": "b", "pass_rate": 0.2, "pass_count": 2, "k": 10},
        {"id": "c", "pass_rate": 0.9, "pass_count": 9, "k": 10},
        {"id": "d", "pass_count": 7, "k": 8},  # written before curate recorded pass_rate
        {"id": "e", "pass_count": 8, "k": 8},
    ]
    assert train_run.in_window(assignments, [0.1, 0.9]) == ["b", "d"]
    assert train_run.in_window(assignments, [0.0, 1.0]) == ["a", "b", "c", "d"]


@pytest.mark.parametrize("rule", ["all-or-none", "window", "graded"])
def test_sft_window_trains_on_the_window_whatever_the_rule(profiled, rule):
    cfg, buckets, _ = curated(profiled, f"curate.rule={rule}", "curate.window=[0.1,0.9]")
    empty = {b: [] for b in BUCKETS}
    records, about = train_run.records_for(cfg, "sft-window", empty, seed=0)
    in_window = [f"t{i}" for i, p in enumerate(PASS_COUNTS) if 0.1 < p / K < 0.9]
    assert [r["id"] for r in records] == in_window and about == {"window": [0.1, 0.9]}
    assert {"problem", "solution", "image"} <= set(records[0])
    if rule == "window":  # there, sft-window is sft-m
        assert in_window == [i for i, b in buckets.items() if b == "medium"]
    medium = [i for i, b in buckets.items() if b == "medium"]
    assert (in_window == medium) == (rule == "window")  # k = 10: the rules differ on this profile


def test_sft_window_balanced_is_capped_at_the_smallest_bucket(profiled):
    cfg, _, _ = curated(profiled, "train.balance=true")
    buckets = {"easy": [{}] * 3, "medium": [{}] * 2, "hard": []}
    records, _ = train_run.records_for(cfg, "sft-window", buckets, seed=0)
    again, _ = train_run.records_for(cfg, "sft-window", buckets, seed=0)
    assert len(records) == 2 and records == again
    assert {r["id"] for r in records} <= {"t2", "t3", "t4", "t7"}


def test_sft_windows_training_fingerprint_follows_the_window(profiled):
    cfg, _, _ = curated(profiled)
    moved = cfg.model_copy(update={"curate": CurateConfig(window=[0.2, 0.8])})
    fp = train_run.stage_fingerprint
    assert fp(cfg, "sft-window", 0) != fp(moved, "sft-window", 0)
    assert fp(cfg, "sft-m", 0) == fp(moved, "sft-m", 0)  # other methods do not read the window
    assert describe_rule(moved.curate) == "all-or-none"
