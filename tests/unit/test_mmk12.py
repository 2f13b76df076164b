"""The mmk12 source and the benchmark layouts (dcsft.data.math_benchmarks): small parquet files in
each published layout (MMK12, MathVista, MathVerse, MathVision, WeMath, MMMU) written under
tmp_path; options parsed, answer types, unsupported items counted with their reasons (and the
several-images rule), every bad input one line naming the file and the row; `dcsft plan` and
`dcsft prepare` of the paper config on the fixture root through the CLI, the records in the
reasoning task's contract."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from test_cli_data import invoke, one_error_line

from dcsft.config import load_config
from dcsft.data import math_benchmarks as mb
from dcsft.data import math_items as items
from dcsft.data.sources import mmk12
from dcsft.data.splits import id_split
from dcsft.errors import DataError
from dcsft.rundir import RunDir, read_json, read_jsonl

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "paper" / "mmk12_7b.yaml"
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
CORRUPT = b"not an image at all"
N_GOOD = 12  # usable MMK12 rows
SCALED = ["data.n_coldstart=2", "data.n_train=5", "data.n_test=3"]


def png(seed: int) -> bytes:
    """A tiny PNG, its colour (and so its bytes) told by `seed`."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (seed * 37 % 256, seed * 91 % 256, 60 + seed % 100)).save(buffer, format="PNG")
    return buffer.getvalue()


def cell(seed: int, data: bytes | None = None) -> dict:
    return {"bytes": data if data is not None else png(seed), "path": f"{seed}.png"}


def write(path: Path, rows: list[dict], schema: pa.Schema) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


# ---------------------------------------------------------------- one fixture file per layout


def mmk12_rows() -> list[dict]:
    good = []
    for i in range(N_GOOD):
        if i % 3 == 2:  # a fill-in item: a number, in LaTeX every other time
            question, answer = f"Find x in figure {i}.", "\\frac{1}{2}" if i % 2 else str(i)
        else:
            question = f"Which is angle {i}?\nA. {i} degrees\nB. {i + 1} degrees\nC. {i + 2} degrees"
            answer = "ABC"[i % 3]
        good.append(
            {"id": f"k{i}", "subject": "math", "question": question, "answer": answer, "image": cell(i)}
        )
    bad = [
        {"id": "nooptions", "question": "Which point is the centre?", "answer": "B"},
        {"id": "outside", "question": "Pick one.\nA. 1\nB. 2", "answer": "D"},
        {"id": "several", "question": "Pick two.\nA. 1\nB. 2\nC. 3", "answer": "AC"},
        {"id": "expression", "question": "Simplify the expression.", "answer": "x^2+1"},
    ]
    return good + [{**row, "subject": "math", "image": cell(100 + k)} for k, row in enumerate(bad)]


MMK12_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("subject", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("image", IMAGE),
    ]
)

MATHVISTA_SCHEMA = pa.schema(
    [
        ("pid", pa.string()),
        ("question", pa.string()),
        ("image", pa.string()),
        ("decoded_image", IMAGE),
        ("choices", pa.list_(pa.string())),
        ("unit", pa.string()),
        ("precision", pa.float64()),
        ("answer", pa.string()),
        ("question_type", pa.string()),
        ("answer_type", pa.string()),
        ("metadata", pa.struct([("category", pa.string()), ("task", pa.string())])),
        ("query", pa.string()),
    ]
)


