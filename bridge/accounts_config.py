"""bridge.toml's [accounts] table: which Slurm account each BEAT author's arrays are charged to.

With authors mapped to their own accounts, Slurm's fair share and per-account
limits apply per person instead of to one service account. The account of an
array is, first to last: the author's in `[accounts.authors]`, the queue's own
`account` (queues.toml), `[accounts] default`, else none (`--account` is left
out and Slurm charges the service user's default account). `beat-bridge queues
check` checks every account named here against slurmdbd and each queue's
partition (bridge.queue_lint_authors). The keys are a Field table
(bridge.toml_table), from which bridge.schema writes them into bridge.toml's
JSON Schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.queues_config import _NAME  # a Slurm account's name, as queues.toml's `account` takes it
from bridge.toml_table import Field

_AUTHOR = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")  # a BEAT author: the declaration's `author` rule
ACCOUNT_RULE = "a Slurm account name (letters, digits, '_', '.', '+', '-'; starting with a letter or digit)"
ACCOUNTS_FIELDS = (
    Field("default", "text", None, "the account of an author not listed when the queue names none (default: "
          "none, so Slurm charges the service user's default account)", pattern=_NAME, expected=ACCOUNT_RULE),
    Field("authors", "map", None, "BEAT author -> Slurm account (sbatch --account): fair share and per-account "
          "limits per person; before the queue's own account", key_pattern=_AUTHOR,
          item=Field("", "text", pattern=_NAME, expected=ACCOUNT_RULE),
          expected="a BEAT author's name: 1-100 characters without control characters"),
)


@dataclass(frozen=True)
class AccountsConfig:
    """[accounts]: the default account and each mapped author's."""

    default: str | None = None
    authors: Mapping[str, str] = field(default_factory=dict)

    def account_for(self, author: str, queue_account: str | None) -> str | None:
        """The account an array of `author` in a queue charging `queue_account` is submitted with."""
        return self.authors.get(author) or queue_account or self.default

    def named(self) -> dict[str, list[str]]:
        """Each account named here, with the bridge.toml keys that name it (for `queues check`)."""
        named: dict[str, list[str]] = {}
        for author, account in sorted(self.authors.items()):
            named.setdefault(account, []).append(f"accounts.authors.{_key(author)}")
        if self.default:
            named.setdefault(self.default, []).append("accounts.default")
        return named


def load_accounts(values: dict | None) -> AccountsConfig:
    """[accounts] as read by ACCOUNTS_FIELDS (absent: nothing mapped)."""
    if not values:
        return AccountsConfig()
    return AccountsConfig(values["default"], dict(values["authors"] or {}))


def _key(author: str) -> str:
    """A TOML key as an admin would write it: bare when it can be, else quoted."""
    return author if re.fullmatch(r"[A-Za-z0-9_-]+", author) else '"' + author.replace('"', '\\"') + '"'
