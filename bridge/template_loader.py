"""Templates from a search path, for environments kept between renders (bridge.render).

jinja2 reuses a compiled template while its loader says the source is up to date; its
FileSystemLoader compares the file's mtime only. That misses an edit within a coarse
(NFS) mtime tick, and an override an admin puts into an earlier directory of the search
path. Here a compiled template is reused only while the same file, with the same text, is
the one the search finds: the next render after any edit sees it, as when every render
made its own environment.
"""

from __future__ import annotations

from collections.abc import Callable

import jinja2


class SearchPathLoader(jinja2.FileSystemLoader):
    """FileSystemLoader whose templates are up to date only while the search finds the same file and text."""

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        source, filename, _ = super().get_source(environment, template)

        def uptodate() -> bool:
            try:
                return jinja2.FileSystemLoader.get_source(self, environment, template)[:2] == (source, filename)
            except (jinja2.TemplateNotFound, OSError):
                return False

        return source, filename, uptodate
