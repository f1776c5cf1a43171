"""bridge.toml's [metrics] table: where the daemon's Prometheus metrics go (bridge.metrics).

Both exits are off unless configured: `listen` serves /metrics over HTTP,
`textfile` is rewritten atomically after every cycle for node_exporter's
textfile collector. Errors name the file, the key and what is valid, as every
other table's (bridge.toml_table).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bridge.toml_table import Table

# host:port; an IPv6 host in brackets ("[::1]:9464"), as URLs write it
_LISTEN = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):([0-9]{1,5})$")
LISTEN_RULE = 'HOST:PORT with a port from 1 to 65535, e.g. "127.0.0.1:9464" or "[::1]:9464"'
TEXTFILE_RULE = ("a path ending in .prom in an existing directory (node_exporter's textfile collector "
                 "reads only *.prom files of its --collector.textfile.directory)")


@dataclass(frozen=True)
class MetricsConfig:
    """Where the daemon's metrics go: an HTTP endpoint, a node_exporter textfile, both or neither."""

    listen: tuple[str, int] | None = None  # (host, port) for prometheus_client's HTTP server
    textfile: Path | None = None  # rewritten after every cycle; reconcile writes <stem>_reconcile.prom beside it

    @property
    def enabled(self) -> bool:
        return self.listen is not None or self.textfile is not None


def parse_listen(text: str) -> tuple[str, int] | None:
    """("127.0.0.1", 9464) from "127.0.0.1:9464" (brackets of an IPv6 host removed); None when malformed."""
    match = _LISTEN.match(text)
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        return None
    return match.group(1).strip("[]"), int(match.group(2))


def load_metrics(t: Table | None) -> MetricsConfig:
    """The [metrics] table (absent: both exits off)."""
    if t is None:
        return MetricsConfig()
    listen = t.text("listen", None)
    address = parse_listen(listen) if listen is not None else None
    if listen is not None and address is None:
        raise t.fail("listen", listen, LISTEN_RULE)
    textfile = t.path("textfile", None)
    if textfile is not None and (textfile.suffix != ".prom" or not textfile.parent.is_dir()):
        raise t.fail("textfile", str(textfile), TEXTFILE_RULE)
    t.done()
    return MetricsConfig(address, textfile)


def reconcile_textfile(textfile: Path) -> Path:
    """Where `beat-bridge reconcile` writes its gauges: beside the daemon's textfile, which each cycle rewrites."""
    return textfile.with_name(f"{textfile.stem}_reconcile.prom")