def mathvista_rows() -> list[dict]:
    meta = {"category": "math-targeted-vqa", "task": "geometry problem solving"}
    common = {"unit": None, "precision": None, "metadata": meta, "query": "..."}
    return [
        {
            "pid": "1",
            "question": "Which is longest?",
            "image": "images/1.jpg",
            "decoded_image": cell(201),
            "choices": ["AB", "BC", "CA"],
            "answer": "BC",
            "question_type": "multi_choice",
            "answer_type": "text",
            **common,
        },
        {
            "pid": "2",
            "question": "How many cubes?",
            "image": "images/2.jpg",
            "decoded_image": cell(202),
            "choices": None,
            "answer": "7",
            "question_type": "free_form",
            "answer_type": "integer",
            **common,
        },
        {
            "pid": "3",
            "question": "What is the slope?",
            "image": "images/3.jpg",
            "decoded_image": cell(203),
            "choices": None,
            "answer": "0.25",
            "question_type": "free_form",
            "answer_type": "float",
            **{**common, "precision": 2.0},
        },
        {
            "pid": "4",
            "question": "Name the largest city.",
            "image": "images/4.jpg",
            "decoded_image": cell(204),
            "choices": None,
            "answer": "Paris",
            "question_type": "free_form",
            "answer_type": "text",
            **common,
        },
        {
            "pid": "5",
            "question": "Which one?",
            "image": "images/5.jpg",
            "decoded_image": cell(205),
            "choices": ["1", "2"],
            "answer": "3",
            "question_type": "multi_choice",
            "answer_type": "text",
            **common,
        },
        # no bytes: the image is a file beside the parquet file (images.zip unzipped there)
        {
            "pid": "6",
            "question": "How many dots?",
            "image": "images/6.png",
            "decoded_image": None,
            "choices": None,
            "answer": "3",
            "question_type": "free_form",
            "answer_type": "integer",
            **common,
        },
    ]


MATHVERSE_SCHEMA = pa.schema(
    [
        ("sample_index", pa.string()),
        ("problem_index", pa.string()),
        ("problem_version", pa.string()),
        ("question", pa.string()),
        ("image", IMAGE),
        ("answer", pa.string()),
        ("question_type", pa.string()),
        ("metadata", pa.struct([("subject", pa.string()), ("subfield", pa.string())])),
        ("query_wo", pa.string()),
        ("query_cot", pa.string()),
        ("question_for_eval", pa.string()),
    ]
)


def mathverse_rows() -> list[dict]:
    rows = [
        (
            "1",
            "Text Dominant",
            "As shown, BC is ()\nChoices:\nA:2\nB:2√{3}\nC:√{3}\nD:2√{2}",
            "C",
            "multi-choice",
        ),
        ("2", "Text Lite", "Find the area of the triangle.", "12", "free-form"),
        ("3", "Text Lite", "Write f as an expression.", "f(x)=x^2-1", "free-form"),
        ("4", "Vision Only", "", "B", "multi-choice"),
        ("5", "Vision Dominant", "Which is BC? A. 3 B. 4", "B", "multi-choice"),
    ]
    return [
        {
            "sample_index": i,
            "problem_index": i,
            "problem_version": v,
            "question": q,
            "image": cell(300 + int(i)),
            "answer": a,
            "question_type": t,
            "metadata": {"subject": "plane geometry", "subfield": "length"},
            "query_wo": q,
            "query_cot": q,
            "question_for_eval": q,
        }
        for i, v, q, a, t in rows
    ]


MATHVISION_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("question", pa.string()),
        ("options", pa.list_(pa.string())),
        ("image", pa.string()),
        ("decoded_image", IMAGE),
        ("answer", pa.string()),
        ("solution", pa.string()),
        ("level", pa.int64()),
        ("subject", pa.string()),
    ]
)


def mathvision_rows() -> list[dict]:
    rows = [
        ("1", "Which shape comes next?", ["A", "B", "C", "D", "E"], "D", cell(401)),
        ("2", "How many squares?", [], "14", cell(402)),
        ("3", "Which word is written?", [], "kangaroo", cell(403)),
        ("4", "Which one?", [], "C", cell(404)),
        ("5", "How many triangles?", [], "9", cell(405, CORRUPT)),  # bytes that do not decode
    ]
    return [
        {
            "id": i,
            "question": q,
            "options": o,
            "image": f"images/{i}.jpg",
            "decoded_image": c,
            "answer": a,
            "solution": None,
            "level": 2,
            "subject": "counting",
        }
        for i, q, o, a, c in rows
    ]


