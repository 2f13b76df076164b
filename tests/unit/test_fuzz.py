"""Property tests: loaders and verifiers never raise on arbitrary input, and say what they did."""

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcsft.config import parse_override
from dcsft.data.records import load_records
from dcsft.errors import ConfigError, DataError
from dcsft.tasks import classification
from dcsft.tasks.classification import Classification
from dcsft.train.grpo import CountedReward

JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
TEXT = st.text() | st.binary().map(lambda b: b.decode("latin-1"))


@given(TEXT, st.sampled_from(["circle", "Star", " moon. "]))
def test_verifier_never_raises_and_is_zero_or_one(response, solution):
    assert classification.score(response, solution) in (0.0, 1.0)
    assert classification.score(response, solution) == classification.score(response.upper(), solution)


@given(
    st.lists(
        JSON | st.lists(st.dictionaries(st.sampled_from(["role", "content"]), JSON), max_size=2), max_size=5
    )
)
def test_grpo_reward_is_always_one_finite_number_per_completion(completions):
    reward = CountedReward(Classification().reward)
    values = reward(completions, solution=["circle"] * len(completions))
    assert len(values) == len(completions)
    assert all(isinstance(v, float) and math.isfinite(v) and v in (0.0, 1.0) for v in values)


@given(st.lists(st.one_of(st.none(), st.floats(), st.text(), st.integers(), JSON), min_size=1, max_size=6))
def test_counted_reward_turns_any_output_into_numbers(outputs):
    reward = CountedReward(lambda completions, **_: outputs)
    values = reward(["x"] * len(outputs))
    assert all(math.isfinite(v) for v in values)
    bad = sum(not (isinstance(o, (int, float)) and math.isfinite(o) and 0 <= o <= 1) for o in outputs)
    assert reward.failures == bad


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
def test_record_loader_errors_are_one_line_or_counted_skips(tmp_path, content):
    path = tmp_path / "records.json"
    path.write_bytes(content)
    try:
        loaded = load_records(path, ["circle", "star"])
    except DataError as err:
        assert str(path) in str(err) and "\n" not in str(err)
        return
    for skip in loaded.skipped:
        assert "\n" not in skip.line() and str(path) in skip.line()
    assert all(set(r) >= {"problem", "solution", "image", "id"} for r in loaded.records)


@given(st.text(max_size=40))
def test_overrides_parse_or_fail_with_a_config_error(text):
    try:
        path, _ = parse_override(text)
    except ConfigError as err:
        assert "\n" not in str(err)
        return
    assert path and all(isinstance(part, str) for part in path)


NUMBER = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", "-", ".", "1e5", "nan", "inf", "0x10", "١٢"]),
)
BOXLIKE = st.lists(NUMBER, min_size=0, max_size=6).map(lambda parts: "[" + ",".join(parts) + "]")


@given(
    st.lists(st.one_of(TEXT, BOXLIKE), max_size=4).map(" ".join),
    st.one_of(st.none(), st.tuples(st.integers(1, 2000), st.integers(1, 2000))),
)
def test_box_parser_and_grounding_verifier_never_raise(response, image_size):
    from dcsft.tasks import grounding

    box = grounding.parse_box(response)
    assert box is None or (all(map(math.isfinite, box)) and box[0] < box[2] and box[1] < box[3])
    assert grounding.score(response, "[10, 10, 50, 50]", image_size) in (0.0, 1.0)
    assert (grounding.Grounding().parse(response) is None) == (box is None)
    assert grounding.Grounding().reward(
        [response, [{"role": "assistant", "content": response}]], solution=["[1, 2, 3, 4]"] * 2
    ) in ([0.0, 0.0], [1.0, 1.0])
