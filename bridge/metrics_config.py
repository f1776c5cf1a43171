"""bridge.toml's [metrics] table: where the daemon's Prometheus metrics go (bridge.metrics).

Both exits are off unless configured: `listen` serves /metrics over HTTP,
`textfile` is rewritten atomically after every cycle for node_exporter's
textfile collector. The keys are a Field table (bridge.toml_table), read with
bridge.toml's others, from which bridge.schema writes them into bridge.toml's
JSON Schema; errors name the file, the key and what is valid. What a schema
cannot say (the textfile's directory exists) is checked here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bridge.toml_table import Field, Table

# host:port; an IPv6 host in brackets ("[::1]:9464"), as URLs write it. The port is 1 to 65535 in at most five
# digits, leading zeros allowed, spelt out so that the JSON Schema (bridge.schema) states the range too.
_PORT = ("0{0,4}[1-9]|0{0,3}[1-9][0-9]|0{0,2}[1-9][0-9]{2}|0?[1-9][0-9]{3}"
         "|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]")
_LISTEN = re.compile(rf"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):({_PORT})$")
# A file name with something before .prom (Path(".prom").suffix is empty); trailing slashes are dropped by Path.
_PROM = re.compile(r"^.*[^/]\.prom/*$")
LISTEN_RULE = 'HOST:PORT with a port from 1 to 65535, e.g. "127.0.0.1:9464" or "[::1]:9464"'
TEXTFILE_RULE = ("a path ending in .prom in an existing directory (node_exporter's textfile collector "
                 "reads only *.prom files of its --collector.textfile.directory)")
METRICS_FIELDS = (
    Field("listen", "text", None, "HOST:PORT to serve http://HOST:PORT/metrics on (default: no endpoint)",
          pattern=_LISTEN, expected=LISTEN_RULE),
    Field("textfile", "path", None, "a *.prom file rewritten after every cycle for node_exporter's textfile "
          "collector, in an existing directory (relative to bridge.toml; default: none)",
          pattern=_PROM, expected=TEXTFILE_RULE),
)


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
    if match is None:
        return None
    return match.group(1).strip("[]"), int(match.group(2))


def load_metrics(top: Table, values: dict | None) -> MetricsConfig:
    """[metrics] as read by METRICS_FIELDS (absent: both exits off); the textfile's directory must exist,
    which a JSON Schema cannot state."""
    if not values:
        return MetricsConfig()
    listen, textfile = values["listen"], values["textfile"]
    address = parse_listen(listen) if listen is not None else None
    if listen is not None and address is None:  # the pattern already refused it; parse_listen is the one reading
        raise Table(top.file, "metrics", {}).fail("listen", listen, LISTEN_RULE)
    if textfile is not None and (textfile.suffix != ".prom" or not textfile.parent.is_dir()):
        raise Table(top.file, "metrics", {}).fail("textfile", str(textfile), TEXTFILE_RULE)
    return MetricsConfig(address, textfile)


def reconcile_textfile(textfile: Path) -> Path:
    """Where `beat-bridge reconcile` writes its gauges: beside the daemon's textfile, which each cycle rewrites."""
    return textfile.with_name(f"{textfile.stem}_reconcile.prom")
