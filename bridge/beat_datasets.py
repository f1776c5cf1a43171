"""The example datasets (bridge.examples.datasets) written as BEAT cache files, for BEAT algorithm blocks.

A BEAT block's ``{"dataset", "size"}`` input becomes one BEAT cache file
under the cache root, written here at ``experiments add`` with beat.backend.python's
CachedDataSink and the input's dataformat: units 0..size-1, one data block
per unit (so the block can be split anywhere), ``.data``/``.index`` and their
checksums as BEAT writes them. The dataformat must have exactly one field
(``{"value": "int32"}`` and the like): unit ``i`` is that field's value. An
existing complete file (same hash) is kept: datasets are deterministic.
"""

from __future__ import annotations

from pathlib import Path

from bridge.cache import is_cache_complete
from bridge.errors import BridgeError
from bridge.examples.datasets import OutOfRange, UnknownDataset, generate
from bridge.hashing import cache_path


class DatasetWriteError(BridgeError):
    """A dataset cannot be written in BEAT's format (no beat.backend.python, unfit dataformat, disk)."""


def write_dataset(root: Path, prefix: Path, hash_: str, name: str, size: int, dataformat: str) -> Path:
    """Write dataset `name` of `size` units as BEAT cache file `hash_` with `dataformat`; its base path."""
    base = root / cache_path(hash_)
    if is_cache_complete(cache_path(hash_), 1, root):
        return base
    try:
        from beat.backend.python.data import CachedDataSink
        from beat.backend.python.dataformat import DataFormat
    except ImportError as e:
        raise DatasetWriteError(f"writing dataset {name!r} in BEAT's format needs beat.backend.python ({e}): "
                                "pip install 'beat-slurm-bridge[beat]'") from e
    form = DataFormat(str(prefix), dataformat)
    fields = [key for key in form.data if not key.startswith("#")] if form.valid else []
    if len(fields) != 1:
        raise DatasetWriteError(f"dataset {name!r}: dataformat {dataformat!r} must have exactly one field "
                                f"to hold a unit (it has {fields or form.errors})")
    try:
        values = generate(name, size)
    except (UnknownDataset, OutOfRange) as e:
        raise DatasetWriteError(str(e.args[0])) from e
    base.parent.mkdir(parents=True, exist_ok=True)
    sink = CachedDataSink()
    if not sink.setup(str(base) + ".data", form, 0, size - 1):
        raise DatasetWriteError(f"cannot create BEAT cache file {base}.0.{size - 1}.data")
    try:
        for index, value in enumerate(values):
            unit = form.type()
            unit.from_dict({fields[0]: value}, casting="unsafe")
            sink.write(unit, index, index)
    except (TypeError, ValueError, AttributeError) as e:
        raise DatasetWriteError(f"dataset {name!r} does not fit dataformat {dataformat!r}: {e}") from e
    finally:
        sink.close()
    return base