WEMATH_SCHEMA = pa.schema(
    [
        ("ID", pa.string()),
        ("split", pa.string()),
        ("knowledge concept", pa.string()),
        ("question", pa.string()),
        ("option", pa.string()),
        ("answer", pa.string()),
        ("image_path", IMAGE),
        ("key", pa.string()),
        ("question number", pa.int64()),
    ]
)


def wemath_rows() -> list[dict]:
    options = [
        "A. 300, 400;B. 400, 300;C. 3000, 4000;D. 4000, 3000; E. No correct answer",
        "A. Yes, A needs to be translated 5dm to the right;  ; B. Yes, to the left;  ; C. No.  ; "
        "D. No correct answer",
    ]
    return [
        {
            "ID": f"2steps_{i}",
            "split": "testmini",
            "knowledge concept": "Units",
            "question": f"Question {i}?",
            "option": o,
            "answer": "CB"[i - 1],
            "image_path": cell(500 + i),
            "key": f"2steps_{i}",
            "question number": i,
        }
        for i, o in enumerate(options, start=1)
    ]


MMMU_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("question", pa.string()),
        ("options", pa.string()),
        ("explanation", pa.string()),
        *[(f"image_{i}", IMAGE) for i in range(1, 8)],
        ("img_type", pa.string()),
        ("answer", pa.string()),
        ("topic_difficulty", pa.string()),
        ("question_type", pa.string()),
        ("subfield", pa.string()),
    ]
)


