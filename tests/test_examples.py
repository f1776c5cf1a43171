"""The example datasets and algorithms as pure functions."""

from __future__ import annotations

import pytest

from bridge.examples import algorithms
from bridge.examples.datasets import OutOfRange, UnknownDataset, dataset_names, generate
from bridge.sbatch_scripts.element import Context


def context(outputs: tuple[str, ...] = ("out",), span: tuple[int, int] | None = (0, 2)) -> Context:
    start, end = span if span else (None, None)
    return Context(block="b", experiment="e", outputs=outputs, start=start, end=end,
                   split_index=0, nb_splits=1)


def test_datasets_are_deterministic_and_ranged():
    assert generate("numbers", 5) == [0, 1, 2, 3, 4]
    assert generate("squares", 10, 3, 5) == [9, 16, 25]
    assert generate("ones", 3) == [1, 1, 1]
    assert generate("halves", 4, 1, 2) == [0.5, 1.0]
    assert generate("words", 10, 8, 9) == generate("words", 10, 8, 9) == ["alpha-8", "bravo-9"]
    assert dataset_names() == sorted(dataset_names()) and "numbers" in dataset_names()


def test_unknown_dataset_names_the_valid_ones():
    with pytest.raises(UnknownDataset, match="unknown dataset 'nope'; valid datasets: halves, numbers"):
        generate("nope", 3)


@pytest.mark.parametrize("start, end", [(0, 3), (-1, 1), (2, 1)])
def test_ranges_outside_the_dataset(start, end):
    with pytest.raises(OutOfRange):
        generate("numbers", 3, start, end)


def test_scale_square_add_total():
    assert algorithms.scale({"in": [1, 2, 3]}, {"factor": 10}, context()) == {"out": [10, 20, 30]}
    assert algorithms.scale({"x": [1]}, {}, context(("y",))) == {"y": [2]}
    assert algorithms.square({"in": [1, 2, 3]}, {}, context()) == {"out": [1, 4, 9]}
    assert algorithms.add({"a": [1, 2], "b": [10, 20], "c": [100, 200]}, {}, context()) == {"out": [111, 222]}
    assert algorithms.total({"in": [1, 2, 3]}, {}, context(span=None)) == {"out": [6]}


def test_shape_errors_are_plain_exceptions():
    with pytest.raises(ValueError, match="exactly one input"):
        algorithms.square({"a": [1], "b": [2]}, {}, context())
    with pytest.raises(ValueError, match="exactly one output"):
        algorithms.square({"a": [1]}, {}, context(("o1", "o2")))
    with pytest.raises(ValueError, match="one length"):
        algorithms.add({"a": [1], "b": [1, 2]}, {}, context())


def test_fail_always_raises_its_message(capsys):
    with pytest.raises(RuntimeError, match="boom"):
        algorithms.fail_always({"in": [1]}, {"message": "boom"}, context())
    assert "about to fail" in capsys.readouterr().err


def test_sleep_then_copy_and_allocate_copy_their_input():
    assert algorithms.sleep_then_copy({"in": [1, 2]}, {"seconds": 0.01}, context()) == {"out": [1, 2]}
    assert algorithms.allocate({"in": [3]}, {"megabytes": 1, "seconds": 0}, context()) == {"out": [3]}
