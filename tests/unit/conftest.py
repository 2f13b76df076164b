"""Fixtures the unit files share: the packaged embedded base and its processor at the default
study's image size, loaded once per module that asks for them, and shape-world records."""

import pytest

from dcsft.config import StudyConfig
from dcsft.data import world
from dcsft.models.base import PACKAGED
from dcsft.models.loading import load_model, load_processor
from dcsft.tasks import classification

MODEL_CFG = StudyConfig().model.model_copy(update={"max_pixels": 7056, "min_pixels": 3136})


@pytest.fixture(scope="module")
def model():
    return load_model(PACKAGED, MODEL_CFG)


@pytest.fixture(scope="module")
def processor():
    return load_processor(PACKAGED, MODEL_CFG)


@pytest.fixture(scope="module")
def draw_shape_records(tmp_path_factory):
    """A function of (stream, n, photos): n classification records of the shape world, drawn from
    the seed stream `stream` at the model's 84-pixel size, the first `photos` (all by default) in
    the photo style and the rest adversarial, asked with the paper's prompt."""

    def draw(stream: str, n: int, photos: int | None = None) -> list[dict]:
        folder = tmp_path_factory.mktemp("images")
        rows = []
        for index in range(n):
            style = "photo" if photos is None or index < photos else "adversarial"
            image, meta = world.draw_pool_item(0, stream, index, style, size=84)
            path = folder / f"{index}.png"
            image.save(path)
            rows.append(
                {
                    "id": f"r{index}",
                    "problem": classification.PROMPT,
                    "solution": meta["label"],
                    "image": str(path),
                }
            )
        return rows

    return draw