def mmmu_rows() -> list[dict]:
    rows = [
        ("validation_Math_1", "<image 1> What is the area?", "['12', '16', '20']", "B", "multiple-choice", 1),
        (
            "validation_Math_2",
            "Which graph? <image 1> <image 2>",
            "['<image 1>', '<image 2>']",
            "A",
            "multiple-choice",
            2,
        ),
        ("validation_Math_3", "<image 1> Find x.", "[]", "4.5", "open", 1),
        ("validation_Math_4", "<image 1> Name the theorem.", "[]", "Pythagoras", "open", 1),
    ]
    return [
        {
            "id": i,
            "question": q,
            "options": o,
            "explanation": "",
            "answer": a,
            "question_type": t,
            "img_type": "['Diagrams']",
            "topic_difficulty": "Easy",
            "subfield": "Geometry",
            **{f"image_{k}": cell(600 + 10 * n + k) if k <= images else None for k in range(1, 8)},
        }
        for n, (i, q, o, a, t, images) in enumerate(rows)
    ]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A data root in every layout, where the paper config looks for it."""
    root = tmp_path_factory.mktemp("reasoning")
    write(root / "mmk12" / "data" / "train-00000-of-00001.parquet", mmk12_rows(), MMK12_SCHEMA)
    vista = write(
        root / "mathvista" / "data" / "testmini-00000-of-00001-abc.parquet",
        mathvista_rows(),
        MATHVISTA_SCHEMA,
    )
    (vista.parent / "images").mkdir()
    (vista.parent / "images" / "6.png").write_bytes(png(206))
    write(root / "mathverse" / "testmini.parquet", mathverse_rows(), MATHVERSE_SCHEMA)
    write(
        root / "mathvision" / "data" / "test-00000-of-00001-xyz.parquet", mathvision_rows(), MATHVISION_SCHEMA
    )
    write(root / "wemath" / "testmini.parquet", wemath_rows(), WEMATH_SCHEMA)
    write(root / "mmmu" / "Math" / "validation-00000-of-00001.parquet", mmmu_rows(), MMMU_SCHEMA)
    return root


def parsed(root: Path, layout: str) -> mb.Parsed:
    return mb.parse(mb.LAYOUTS[layout], mb.expand(root / mb.LAYOUTS[layout].pattern), layout)


def metas(part: mb.Parsed) -> dict[str, dict]:
    return {row.record["id"]: row.record["meta"] for row in part.rows}


def reasons(part: mb.Parsed, which: str = "unsupported") -> dict[str, str]:
    return {skip.record_id: skip.reason for skip in getattr(part, which)}


# ---------------------------------------------------------------- the layouts


@pytest.mark.parametrize(
    "text, stem, options",
    [
        ("Which?\nA. 1\nB. 2\nC. 3", "Which?", ["1", "2", "3"]),
        ("BC is ()\nChoices:\nA:2\nB:2√{3}", "BC is ()", ["2", "2√{3}"]),
        ("Which is BC? A. 3 B. 4", "Which is BC?", ["3", "4"]),
        ("A. 300, 400;B. 400, 300; C. No correct answer", "", ["300, 400", "400, 300", "No correct answer"]),
        ("Point A. is on the line.", "Point A. is on the line.", []),
        ("Where is (A) (B)?\n(A) left\n(B) right", "Where is (A) (B)?", ["left", "right"]),
    ],
)
def test_inline_options_are_split_from_the_question(text, stem, options):
    assert items.split_options(text) == (stem, options)


def test_mmk12_rows_become_choice_and_numeric_items(root):
    part = parsed(root, "mmk12")
    got = metas(part)
    assert part.total == N_GOOD + 4 and len(part.rows) == N_GOOD
    assert got["mmk12-k0"] == {
        "source": "mmk12",
        "question": "Which is angle 0?",
        "options": ["0 degrees", "1 degrees", "2 degrees"],
        "answer_type": "choice",
        "answer": "A",
        "subject": "math",
    }
    assert (got["mmk12-k2"]["answer_type"], got["mmk12-k2"]["answer"], got["mmk12-k2"]["options"]) == (
        "numeric",
        "2",
        [],
    )
    assert got["mmk12-k5"]["answer"] == "\\frac{1}{2}"  # LaTeX the verifier reads as a number
    record = next(r.record for r in part.rows if r.record["id"] == "mmk12-k1")
    assert (
        record["solution"] == "B"
        and record["problem"] == "Which is angle 1?\nA. 1 degrees\nB. 2 degrees\nC. 3 degrees"
    )
    assert part.answer_types() == {"choice": 8, "numeric": 4}
    assert reasons(part, "skipped") == {
        "mmk12-nooptions": "answer 'B' is an option letter, but the question lists no options",
        "mmk12-outside": "answer 'D' is outside the 2 options A-B",
    }
    assert reasons(part) == {
        "mmk12-several": "unsupported (several answers): answer 'AC' names several options",
        "mmk12-expression": "unsupported (free-form answer): answer 'x^2+1' is not a number nor an "
        "option; scoring it needs a judge",
    }
    assert part.kinds == {"several answers": 1, "free-form answer": 1}


def test_mathvista_choices_become_letters_and_text_answers_are_unsupported(root):
    part = parsed(root, "mathvista")
    got = metas(part)
    assert got["mathvista-1"]["options"] == ["AB", "BC", "CA"] and got["mathvista-1"]["answer"] == "B"
    assert got["mathvista-1"]["category"] == "math-targeted-vqa"
    assert (
        got["mathvista-3"]["answer_type"],
        got["mathvista-3"]["answer"],
        got["mathvista-3"]["precision"],
    ) == (
        "numeric",
        "0.25",
        2.0,
    )
    assert "free_form text answer ('Paris') needs a judge" in reasons(part)["mathvista-4"]
    assert reasons(part, "skipped") == {"mathvista-5": "answer '3' is none of the 2 choices"}
    images, inside = mb.image_paths(part)  # pid 6 carries no bytes: its image file beside the parquet
    assert inside == 3 and [p.name for p in images] == ["6.png"] and images[0].is_file()


def test_mathverse_mathvision_wemath_and_mmmu(root):
    verse = parsed(root, "mathverse")
    assert metas(verse)["mathverse-1"]["options"] == ["2", "2√{3}", "√{3}", "2√{2}"]
    assert metas(verse)["mathverse-5"]["options"] == ["3", "4"]
    assert set(metas(verse)) == {"mathverse-1", "mathverse-2", "mathverse-5"}
    assert verse.kinds == {"free-form answer": 1, "question only in the image": 1}

    vision = parsed(root, "mathvision")
    assert metas(vision)["mathvision-1"]["options"] == ["A", "B", "C", "D", "E"]
    assert metas(vision)["mathvision-2"]["answer_type"] == "numeric"
    assert "kangaroo" in reasons(vision)["mathvision-3"]
    assert "no options" in reasons(vision, "skipped")["mathvision-4"]

    wemath = metas(parsed(root, "wemath"))
    assert wemath["wemath-2steps_1"]["options"] == [
        "300, 400",
        "400, 300",
        "3000, 4000",
        "4000, 3000",
        "No correct answer",
    ]
    assert wemath["wemath-2steps_2"]["options"][0] == "Yes, A needs to be translated 5dm to the right"
    assert (
        wemath["wemath-2steps_2"]["answer"] == "B"
        and wemath["wemath-2steps_1"]["knowledge_concept"] == "Units"
    )

    mmmu = parsed(root, "mmmu")
    assert metas(mmmu)["mmmu-validation_Math_1"]["options"] == ["12", "16", "20"]
    assert metas(mmmu)["mmmu-validation_Math_3"]["answer"] == "4.5"
    # several images: left out (a record carries one image), not cut to the first
    assert reasons(mmmu)["mmmu-validation_Math_2"].startswith("unsupported (several images): 2 images")
    assert mmmu.kinds == {"several images": 1, "free-form answer": 1}


def test_a_file_of_another_layout_is_one_line_naming_the_missing_columns(root, tmp_path):
    other = write(
        tmp_path / "x.parquet",
        [{"pid": "1", "question": "q"}],
        pa.schema([("pid", pa.string()), ("question", pa.string())]),
    )
    with pytest.raises(DataError) as err:
        mb.parse(mb.LAYOUTS["mathvista"], [other], "mathvista")
    line = str(err.value)
    assert "\n" not in line and line.startswith(f"{other}: not a MathVista file: no column ")
    assert "choices, answer, question_type, answer_type, decoded_image/image" in line
    assert "columns found: pid, question" in line
    not_parquet = tmp_path / "y.parquet"
    not_parquet.write_text("text")
    with pytest.raises(DataError, match=r"y.parquet: not a readable parquet file"):
        mb.parse(mb.LAYOUTS["mmk12"], [not_parquet], "mmk12")


# ---------------------------------------------------------------- plan and prepare through the CLI


def sets(root: Path, *extra: str) -> list[str]:
    return [a for kv in [f"data.root={root}", *SCALED, *extra] for a in ("--set", kv)]


def test_plan_on_the_fixture_root_counts_every_split(root, tmp_path):
    result = invoke("plan", CONFIG, *sets(root), "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "plan: no blocking problems" in out and "Traceback" not in out
    assert "task reasoning, source mmk12" in out
    assert f"MMK12 {root}/mmk12/data/train-00000-of-00001.parquet: 8 choice + 4 numeric of 16 rows; " in out
    assert "2 unsupported (free-form answer 1, several answers 1); 2 bad" in out
    table = out.split("  split ")[1].split("  (every image")[0].splitlines()[1:]
    rows = {line.split()[0]: line.split() for line in table}
    counts = {
        name: rows[name][1]
        for name in ["coldstart", "train", id_split("reasoning"), *mmk12.Mmk12Source().ood_splits]
    }
    assert counts == {
        "coldstart": "2",
        "train": "5",
        id_split("reasoning"): "3",
        "mathvista": "4",
        "mathverse": "3",
        "mathvision": "3",  # 1, 2 and 5: plan does not decode bytes, prepare finds 5's do not decode
        "wemath": "2",
        "mmmu": "2",
    }
    assert "warning: mmk12: " in out and "answer 'B' is an option letter" in out  # bad input, skipped
    assert "max_new_tokens 4096" in out


def test_prepare_writes_records_in_the_reasoning_contract(root, tmp_path):
    run = tmp_path / "run"
    result = invoke("prepare", CONFIG, *sets(root), "--run-dir", run)
    assert result.exit_code == 0, result.output
    rundir = RunDir(run)
    test = id_split("reasoning")
    records = {
        name: read_json(rundir.records(name)) for name in ["coldstart", "train", test, "mathvista", "mmmu"]
    }
    assert [len(records[n]) for n in ["coldstart", "train", test]] == [2, 5, 3]
    drawn = [r["id"] for n in ["coldstart", "train", test] for r in records[n]]
    assert len(set(drawn)) == 10 and all(i.startswith("mmk12-k") for i in drawn)  # disjoint, no bad row
    for record in [r for split in records.values() for r in split]:
        meta = record["meta"]
        assert set(record) == {"id", "image", "problem", "solution", "meta"}
        assert record["solution"] == meta["answer"] and Path(record["image"]).is_file()
        assert meta["answer_type"] in ("choice", "numeric") and isinstance(meta["options"], list)
        assert meta["question"] in record["problem"]  # worded by prompts.reasoning
        for letter, option in zip("ABCDEFG", meta["options"]):
            assert f"{letter}. {option}" in record["problem"]
    vista = {r["id"]: r for r in records["mathvista"]}
    assert (
        vista["mathvista-1"]["meta"]["answer"] == "B"
        and vista["mathvista-1"]["meta"]["source"] == "mathvista"
    )
    assert Path(vista["mathvista-6"]["image"]).parent.name == "images"  # the file beside the parquet
    stats = read_json(rundir.prepare.root / "stats.json")
    assert stats["task"] == "reasoning" and stats["source"] == "mmk12"
    assert stats["records"]["mathvision"] == 2 and stats["skipped"]["mathvision"] == 2
    assert "1 unsupported left out (free-form answer 1)" in stats["splits"]["mathvision"]
    skipped = {row["id"]: row for row in read_jsonl(rundir.prepare.root / "skipped.jsonl")}
    assert "cannot be decoded" in skipped["mathvision-5"]["reason"]
    assert (
        skipped["mathvision-5"]["file"].endswith("test-00000-of-00001-xyz.parquet")
        and skipped["mathvision-5"]["index"] == 4
    )
    unsupported = read_jsonl(rundir.prepare.root / mmk12.UNSUPPORTED_FILE)
    assert {row["split"] for row in unsupported} == {"mmk12", "mathvista", "mathverse", "mathvision", "mmmu"}
    assert len(unsupported) == 2 + 1 + 2 + 1 + 2
    assert "left out as unsupported" in result.output
    images = list((rundir.prepare.root / "images").rglob("*.png"))
    assert len(images) == len({p.read_bytes() for p in images})  # each image written once


@pytest.mark.parametrize(
    "bad, ood, says",
    [
        (
            {"question": "Which?", "answer": "B"},
            "wemath",
            "answer 'B' is an option letter, but the question lists no options",
        ),
        (
            {"question": "Which?\nA. 1\nB. 2", "answer": "C"},
            "wemath",
            "answer 'C' is outside the 2 options A-B",
        ),
        (None, "mathvista", "answer '3' is none of the 2 choices"),
        (None, "mathvision", "image bytes cannot be decoded"),
    ],
)
def test_bad_input_under_bad_images_error_is_one_line_naming_the_file_and_row(root, tmp_path, bad, ood, says):
    """MMK12's good rows (and one bad one first), one benchmark."""
    data = tmp_path / "data"
    good = [r for r in mmk12_rows() if r["id"].startswith("k")]
    first = [{"id": "x", "subject": "math", "image": cell(900), **bad}] if bad else []
    write(data / "mmk12" / "train-00000-of-00001.parquet", [*first, *good], MMK12_SCHEMA)
    if ood == "mathvision":  # its good rows and the one whose bytes do not decode
        rows = [r for r in mathvision_rows() if r["id"] in ("1", "2", "5")]
        write(data / "mathvision" / "test-00000-of-00001.parquet", rows, MATHVISION_SCHEMA)
    else:
        (data / ood).symlink_to(root / ood)
    run = ["--run-dir", tmp_path / "run"]
    result = invoke("prepare", CONFIG, *sets(data, "data.bad_images=error", f"data.ood_splits=[{ood}]"), *run)
    line = one_error_line(result)
    assert ".parquet: record " in line and says in line and "data.bad_images: skip" in line
    assert not (RunDir(tmp_path / "run").prepare.root / "DONE").exists()


