"""A git work tree with a kagura project, for the tests in this folder."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kagura_ops.keys.age import AgeKey
from kagura_ops.sops.files import EncryptionSettings, encrypt_text, reencrypt
from kagura_ops.sops.selection import Selection
from kagura_ops.testing import Identity


class Repo:
    """A git work tree holding a kagura project at its top."""

    def __init__(self, root: Path, identity: Identity, environ: dict[str, str]) -> None:
        self.root = root
        self.identity = identity
        self.environ = environ

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args],
            cwd=self.root,
            env=self.environ,
            capture_output=True,
            text=True,
            check=check,
        )

    def write(self, relpath: str, text: str) -> Path:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def encrypt(self, relpath: str, plaintext: str) -> Path:
        """Write ``relpath`` encrypted; an existing version keeps its unchanged ciphertext."""
        from kagura_ops.keys.identities import Keyring
        from kagura_ops.sops.files import decrypt_file

        path = self.root / relpath
        if path.exists():
            keyring = Keyring([self.identity.path], environ={}, home=self.root)
            text = reencrypt(decrypt_file(path, keyring), plaintext, "yaml")
        else:
            settings = EncryptionSettings([[AgeKey(self.identity.public)]], Selection.default())
            text = encrypt_text(plaintext, "yaml", settings)
        return self.write(relpath, text)

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD").stdout.strip()

    def files_text(self) -> str:
        """Every byte in the work tree and .git, for "no plaintext on disk" checks."""
        out = []
        for path in self.root.rglob("*"):
            if path.is_file():
                out.append(path.read_bytes().decode("utf-8", "replace"))
        return "\n".join(out)
