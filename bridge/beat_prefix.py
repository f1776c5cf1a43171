"""BEAT algorithms and dataformats as a BEAT prefix declares them: read from its JSON files, no BEAT import.

A prefix (bridge.toml ``beat_prefix``) holds ``algorithms/<user>/<name>/<version>.json``
(and its ``.py``) and ``dataformats/<user>/<name>/<version>.json``. The bridge
reads an algorithm's declaration at ``experiments add`` to type a block: its
inputs and outputs by group, each with its dataformat, and its parameters with
their defaults. beat.backend.python itself is needed only where the algorithm
runs (the element) and where a dataset is written in BEAT's format.

Channels: BEAT gives each group of a block the synchronisation channel of the
toolchain's dataset it reads; the bridge has no toolchain, so group 0 (the
algorithm's main group, over whose data the block is split) is the block's
channel ``main`` and group k is ``group<k>`` (read whole by every split).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.errors import BridgeError

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_.-]*/[0-9]+")
MAIN_CHANNEL = "main"


class BeatPrefixError(BridgeError):
    """A BEAT algorithm or dataformat is missing from the prefix, or its declaration is unusable."""


@dataclass(frozen=True)
class Endpoint:
    """One input or output of an algorithm: its dataformat and its group's channel."""

    dataformat: str
    channel: str


@dataclass(frozen=True)
class BeatAlgorithm:
    """What a block needs of a BEAT algorithm's declaration."""

    name: str
    prefix: Path
    kind: str  # "sequential", "autonomous" or "legacy" (API version 1)
    inputs: dict[str, Endpoint]
    outputs: dict[str, Endpoint]
    defaults: dict[str, Any]  # parameter name -> default (None when the declaration gives none)
    code_hash: str  # SHA-256 of the declaration and the code: a change of either is a new output

    def parameters(self, given: dict[str, Any]) -> dict[str, Any]:
        """The declaration's defaults updated with `given` (what BEAT hands the algorithm's setup)."""
        return {**{k: v for k, v in self.defaults.items() if v is not None}, **given}


def channel_of(group: int) -> str:
    return MAIN_CHANNEL if group == 0 else f"group{group}"


def _read_json(file: Path, what: str) -> dict[str, Any]:
    try:
        value = json.loads(file.read_text())
    except OSError as e:
        raise BeatPrefixError(f"{what}: cannot read {file}: {e.strerror or e}") from e
    except ValueError as e:
        raise BeatPrefixError(f"{what}: {file} is not JSON: {e}") from e
    if not isinstance(value, dict):
        raise BeatPrefixError(f"{what}: {file} is not a JSON object")
    return value


def algorithm_names(prefix: Path) -> list[str]:
    """Every algorithm the prefix declares, sorted ('user/name/version')."""
    return sorted(str(f.relative_to(prefix / "algorithms").with_suffix(""))
                  for f in (prefix / "algorithms").glob("*/*/*.json"))


def load_algorithm(prefix: Path | None, name: str) -> BeatAlgorithm:
    """The algorithm `name` of `prefix`, its dataformats checked to exist there (BeatPrefixError if not)."""
    if prefix is None:
        raise BeatPrefixError(f"BEAT algorithm {name!r} needs a BEAT prefix: set beat_prefix in bridge.toml")
    if not (prefix / "algorithms").is_dir():
        raise BeatPrefixError(f"beat_prefix {prefix} has no algorithms/ directory: not a BEAT prefix")
    declaration_file = prefix / "algorithms" / f"{name}.json"
    if not NAME.fullmatch(name) or not declaration_file.is_file():
        known = algorithm_names(prefix)
        sample = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
        raise BeatPrefixError(f"unknown BEAT algorithm {name!r} in prefix {prefix} "
                              f"({len(known)} algorithms: {sample or 'none'})")
    declaration = _read_json(declaration_file, f"BEAT algorithm {name!r}")
    if declaration.get("language", "python") != "python":
        raise BeatPrefixError(f"BEAT algorithm {name!r}: language {declaration['language']!r}; only python runs here")
    if "results" in declaration:
        raise BeatPrefixError(f"BEAT algorithm {name!r} is an analyzer (it declares results): not supported here")
    inputs, outputs = _endpoints(name, declaration)
    for endpoint in (*inputs.values(), *outputs.values()):
        if not (prefix / "dataformats" / f"{endpoint.dataformat}.json").is_file():
            raise BeatPrefixError(f"BEAT algorithm {name!r}: dataformat {endpoint.dataformat!r} is not in "
                                  f"prefix {prefix}")
    code = declaration_file.with_suffix(".py")
    digest = hashlib.sha256(declaration_file.read_bytes())
    digest.update(code.read_bytes() if code.is_file() else b"")
    parameters = declaration.get("parameters") or {}
    return BeatAlgorithm(
        name=name, prefix=prefix, kind=_kind(declaration), inputs=inputs, outputs=outputs,
        defaults={p: (spec.get("default") if isinstance(spec, dict) else None) for p, spec in parameters.items()},
        code_hash=digest.hexdigest())


def _kind(declaration: dict[str, Any]) -> str:
    """BEAT's algorithm type: an API-version-1 declaration without a type is legacy."""
    if declaration.get("api_version", 1) < 2 and "type" not in declaration:
        return "legacy"
    return str(declaration.get("type", "legacy"))


def _endpoints(name: str, declaration: dict[str, Any]) -> tuple[dict[str, Endpoint], dict[str, Endpoint]]:
    groups = declaration.get("groups")
    if not isinstance(groups, list) or not groups:
        raise BeatPrefixError(f"BEAT algorithm {name!r}: its declaration has no groups")
    inputs: dict[str, Endpoint] = {}
    outputs: dict[str, Endpoint] = {}
    for number, group in enumerate(groups):
        for key, found in (("inputs", inputs), ("outputs", outputs)):
            for port, spec in (group.get(key) or {}).items():
                dataformat = spec.get("type") if isinstance(spec, dict) else None
                if not isinstance(dataformat, str):
                    raise BeatPrefixError(f"BEAT algorithm {name!r}: {key[:-1]} {port!r} has no dataformat (type)")
                found[port] = Endpoint(dataformat, channel_of(number))
    if not outputs:
        raise BeatPrefixError(f"BEAT algorithm {name!r} declares no outputs")
    return inputs, outputs


def cache_dataformat(root: Path, path: str) -> str:
    """The dataformat named in a BEAT cache file's header (``<encoding>\\n<dataformat>\\n``)."""
    base = root / path
    files = sorted(base.parent.glob(base.name + ".*.data")) if base.parent.is_dir() else []
    if not files:
        raise BeatPrefixError(f"no BEAT cache file at {base} (expected {base.name}.<start>.<end>.data)")
    with open(files[0], "rb") as stream:
        encoding, dataformat = stream.readline().strip(), stream.readline().strip()
    if encoding not in (b"binary", b"json") or not dataformat:
        raise BeatPrefixError(f"{files[0]} is not a BEAT cache file (no 'binary' or 'json' header)")
    return dataformat.decode(errors="replace")