def test_a_benchmark_file_without_the_layouts_columns_is_one_line(root, tmp_path):
    other = write(
        tmp_path / "wemath.parquet",
        [{"ID": "1", "question": "q"}],
        pa.schema([("ID", pa.string()), ("question", pa.string())]),
    )
    for verb in ("plan", "prepare"):
        result = invoke(
            verb, CONFIG, *sets(root, f"data.files.wemath={other}"), "--run-dir", tmp_path / "run"
        )
        out = result.output
        assert result.exit_code in (1, 2) and "Traceback" not in out, out
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "not a WeMath file: no column option, answer, image_path" in errors[0]


def test_config_mistakes_are_one_line(root, tmp_path):
    cases = [
        ("data.ood_splits=[mathvista, geometry3k]", "'geometry3k' is no benchmark layout"),
        ("data.layouts={mathvista: nolayout}", "unknown layout 'nolayout'"),
        ("data.files={mathvita: x.parquet}", "data.files: unknown key 'mathvita'"),
        ("data.files={mmk12: nothing/*.parquet}", "no parquet file found for mmk12"),
    ]
    for override, says in cases:
        result = invoke("prepare", CONFIG, *sets(root, override), "--run-dir", tmp_path / "run")
        assert says in one_error_line(result), override


def test_an_ood_split_of_another_name_reads_its_layout(root, tmp_path):
    cfg = load_config(
        CONFIG,
        [
            f"data.root={root}",
            "data.ood_splits=[mathvision-mini]",
            "data.layouts={mathvision-mini: mathvision}",
            "data.files={mathvision-mini: mathvision/data}",
            *SCALED,
        ],
    )
    part = mmk12.parsed(cfg.data, "mathvision-mini")
    assert len(part.rows) == 3 and part.rows[0].record["id"].startswith("mathvision-mini-")
    assert part.rows[0].record["meta"]["source"] == "mathvision"


def test_the_paper_config_states_the_papers_settings():
    cfg = load_config(CONFIG)
    assert (cfg.task, cfg.data.source, cfg.model.base) == (
        "reasoning",
        "mmk12",
        "Qwen/Qwen2.5-VL-7B-Instruct",
    )
    assert (cfg.data.n_coldstart, cfg.data.n_train) == (400, 6400)
    assert cfg.grpo.steps == cfg.train.steps == 400 and cfg.grpo.beta == 0.001
    assert (cfg.evaluate.max_new_tokens, cfg.evaluate.repetition_penalty) == (4096, 1.1)
    assert cfg.data.ood_splits == ["mathvista", "mathverse", "mathvision", "wemath", "mmmu"]
    assert json.loads(json.dumps(cfg.data.model_dump()))["files"] == {}
