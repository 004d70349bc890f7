"""Which values of a tree get encrypted: the sops selection rules.

At most one of the suffix/regex rules is set in a file (sops enforces this when
it writes); the comment regexes select by the comments above a value. The logic
below follows sops' ``shouldBeEncrypted`` so both tools always agree on which
leaves are encrypted, which matters for the MAC with ``mac_only_encrypted``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

__all__ = ["DEFAULT_UNENCRYPTED_SUFFIX", "RULE_KEYS", "Selection"]

DEFAULT_UNENCRYPTED_SUFFIX = "_unencrypted"

RULE_KEYS = (
    "unencrypted_suffix",
    "encrypted_suffix",
    "unencrypted_regex",
    "encrypted_regex",
    "unencrypted_comment_regex",
    "encrypted_comment_regex",
)


@dataclass(frozen=True)
class Selection:
    """The selection rule of one file plus ``mac_only_encrypted``."""

    unencrypted_suffix: str = ""
    encrypted_suffix: str = ""
    unencrypted_regex: str = ""
    encrypted_regex: str = ""
    unencrypted_comment_regex: str = ""
    encrypted_comment_regex: str = ""
    mac_only_encrypted: bool = False
    _compiled: dict[str, re.Pattern[str]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @classmethod
    def default(cls) -> Selection:
        return cls(unencrypted_suffix=DEFAULT_UNENCRYPTED_SUFFIX)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Selection:
        """Build from a metadata block or a creation rule; the default suffix if none is set."""
        values = {k: str(data[k]) for k in RULE_KEYS if data.get(k)}
        mac_only = bool(data.get("mac_only_encrypted", False))
        if not values:
            values["unencrypted_suffix"] = DEFAULT_UNENCRYPTED_SUFFIX
        return cls(**values, mac_only_encrypted=mac_only)

    def rules(self) -> dict[str, str]:
        """The rule keys that are set, in the order sops writes them."""
        return {k: getattr(self, k) for k in RULE_KEYS if getattr(self, k)}

    def conflicts(self) -> list[str]:
        """Names of the value rules set together (sops allows only one)."""
        value_rules = [k for k in RULE_KEYS[:4] if getattr(self, k)]
        comment_rules = [k for k in RULE_KEYS[4:] if getattr(self, k)]
        return value_rules + comment_rules if len(value_rules) + len(comment_rules) > 1 else []

    def _re(self, name: str) -> re.Pattern[str]:
        pattern = self._compiled.get(name)
        if pattern is None:
            pattern = re.compile(getattr(self, name))
            self._compiled[name] = pattern
        return pattern

    @cached_property
    def trivial(self) -> bool:
        """True when only the default-style suffix rule applies (fast path)."""
        return not (
            self.encrypted_suffix
            or self.unencrypted_regex
            or self.encrypted_regex
            or self.unencrypted_comment_regex
            or self.encrypted_comment_regex
        )

    def should_encrypt(
        self,
        path: Sequence[str],
        comments: Sequence[Sequence[str]] = (),
        is_comment: bool = False,
    ) -> bool:
        """Whether the leaf at ``path`` (mapping keys only) is encrypted.

        ``comments`` is the stack of comment blocks seen above the leaf at each
        nesting level (only needed for the comment regexes).
        """
        encrypted = True
        suffix = self.unencrypted_suffix
        if suffix and any(part.endswith(suffix) for part in path):
            encrypted = False
        if self.trivial:
            return encrypted
        if self.encrypted_suffix:
            encrypted = any(part.endswith(self.encrypted_suffix) for part in path)
        if self.unencrypted_regex:
            rx = self._re("unencrypted_regex")
            if any(rx.search(part) for part in path):
                encrypted = False
        if self.encrypted_regex:
            rx = self._re("encrypted_regex")
            encrypted = any(rx.search(part) for part in path)
        if self.unencrypted_comment_regex:
            rx = self._re("unencrypted_comment_regex")
            if any(rx.search(c) for block in comments for c in block):
                encrypted = False
        if self.encrypted_comment_regex:
            rx = self._re("encrypted_comment_regex")
            encrypted = False
            last_block = len(comments) - 1
            for i, block in enumerate(comments):
                for j, c in enumerate(block):
                    # The comment line that matches is itself left in the clear.
                    if is_comment and i == last_block and j == len(block) - 1:
                        continue
                    if rx.search(c):
                        encrypted = True
                        break
                if encrypted:
                    break
        return encrypted

    def applies_to(
        self, leaf_path: Sequence[str], comments: Sequence[Sequence[str]], is_comment: bool
    ) -> bool:
        """:meth:`should_encrypt` with the fast path for the common suffix-only rule."""
        if self.trivial:
            return self.should_encrypt(leaf_path)
        return self.should_encrypt(leaf_path, comments, is_comment)
