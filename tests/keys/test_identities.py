"""Identity discovery: every source, its order, and what the tried list says.

Every Keyring here gets an explicit ``environ`` and a ``home`` under ``tmp_path``,
so nothing on the real machine is read.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyrage
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from kagura_ops.errors import InputError
from kagura_ops.keys.identities import Keyring, TriedSource

INTEROP_AGE = Path(__file__).parents[1] / "vectors" / "sops" / "age"
PAYLOAD = b"\x07" * 32


# -- helpers -------------------------------------------------------------------------


def new_age_key() -> tuple[str, str]:
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def write_age_key(path: Path, *, comment: str = "test key") -> tuple[str, str]:
    """Write an age-keygen style file; return (secret, public)."""
    secret, public = new_age_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {comment}\n# public key: {public}\n{secret}\n")
    return secret, public


def make_ssh_key(path: Path, kind: str = "ed25519", passphrase: str = "") -> str:
    """Create an SSH private key at ``path`` (+ ``.pub``); return the public key line.

    Uses ssh-keygen when installed, else cryptography (which, without bcrypt, can
    only write a passphrase-protected key as a legacy PEM RSA key).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if shutil.which("ssh-keygen"):
        args = ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", "t@h", "-f", str(path)]
        if kind == "rsa":
            args[4:4] = ["-b", "2048"]
        subprocess.run(args, check=True, stdin=subprocess.DEVNULL)
        return path.with_suffix(".pub").read_text().strip()
    key: Any
    if passphrase:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        fmt = serialization.PrivateFormat.TraditionalOpenSSL
        encryption: Any = serialization.BestAvailableEncryption(passphrase.encode())
    else:
        key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else None
        if key is None:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        fmt = serialization.PrivateFormat.OpenSSH
        encryption = serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt, encryption))
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    path.with_suffix(".pub").write_bytes(public + b" t@h\n")
    return str(public.decode())


def sealed_for(public: str) -> bytes:
    recipient = (
        pyrage.ssh.Recipient.from_str(public)
        if public.startswith("ssh-")
        else pyrage.x25519.Recipient.from_str(public)
    )
    return bytes(pyrage.encrypt(PAYLOAD, [recipient]))


def opens(identity: Any, public: str) -> bool:
    """True when ``identity`` is the private half of ``public``."""
    try:
        return bytes(pyrage.decrypt(sealed_for(public), [identity])) == PAYLOAD
    except pyrage.DecryptError:
        return False


