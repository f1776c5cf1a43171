"""The demo's two experiments: a diamond DAG each, sharing their first block (so one is a mirror).

Both read the generated `numbers` dataset; splits > 1 on real data; blocks on two
queues (default -> partition cpu, long -> partition long).
"""

from __future__ import annotations

from typing import Any

ALGORITHMS = "bridge.examples.algorithms"
ENVIRONMENT = "Python-3.11"
SIZE = 24


def _block(algorithm: str, inputs: dict[str, Any], *, queue: str = "default", slots: int = 2,
           parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"algorithm": f"{ALGORITHMS}:{algorithm}", "parameters": parameters or {}, "queue": queue,
            "environment": ENVIRONMENT, "required_slots": slots, "inputs": inputs, "outputs": ["out"]}


def _from(block: str) -> dict[str, str]:
    return {"block": block, "output": "out"}


SOURCE = _block("scale", {"in": {"dataset": "numbers", "size": SIZE}}, slots=3, parameters={"factor": 2})


def declarations() -> list[dict[str, Any]]:
    """Two experiments by two authors; block `source` is the same in both (same output hash)."""
    alice = {
        "name": "diamond", "author": "alice",
        "blocks": {
            "source": SOURCE,
            "left": _block("square", {"in": _from("source")}),
            "right": _block("scale", {"in": _from("source")}, queue="long", parameters={"factor": 3}),
            "join": _block("add", {"a": _from("left"), "b": _from("right")}, slots=3),
            "total": _block("total", {"in": _from("join")}, queue="long", slots=1),
        },
    }
    bob = {
        "name": "tenfold", "author": "bob",
        "blocks": {
            "source": SOURCE,
            "tenfold": _block("scale", {"in": _from("source")}, parameters={"factor": 10}),
            "both": _block("add", {"a": _from("source"), "b": _from("tenfold")}, queue="long"),
            "total": _block("total", {"in": _from("both")}, slots=1),
        },
    }
    return [alice, bob]


def expected_totals() -> dict[str, int]:
    """What each experiment's `total` block must compute, from the dataset 0..SIZE-1."""
    numbers = range(SIZE)
    source = [2 * n for n in numbers]
    return {
        "diamond": sum(s * s + 3 * s for s in source),
        "tenfold": sum(s + 10 * s for s in source),
    }
