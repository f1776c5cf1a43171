"""Where the shipped sbatch templates are (standard library only: no jinja2 to find them)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_TEMPLATE = "array.sbatch.j2"


def package_templates_dir() -> Path:
    """The shipped templates: the source checkout's templates/ (beside this package), else package data.

    A source checkout wins over the `bridge.templates` package data: an editable
    install maps that package onto one checkout, and another checkout (a git
    worktree) must render its own templates.
    """
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "templates" / DEFAULT_TEMPLATE).is_file():
        return checkout / "templates"
    try:
        path = Path(str(resources.files("bridge.templates")))
        if (path / DEFAULT_TEMPLATE).is_file():
            return path
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - depends on the install
        pass
    return checkout / "templates"  # pragma: no cover