def write_script(path: Path, body: str) -> str:
    """A Python script run as a key command; returns the command line for it."""
    path.write_text(body)
    return shlex.join([sys.executable, str(path)])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def linux(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pin the platform so the user config dir is ``~/.config`` (sops on Linux)."""
    monkeypatch.setattr(sys, "platform", "linux")


def labels(keyring: Keyring) -> list[str]:
    return [t.label for t in keyring.tried()]


def entry(keyring: Keyring, label: str) -> TriedSource:
    matches = [t for t in keyring.tried() if t.label == label]
    assert len(matches) == 1, (label, labels(keyring))
    return matches[0]


# -- nothing configured ---------------------------------------------------------------


@pytest.mark.usefixtures("linux")
def test_nothing_configured_lists_every_source_in_order(home: Path) -> None:
    keyring = Keyring(environ={}, home=home)

    assert keyring.age_identities() == []
    assert not keyring.has_any()
    assert labels(keyring) == [
        "KAGURA_AGE_KEY_FILE",
        "SOPS_AGE_KEY",
        "SOPS_AGE_KEY_FILE",
        "SOPS_AGE_KEY_CMD",
        "~/.config/sops/age/keys.txt",
        "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
        "SOPS_AGE_SSH_PRIVATE_KEY_CMD",
        "~/.ssh/id_ed25519",
        "~/.ssh/id_rsa",
        "~/.kagura/keys.txt",
    ]
    assert keyring.describe_tried() == (
        "KAGURA_AGE_KEY_FILE (not set), SOPS_AGE_KEY (not set), SOPS_AGE_KEY_FILE (not set), "
        "SOPS_AGE_KEY_CMD (not set), ~/.config/sops/age/keys.txt (missing), "
        "SOPS_AGE_SSH_PRIVATE_KEY_FILE (not set), SOPS_AGE_SSH_PRIVATE_KEY_CMD (not set), "
        "~/.ssh/id_ed25519 (missing), ~/.ssh/id_rsa (missing), ~/.kagura/keys.txt (missing)"
    )


def test_discovery_is_lazy(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    keyring = Keyring([missing], environ={}, home=home)  # no error yet: nothing read
    assert "not loaded" in repr(keyring)
    with pytest.raises(InputError):
        keyring.age_identities()


# -- each source on its own -----------------------------------------------------------

Setup = Callable[[Path, Path], tuple[list[Path], dict[str, str], str, str]]


def _explicit(tmp: Path, home: Path) -> tuple[list[Path], dict[str, str], str, str]:
    _, public = write_age_key(tmp / "k.txt")
    return [tmp / "k.txt"], {}, f"--identity {tmp / 'k.txt'}", public


def _kagura_file(tmp: Path, home: Path) -> tuple[list[Path], dict[str, str], str, str]:
    _, public = write_age_key(tmp / "k.txt")
    path = str(tmp / "k.txt")
    return [], {"KAGURA_AGE_KEY_FILE": path}, f"KAGURA_AGE_KEY_FILE={path}", public


def _sops_inline(tmp: Path, home: Path) -> tuple[list[Path], dict[str, str], str, str]:
    secret, public = new_age_key()
    return [], {"SOPS_AGE_KEY": secret}, "SOPS_AGE_KEY", public


def _sops_file(tmp: Path, home: Path) -> tuple[list[Path], dict[str, str], str, str]:
    _, public = write_age_key(tmp / "k.txt")
    path = str(tmp / "k.txt")
    return [], {"SOPS_AGE_KEY_FILE": path}, f"SOPS_AGE_KEY_FILE={path}", public


def _sops_cmd(tmp: Path, home: Path) -> tuple[list[Path], dict[str, str], str, str]:
    secret, public = new_age_key()
    command = write_script(tmp / "print key.py", f"print('# from a vault')\nprint({secret!r})\n")
    return [], {"SOPS_AGE_KEY_CMD": command}, "SOPS_AGE_KEY_CMD", public


def _user_config(tmp: Path, home: Path) -> tuple[list[Path], dict[str, str], str, str]:
    _, public = write_age_key(home / ".config" / "sops" / "age" / "keys.txt")
    return [], {}, "~/.config/sops/age/keys.txt", public


def _xdg_config(tmp: Path, home: Path) -> tuple[list[Path], dict[str, str], str, str]:
    xdg = tmp / "xdg"
    _, public = write_age_key(xdg / "sops" / "age" / "keys.txt")
    write_age_key(home / ".config" / "sops" / "age" / "keys.txt")  # shadowed by XDG
    return [], {"XDG_CONFIG_HOME": str(xdg)}, str(xdg / "sops" / "age" / "keys.txt"), public


def _ssh_env(tmp: Path, home: Path) -> tuple[list[Path], dict[str, str], str, str]:
    public = make_ssh_key(tmp / "deploy_key")
    path = str(tmp / "deploy_key")
    env = {"SOPS_AGE_SSH_PRIVATE_KEY_FILE": path}
    return [], env, f"SOPS_AGE_SSH_PRIVATE_KEY_FILE={path}", public


def _ssh_cmd(tmp: Path, home: Path) -> tuple[list[Path], dict[str, str], str, str]:
    public = make_ssh_key(tmp / "deploy_key")
    body = f"import sys\nsys.stdout.write(open({str(tmp / 'deploy_key')!r}).read())\n"
    command = write_script(tmp / "ssh.py", body)
    return [], {"SOPS_AGE_SSH_PRIVATE_KEY_CMD": command}, "SOPS_AGE_SSH_PRIVATE_KEY_CMD", public


def _ssh_ed25519(tmp: Path, home: Path) -> tuple[list[Path], dict[str, str], str, str]:
    public = make_ssh_key(home / ".ssh" / "id_ed25519")
    return [], {}, "~/.ssh/id_ed25519", public


def _ssh_rsa(tmp: Path, home: Path) -> tuple[list[Path], dict[str, str], str, str]:
    public = make_ssh_key(home / ".ssh" / "id_rsa", kind="rsa")
    return [], {}, "~/.ssh/id_rsa", public


def _kagura_home(tmp: Path, home: Path) -> tuple[list[Path], dict[str, str], str, str]:
    _, public = write_age_key(tmp / "kh" / "keys.txt")
    return [], {"KAGURA_HOME": str(tmp / "kh")}, str(tmp / "kh" / "keys.txt"), public


def _kagura_default(tmp: Path, home: Path) -> tuple[list[Path], dict[str, str], str, str]:
    _, public = write_age_key(home / ".kagura" / "keys.txt")
    return [], {}, "~/.kagura/keys.txt", public


SOURCES: dict[str, Setup] = {
    "identity-flag": _explicit,
    "KAGURA_AGE_KEY_FILE": _kagura_file,
    "SOPS_AGE_KEY": _sops_inline,
    "SOPS_AGE_KEY_FILE": _sops_file,
    "SOPS_AGE_KEY_CMD": _sops_cmd,
    "user-config": _user_config,
    "XDG_CONFIG_HOME": _xdg_config,
    "SOPS_AGE_SSH_PRIVATE_KEY_FILE": _ssh_env,
    "SOPS_AGE_SSH_PRIVATE_KEY_CMD": _ssh_cmd,
    "ssh-id_ed25519": _ssh_ed25519,
    "ssh-id_rsa": _ssh_rsa,
    "KAGURA_HOME": _kagura_home,
    "kagura-default": _kagura_default,
}


@pytest.mark.usefixtures("linux")
@pytest.mark.parametrize("source", SOURCES)
def test_each_source_alone_yields_its_key(source: str, tmp_path: Path, home: Path) -> None:
    files, env, label, public = SOURCES[source](tmp_path, home)
    keyring = Keyring(files, environ=env, home=home)

    identities = keyring.age_identities()

    assert len(identities) == 1
    assert opens(identities[0], public)
    assert entry(keyring, label).count == 1
    assert f"{label} (1 key)" in keyring.describe_tried()
    assert keyring.has_any()


@pytest.mark.usefixtures("linux")
def test_all_sources_at_once_come_in_contract_order(tmp_path: Path, home: Path) -> None:
    order = [
        "identity-flag",
        "KAGURA_AGE_KEY_FILE",
        "SOPS_AGE_KEY",
        "SOPS_AGE_KEY_FILE",
        "SOPS_AGE_KEY_CMD",
        "XDG_CONFIG_HOME",
        "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
        "SOPS_AGE_SSH_PRIVATE_KEY_CMD",
        "ssh-id_ed25519",
        "ssh-id_rsa",
        "KAGURA_HOME",
    ]
    files: list[Path] = []
    env: dict[str, str] = {}
    publics: list[str] = []
    expected_labels: list[str] = []
    for index, name in enumerate(order):
        sandbox = tmp_path / f"s{index}"
        sandbox.mkdir()
        more_files, more_env, label, public = SOURCES[name](sandbox, home)
        files += more_files
        env |= more_env
        publics.append(public)
        expected_labels.append(label)

    keyring = Keyring(files, environ=env, home=home)
    identities = keyring.age_identities()

    assert len(identities) == len(order)
    for index, (identity, public) in enumerate(zip(identities, publics, strict=True)):
        assert opens(identity, public), f"identity #{index} should come from {order[index]}"
    found = [t.label for t in keyring.tried() if t.count]
    assert found == expected_labels


def test_several_identity_files_keep_their_order(tmp_path: Path, home: Path) -> None:
    publics = [write_age_key(tmp_path / f"k{i}.txt")[1] for i in range(3)]
    files = [tmp_path / "k2.txt", tmp_path / "k0.txt", tmp_path / "k1.txt"]

    identities = Keyring(files, environ={}, home=home).age_identities()

    assert [opens(identities[i], publics[n]) for i, n in enumerate((2, 0, 1))] == [True] * 3


def test_ssh_env_file_does_not_hide_default_ssh_keys(tmp_path: Path, home: Path) -> None:
    # sops loads SOPS_AGE_SSH_PRIVATE_KEY_FILE *and* ~/.ssh/id_ed25519 / id_rsa.
    env_public = make_ssh_key(tmp_path / "deploy")
    home_public = make_ssh_key(home / ".ssh" / "id_ed25519")
    env = {"SOPS_AGE_SSH_PRIVATE_KEY_FILE": str(tmp_path / "deploy")}

    identities = Keyring(environ=env, home=home).age_identities()

    assert len(identities) == 2
    assert opens(identities[0], env_public)
    assert opens(identities[1], home_public)


# -- file parsing -----------------------------------------------------------------------


def test_identity_file_with_several_keys_comments_blank_lines_crlf_and_bom(
    tmp_path: Path, home: Path
) -> None:
    keys = [new_age_key() for _ in range(3)]
    text = (
        "\ufeff# created: 2024-01-01T00:00:00Z\r\n"
        f"# public key: {keys[0][1]}\r\n{keys[0][0]}\r\n\r\n"
        f"   # indented comment\r\n  {keys[1][0]}  \r\n{keys[2][0]}"
    )
    path = tmp_path / "keys.txt"
    path.write_bytes(text.encode("utf-8"))

    keyring = Keyring([path], environ={}, home=home)
    identities = keyring.age_identities()

    assert [opens(i, public) for i, (_, public) in zip(identities, keys, strict=True)] == [True] * 3
    assert entry(keyring, f"--identity {path}").note == "3 keys"


def test_sops_age_key_accepts_several_keys_per_line_and_several_lines(home: Path) -> None:
    keys = [new_age_key() for _ in range(3)]
    inline = f"# team keys\n{keys[0][0]} {keys[1][0]}\n\n\t{keys[2][0]}\n"

    keyring = Keyring(environ={"SOPS_AGE_KEY": inline}, home=home)
    identities = keyring.age_identities()

    assert [opens(i, public) for i, (_, public) in zip(identities, keys, strict=True)] == [True] * 3
    assert entry(keyring, "SOPS_AGE_KEY").note == "3 keys"


def test_key_file_does_not_allow_several_keys_per_line(tmp_path: Path, home: Path) -> None:
    # Like sops: only SOPS_AGE_KEY splits lines into words.
    (a, _), (b, _) = new_age_key(), new_age_key()
    path = tmp_path / "k.txt"
    path.write_text(f"{a} {b}\n")
    with pytest.raises(InputError, match="line 1"):
        Keyring([path], environ={}, home=home).age_identities()


def test_invalid_key_line_names_file_and_line_but_not_the_content(
    tmp_path: Path, home: Path
) -> None:
    secret, _ = new_age_key()
    mangled = secret[:-3] + ("QQQ" if not secret.endswith("QQQ") else "PPP")
    path = tmp_path / "keys.txt"
    path.write_text(f"# comment\n\n{mangled}\n")

    with pytest.raises(InputError) as caught:
        Keyring(environ={"SOPS_AGE_KEY_FILE": str(path)}, home=home).age_identities()

    message = str(caught.value)
    assert str(path) in message
    assert "line 3" in message
    assert mangled[20:] not in message
    assert caught.value.file == str(path)


def test_garbage_line_is_an_input_error(tmp_path: Path, home: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("age-secret-key-1lowercaseisnotwhatagewrites\n")
    with pytest.raises(InputError, match="line 1 is not an age identity") as caught:
        Keyring([path], environ={}, home=home).age_identities()
    assert "lowercase" not in str(caught.value)


@pytest.mark.usefixtures("linux")
def test_invalid_line_in_default_key_file_is_an_error(home: Path) -> None:
    path = home / ".config" / "sops" / "age" / "keys.txt"
    path.parent.mkdir(parents=True)
    path.write_text("AGE-SECRET-KEY-1NOTBECH32\n")
    with pytest.raises(InputError, match="line 1") as caught:
        Keyring(environ={}, home=home).age_identities()
    assert caught.value.file == str(path)


def test_invalid_inline_key_names_the_variable(home: Path) -> None:
    with pytest.raises(InputError) as caught:
        Keyring(environ={"SOPS_AGE_KEY": "AGE-SECRET-KEY-1XYZ"}, home=home).age_identities()
    assert caught.value.file == "SOPS_AGE_KEY"
    assert "XYZ" not in str(caught.value)


def test_missing_explicit_identity_file_is_an_input_error(tmp_path: Path, home: Path) -> None:
    with pytest.raises(InputError, match="not found") as caught:
        Keyring([tmp_path / "absent.txt"], environ={}, home=home).age_identities()
    assert str(tmp_path / "absent.txt") in str(caught.value)


def test_missing_env_key_files_are_noted_not_raised(tmp_path: Path, home: Path) -> None:
    secret, public = new_age_key()
    env = {
        "KAGURA_AGE_KEY_FILE": str(tmp_path / "gone1"),
        "SOPS_AGE_KEY_FILE": str(tmp_path / "gone2"),
        "SOPS_AGE_SSH_PRIVATE_KEY_FILE": str(tmp_path / "gone3"),
        "SOPS_AGE_KEY": secret,
    }
    keyring = Keyring(environ=env, home=home)

    [identity] = keyring.age_identities()

    assert opens(identity, public)
    assert entry(keyring, f"KAGURA_AGE_KEY_FILE={tmp_path / 'gone1'}").note == "missing"
    assert entry(keyring, f"SOPS_AGE_KEY_FILE={tmp_path / 'gone2'}").note == "missing"
    assert entry(keyring, f"SOPS_AGE_SSH_PRIVATE_KEY_FILE={tmp_path / 'gone3'}").note == "missing"


def test_empty_env_values(home: Path) -> None:
    keyring = Keyring(environ={"SOPS_AGE_KEY_FILE": "", "SOPS_AGE_KEY": ""}, home=home)
    assert keyring.age_identities() == []
    assert entry(keyring, "SOPS_AGE_KEY_FILE").note == "empty"
    assert entry(keyring, "SOPS_AGE_KEY").note == "no keys"


def test_post_quantum_and_plugin_identities_are_skipped_with_a_note(
    tmp_path: Path, home: Path
) -> None:
    secret, public = new_age_key()
    path = tmp_path / "keys.txt"
    path.write_text(
        "AGE-SECRET-KEY-PQ-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\n"
        f"{secret}\n"
        "AGE-PLUGIN-YUBIKEY-1QQQQQQQQQQQQQQQQQQQQQQ\n"
        "AGE-PLUGIN-YUBIKEY-1PPPPPPPPPPPPPPPPPPPPPP\n"
    )
    keyring = Keyring([path], environ={}, home=home)

    [identity] = keyring.age_identities()

    assert opens(identity, public)
    note = entry(keyring, f"--identity {path}").note
    assert note == (
        "1 key; 1 post-quantum key skipped: not supported; "
        "2 plugin identities skipped: not supported"
    )


def test_explicit_ssh_private_key_is_accepted(tmp_path: Path, home: Path) -> None:
    public = make_ssh_key(tmp_path / "id")
    keyring = Keyring([tmp_path / "id"], environ={}, home=home)
    [identity] = keyring.age_identities()
    assert opens(identity, public)


def test_passphrase_protected_ssh_keys_are_skipped_with_a_note(tmp_path: Path, home: Path) -> None:
    make_ssh_key(home / ".ssh" / "id_ed25519", passphrase="correct horse")
    make_ssh_key(tmp_path / "explicit", passphrase="correct horse")
    keyring = Keyring([tmp_path / "explicit"], environ={}, home=home)

    assert keyring.age_identities() == []
    assert "passphrase-protected SSH key: skipped" in entry(keyring, "~/.ssh/id_ed25519").note
    assert "passphrase-protected" in entry(keyring, f"--identity {tmp_path / 'explicit'}").note


def test_unusable_default_ssh_key_is_noted_but_explicit_one_is_an_error(
    tmp_path: Path, home: Path
) -> None:
    bogus = (
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_rsa").write_bytes(bogus)
    keyring = Keyring(environ={}, home=home)
    assert keyring.age_identities() == []
    assert "skipped" in entry(keyring, "~/.ssh/id_rsa").note

    (tmp_path / "bogus").write_bytes(bogus)
    with pytest.raises(InputError, match="not a usable SSH private key"):
        Keyring([tmp_path / "bogus"], environ={}, home=home).age_identities()


def test_passphrase_protected_age_identity_file_is_skipped(tmp_path: Path, home: Path) -> None:
    path = tmp_path / "keys.age"
    path.write_bytes(bytes(pyrage.passphrase.encrypt(b"AGE-SECRET-KEY-1...", "pw", armored=True)))
    keyring = Keyring([path], environ={}, home=home)
    assert keyring.age_identities() == []
    assert "passphrase-protected age identity file" in entry(keyring, f"--identity {path}").note


# -- SOPS_AGE_KEY_CMD --------------------------------------------------------------------


def test_key_cmd_gets_the_keyring_environment_and_runs_once(tmp_path: Path, home: Path) -> None:
    secret, public = new_age_key()
    counter = tmp_path / "runs"
    body = (
        f"import os\nopen({str(counter)!r}, 'a').write('x')\nprint(os.environ['KEY_FROM_VAULT'])\n"
    )
    command = write_script(tmp_path / "cmd.py", body)
    env = {"SOPS_AGE_KEY_CMD": command, "KEY_FROM_VAULT": secret}
    keyring = Keyring(environ=env, home=home)

    first = keyring.age_identities()
    second = keyring.age_identities()
    keyring.describe_tried()
    keyring.has_any()

    assert len(first) == len(second) == 1
    assert opens(first[0], public)
    assert counter.read_text() == "x"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("import sys\nsys.exit(3)\n", "failed with exit status 3"),
        ("print('not a key')\n", "invalid output: line 1 is not an age identity"),
    ],
)
def test_key_cmd_failure_is_noted_and_other_sources_still_load(
    body: str, expected: str, tmp_path: Path, home: Path
) -> None:
    secret, public = new_age_key()
    command = write_script(tmp_path / "cmd.py", body)
    keyring = Keyring(environ={"SOPS_AGE_KEY_CMD": command, "SOPS_AGE_KEY": secret}, home=home)

    [identity] = keyring.age_identities()

    assert opens(identity, public)
    assert expected in entry(keyring, "SOPS_AGE_KEY_CMD").note


def test_key_cmd_not_found_or_unparsable(tmp_path: Path, home: Path) -> None:
    missing = Keyring(environ={"SOPS_AGE_KEY_CMD": "/nonexistent/keyhelper --x"}, home=home)
    assert missing.age_identities() == []
    note = entry(missing, "SOPS_AGE_KEY_CMD").note
    assert note == "command not found: /nonexistent/keyhelper"

    unbalanced = Keyring(environ={"SOPS_AGE_KEY_CMD": "helper 'oops"}, home=home)
    assert unbalanced.age_identities() == []
    assert "could not parse" in entry(unbalanced, "SOPS_AGE_KEY_CMD").note


def test_key_cmd_is_split_into_words_without_a_shell(tmp_path: Path, home: Path) -> None:
    # sops splits the command with shell quoting rules and execs it directly:
    # quotes group words, but `$VAR`, `;` and `|` reach the program verbatim.
    secret, public = new_age_key()
    body = (
        "import sys\n"
        "assert sys.argv[1:] == ['two words', '$HOME', ';', 'x'], sys.argv\n"
        f"print({secret!r})\n"
    )
    command = write_script(tmp_path / "my script.py", body) + " 'two words' '$HOME' ';' x"
    keyring = Keyring(environ={"SOPS_AGE_KEY_CMD": command}, home=home)
    [identity] = keyring.age_identities()
    assert opens(identity, public)


# -- precedence between sources ----------------------------------------------------------


def test_explicit_file_comes_before_environment_keys(tmp_path: Path, home: Path) -> None:
    _, flag_public = write_age_key(tmp_path / "flag.txt")
    _, kagura_public = write_age_key(tmp_path / "kagura.txt")
    inline_secret, inline_public = new_age_key()
    _, sops_public = write_age_key(tmp_path / "sops.txt")
    env = {
        "SOPS_AGE_KEY_FILE": str(tmp_path / "sops.txt"),
        "SOPS_AGE_KEY": inline_secret,
        "KAGURA_AGE_KEY_FILE": str(tmp_path / "kagura.txt"),
    }
    identities = Keyring([tmp_path / "flag.txt"], environ=env, home=home).age_identities()
    expected = [flag_public, kagura_public, inline_public, sops_public]
    assert [opens(i, p) for i, p in zip(identities, expected, strict=True)] == [True] * 4


# -- user config dir per platform ----------------------------------------------------------


def test_macos_uses_application_support_unless_xdg_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path
) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    _, public = write_age_key(
        home / "Library" / "Application Support" / "sops" / "age" / "keys.txt"
    )
    keyring = Keyring(environ={}, home=home)
    [identity] = keyring.age_identities()
    assert opens(identity, public)
    assert keyring.sops_keys_file == home / "Library/Application Support/sops/age/keys.txt"

    xdg = tmp_path / "xdg"
    _, xdg_public = write_age_key(xdg / "sops" / "age" / "keys.txt")
    keyring = Keyring(environ={"XDG_CONFIG_HOME": str(xdg)}, home=home)
    [identity] = keyring.age_identities()
    assert opens(identity, xdg_public)


@pytest.mark.usefixtures("linux")
def test_relative_xdg_config_home_is_ignored_like_go(home: Path) -> None:
    write_age_key(home / ".config" / "sops" / "age" / "keys.txt")
    keyring = Keyring(environ={"XDG_CONFIG_HOME": "relative/dir"}, home=home)
    assert keyring.age_identities() == []
    assert "relative" in keyring.describe_tried()
    assert keyring.sops_keys_file is None


# -- never any key material in reports -------------------------------------------------------


@pytest.mark.usefixtures("linux")
def test_reports_hold_paths_and_counts_only(tmp_path: Path, home: Path) -> None:
    file_secret, _ = write_age_key(tmp_path / "k.txt")
    inline_secret, _ = new_age_key()
    make_ssh_key(home / ".ssh" / "id_ed25519")
    ssh_secret = (home / ".ssh" / "id_ed25519").read_text()
    keyring = Keyring([tmp_path / "k.txt"], environ={"SOPS_AGE_KEY": inline_secret}, home=home)
    keyring.age_identities()

    text = keyring.describe_tried() + repr(keyring) + repr(keyring.tried())
    for secret in (file_secret, inline_secret):
        assert secret not in text
        assert secret[16:40] not in text
    body = "".join(ssh_secret.splitlines()[1:-1])
    assert body[:40] not in text
    assert keyring.describe_tried().startswith(f"--identity {tmp_path / 'k.txt'} (1 key), ")


# -- interop: key files written by other tools --------------------------------------------------


def _interop_key_files() -> list[Path]:
    return sorted(p for p in INTEROP_AGE.glob("*/*") if p.suffix in (".txt", ".key"))


@pytest.mark.parametrize("path", _interop_key_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_interop_key_files_parse(path: Path, home: Path) -> None:
    keyring = Keyring([path], environ={}, home=home)
    identities = keyring.age_identities()
    declared = [
        line.split(":", 1)[1].strip()
        for line in path.read_text().splitlines()
        if line.startswith("# public key:")
    ]
    assert len(declared) == 1
    if declared[0].startswith("age1pq1"):
        assert identities == []
        assert "post-quantum key skipped" in keyring.describe_tried()
    else:
        assert len(identities) == 1
        assert str(identities[0].to_public()) == declared[0]


def test_interop_key_file_list_is_not_empty() -> None:
    if INTEROP_AGE.is_dir():
        assert len(_interop_key_files()) >= 8


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_default_file_is_noted(home: Path) -> None:
    path = home / ".kagura" / "keys.txt"
    write_age_key(path)
    path.chmod(0)
    try:
        keyring = Keyring(environ={}, home=home)
        assert keyring.age_identities() == []
        assert entry(keyring, "~/.kagura/keys.txt").note.startswith("unreadable")
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def test_encrypted_ssh_keys_are_recognised_without_asking_pyrage(tmp_path: Path) -> None:
    from kagura_ops.keys.identities import _ssh_key_is_encrypted

    make_ssh_key(tmp_path / "plain")
    make_ssh_key(tmp_path / "locked", passphrase="correct horse")
    assert not _ssh_key_is_encrypted((tmp_path / "plain").read_bytes())
    assert _ssh_key_is_encrypted((tmp_path / "locked").read_bytes())
    assert not _ssh_key_is_encrypted(b"AGE-SECRET-KEY-1...")
