"""``encrypt``, ``decrypt``, ``edit``, ``set``, ``unset``, ``updatekeys``, ``rotate``, ``filestatus``."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kagura_ops.atomicfile import atomic_write
from kagura_ops.errors import InputError, KaguraOpsError

_FORMATS = click.Choice(["yaml", "json", "dotenv"])


def _identity_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--identity",
        "identities",
        multiple=True,
        type=click.Path(dir_okay=False),
        help="age identity file (or SSH private key); may be repeated. Tried before "
        "KAGURA_AGE_KEY_FILE, SOPS_AGE_KEY, SOPS_AGE_KEY_FILE and the usual places.",
    )(func)


def _format_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--input-type", type=_FORMATS, help="Format of the input (default: from the file name)."
    )(func)
    return click.option(
        "--output-type", type=_FORMATS, help="Format of the output (default: the input's)."
    )(func)


def _keyring(identities: tuple[str, ...]) -> Any:
    from kagura_ops.keys.identities import Keyring

    return Keyring(identities)


def _write(path: str | Path, text: str, *, private: bool) -> None:
    atomic_write(path, text, private=private)


def _note(message: str) -> None:
    click.echo(f"kagura-ops: {message}", err=True)


def _convert(decrypted: Any, fmt_in: str, fmt_out: str | None) -> str:
    """Plaintext of a decrypted document, in another format if asked."""
    if not fmt_out or fmt_out == fmt_in:
        return str(decrypted.render())
    trees = decrypted.trees()
    return _dump_tree(trees[0] if trees else {}, fmt_out, json_numbers=fmt_in == "json")


def _dump_tree(tree: Any, fmt: str, *, json_numbers: bool = False) -> str:
    """A decrypted subtree in ``fmt``. ``json_numbers``: integral floats came from JSON
    (where every number is a float, as in sops) and are written as integers."""
    from kagura_ops.sops.codec import Timestamp

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, Timestamp):
            return value.text
        if json_numbers and isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value

    tree = plain(tree)
    if fmt == "json":
        from kagura_ops.sops.jsonstore import dump_json

        text = dump_json(tree)
        return text if text.endswith("\n") else text + "\n"
    if fmt == "dotenv":
        if not isinstance(tree, dict) or any(isinstance(v, dict | list) for v in tree.values()):
            raise InputError("only a flat mapping can be written as dotenv")
        return "".join(f"{k}={'' if v is None else v}\n" for k, v in tree.items())
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.allow_unicode = True
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    out = io.StringIO()
    yaml.dump(tree, out)
    return out.getvalue()


# -- encrypt ---------------------------------------------------------------------------------


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-i", "--in-place", is_flag=True, help="Write the encrypted file over FILE.")
@click.option(
    "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout."
)
@click.option(
    "--age",
    "age",
    multiple=True,
    help="age or SSH recipients (comma-separated, repeatable). Overrides .sops.yaml.",
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    envvar="SOPS_CONFIG",
    help="The .sops.yaml to use (default: found above FILE).",
)
@click.option(
    "--previous",
    type=click.Path(dir_okay=False, exists=True),
    help="Earlier encrypted version: unchanged values keep their ciphertext.",
)
@click.option("--unencrypted-suffix", help="Leave values whose key ends with this in the clear.")
@click.option("--encrypted-suffix", help="Encrypt only values whose key ends with this.")
@click.option("--unencrypted-regex", help="Leave values whose key matches in the clear.")
@click.option("--encrypted-regex", help="Encrypt only values whose key matches.")
@click.option(
    "--unencrypted-comment-regex", help="Leave values below a matching comment in the clear."
)
@click.option("--encrypted-comment-regex", help="Encrypt only values below a matching comment.")
@click.option(
    "--mac-only-encrypted", is_flag=True, help="The MAC covers only the encrypted values."
)
@_identity_option
@_format_options
def encrypt(
    file: str,
    in_place: bool,
    output: str | None,
    age: tuple[str, ...],
    config: str | None,
    previous: str | None,
    identities: tuple[str, ...],
    input_type: str | None,
    output_type: str | None,
    mac_only_encrypted: bool,
    **rules: str | None,
) -> None:
    """Encrypt FILE's values; keys stay readable.

    Recipients come from --age or the first matching creation rule of the
    nearest .sops.yaml. If an earlier encrypted version exists (the output file,
    --previous, or the file at git HEAD) and an identity for it is available,
    unchanged values keep their exact ciphertext, so diffs show only real changes.
    """
    from kagura_ops.errors import FormatError
    from kagura_ops.sops.files import (
        detect_format,
        encrypt_text,
        find_previous,
        is_encrypted_text,
        read_text,
        settings_for,
    )
    from kagura_ops.sops.selection import Selection

    if in_place and output:
        raise click.UsageError("use either --in-place or --output")
    fmt = detect_format(file, input_type)
    if output_type and output_type != fmt:
        raise click.UsageError("encrypt writes the input's format; --output-type must match it")
    text = read_text(file)
    if is_encrypted_text(text, fmt, source=file):
        raise FormatError(
            "the file is already encrypted (it has sops metadata)",
            file=file,
            hint="use 'kagura-ops edit' or 'kagura-ops set' to change it",
        )
    chosen = {k: v for k, v in rules.items() if v}
    selection = None
    if chosen or mac_only_encrypted:
        if len(chosen) > 1:
            raise click.UsageError("give only one of the --*-suffix / --*-regex options")
        selection = Selection.from_mapping({**chosen, "mac_only_encrypted": mac_only_encrypted})
    target = Path(output) if output else Path(file)
    # Creation rules are about where the encrypted file lives: match the output path.
    settings = settings_for(target, age=age, selection=selection, config=config)
    keyring = _keyring(identities)
    prev = find_previous(target, fmt, keyring, explicit=previous)
    result = encrypt_text(text, fmt, settings, previous=prev, source=file)
    if in_place or output:
        _write(output or file, result, private=False)
    else:
        click.echo(result, nl=False)


# -- decrypt ---------------------------------------------------------------------------------


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-i", "--in-place", is_flag=True, help="Write the plaintext over FILE (mode 0600).")
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    help="Write the plaintext to this file (mode 0600).",
)
@click.option("--extract", help='Print only the value at this path, e.g. \'["db"]["password"]\'.')
@click.option(
    "--ignore-mac", is_flag=True, help="Decrypt even if the MAC does not match (recovery only)."
)
@_identity_option
@_format_options
def decrypt(
    file: str,
    in_place: bool,
    output: str | None,
    extract: str | None,
    ignore_mac: bool,
    identities: tuple[str, ...],
    input_type: str | None,
    output_type: str | None,
) -> None:
    """Decrypt FILE and verify its MAC; prints the plaintext (you asked for it)."""
    from kagura_ops.sops.codec import Timestamp
    from kagura_ops.sops.files import (
        decrypt_file,
        detect_format,
        parse_key_path,
    )
    from kagura_ops.sops.files import (
        extract as extract_value,
    )

    if in_place and output:
        raise click.UsageError("use either --in-place or --output")
    fmt = detect_format(file, input_type)
    decrypted = decrypt_file(file, _keyring(identities), fmt=fmt, verify_mac=not ignore_mac)
    if extract:
        trees = decrypted.trees()
        value = extract_value(trees[0] if trees else {}, parse_key_path(extract), source=file)
        if isinstance(value, dict | list):
            text = _dump_tree(
                value,
                output_type or ("json" if fmt == "json" else "yaml"),
                json_numbers=fmt == "json",
            )
        elif isinstance(value, Timestamp):
            text = value.text
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = "" if value is None else str(value)
            if sys.stdout.isatty():
                text += "\n"
    else:
        text = _convert(decrypted, fmt, output_type)
    if in_place or output:
        _write(output or file, text, private=True)
    else:
        click.echo(text, nl=False)


# -- edit / set / unset --------------------------------------------------------------------------


def _editor() -> list[str]:
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    return shlex.split(editor)


def _run_editor(path: Path) -> None:
    command = [*_editor(), str(path)]
    try:
        result = subprocess.run(command, check=False)
    except FileNotFoundError:
        raise InputError(f"editor {command[0]!r} not found", hint="set $EDITOR") from None
    if result.returncode != 0:
        raise InputError(f"the editor exited with status {result.returncode}; nothing was changed")


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    envvar="SOPS_CONFIG",
    help="The .sops.yaml for a new file.",
)
@click.option(
    "--age", "age", multiple=True, help="Recipients for a new file (overrides .sops.yaml)."
)
@_identity_option
@click.option(
    "--input-type", type=_FORMATS, help="Format of the file (default: from the file name)."
)
def edit(
    file: str,
    config: str | None,
    age: tuple[str, ...],
    identities: tuple[str, ...],
    input_type: str | None,
) -> None:
    """Open FILE's plaintext in $EDITOR and re-encrypt what changed.

    The plaintext lives only in a private (0700) temporary directory and is
    removed afterwards, even on errors. A new FILE is created from the
    creation rules (or --age).
    """
    from kagura_ops.sops.files import (
        decrypt_file,
        detect_format,
        encrypt_text,
        parse,
        reencrypt,
        settings_for,
    )

    fmt = detect_format(file, input_type)
    exists = Path(file).exists()
    decrypted = decrypt_file(file, _keyring(identities), fmt=fmt) if exists else None
    settings = None if exists else settings_for(file, age=age, config=config)
    original = decrypted.render() if decrypted is not None else ""
    workdir = Path(tempfile.mkdtemp(prefix="kagura-ops-edit-"))
    try:
        os.chmod(workdir, 0o700)
        temp = workdir / Path(file).name
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(original)
        while True:
            _run_editor(temp)
            edited = temp.read_text(encoding="utf-8")
            if edited == original:
                _note("file unchanged; nothing written")
                return
            try:
                parse(edited, fmt, source=file)
                break
            except KaguraOpsError as exc:
                _note(exc.format())
                if not (
                    sys.stdin.isatty() and click.confirm("Edit again?", default=True, err=True)
                ):
                    raise InputError(
                        "the edited file is not valid; nothing was written", file=file
                    ) from None
        if decrypted is not None:
            result = reencrypt(decrypted, edited, fmt, source=file)
        else:
            assert settings is not None
            result = encrypt_text(edited, fmt, settings, source=file)
        _write(file, result, private=False)
    finally:
        _shred_dir(workdir)


def _shred_dir(workdir: Path) -> None:
    for child in workdir.iterdir():
        try:
            size = child.stat().st_size
            with open(child, "r+b") as fh:
                fh.write(b"\0" * size)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:
            pass
    shutil.rmtree(workdir, ignore_errors=True)


def _read_value(value: str, as_json: bool) -> Any:
    if value == "-":
        value = sys.stdin.read()
        value = value.removesuffix("\n").removesuffix("\r")
    if not as_json:
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise InputError("VALUE is not valid JSON (drop --json to store it as a string)") from None


@click.command("set")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.argument("key_path")
@click.argument("value")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Parse VALUE as JSON (numbers, booleans, objects) like sops set.",
)
@_identity_option
@click.option(
    "--input-type", type=_FORMATS, help="Format of the file (default: from the file name)."
)
def set_(
    file: str,
    key_path: str,
    value: str,
    as_json: bool,
    identities: tuple[str, ...],
    input_type: str | None,
) -> None:
    """Set KEY_PATH (a.b[0] or '["a"]["b"][0]') to VALUE in an encrypted FILE.

    VALUE is stored as a string; '-' reads it from stdin (keeps it out of shell
    history). Only the changed value's ciphertext changes.
    """
    from kagura_ops.sops.edits import set_value
    from kagura_ops.sops.files import decrypt_file, detect_format, parse_key_path, reencrypt

    fmt = detect_format(file, input_type)
    path = parse_key_path(key_path)
    new_value = _read_value(value, as_json)
    decrypted = decrypt_file(file, _keyring(identities), fmt=fmt)
    edited = set_value(decrypted.render(), fmt, path, new_value, source=file)
    _write(file, reencrypt(decrypted, edited, fmt, source=file), private=False)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.argument("key_path")
@_identity_option
@click.option(
    "--input-type", type=_FORMATS, help="Format of the file (default: from the file name)."
)
def unset(file: str, key_path: str, identities: tuple[str, ...], input_type: str | None) -> None:
    """Remove KEY_PATH from an encrypted FILE."""
    from kagura_ops.sops.edits import unset_value
    from kagura_ops.sops.files import decrypt_file, detect_format, parse_key_path, reencrypt

    fmt = detect_format(file, input_type)
    decrypted = decrypt_file(file, _keyring(identities), fmt=fmt)
    edited = unset_value(decrypted.render(), fmt, parse_key_path(key_path), source=file)
    _write(file, reencrypt(decrypted, edited, fmt, source=file), private=False)


# -- keys: updatekeys / rotate ---------------------------------------------------------------------


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--config", type=click.Path(dir_okay=False), envvar="SOPS_CONFIG", help="The .sops.yaml to use."
)
@_identity_option
@click.option(
    "--input-type", type=_FORMATS, help="Format of the file (default: from the file name)."
)
def updatekeys(
    file: str, yes: bool, config: str | None, identities: tuple[str, ...], input_type: str | None
) -> None:
    """Re-wrap FILE's data key for the recipients its creation rule names now.

    Values, their ciphertext and the MAC stay as they are; only the sops block
    changes. (To lock out a removed recipient for good, use rotate.)
    """
    from kagura_ops.sops.keyops import update_keys

    plan = update_keys(file, _keyring(identities), fmt=input_type, config=config)
    if not plan.changed:
        _note(f"{file}: recipients already match the creation rule; nothing to do")
        return
    for name in plan.added:
        click.echo(f"+++ {name}", err=True)
    for name in plan.removed:
        click.echo(f"--- {name}", err=True)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("not a terminal: pass -y to confirm the key changes")
        click.confirm("Apply these changes?", abort=True, err=True)
    plan.write()
    _note(f"{file}: keys updated")


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("-i", "--in-place", is_flag=True, help="Write the result over FILE.")
@click.option(
    "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout."
)
@click.option(
    "--add-age", multiple=True, help="Add these age/SSH recipients (comma-separated, repeatable)."
)
@click.option("--rm-age", multiple=True, help="Remove these age/SSH recipients.")
@_identity_option
@click.option(
    "--input-type", type=_FORMATS, help="Format of the file (default: from the file name)."
)
def rotate(
    file: str,
    in_place: bool,
    output: str | None,
    add_age: tuple[str, ...],
    rm_age: tuple[str, ...],
    identities: tuple[str, ...],
    input_type: str | None,
) -> None:
    """Re-encrypt FILE under a new data key (every value gets new ciphertext)."""
    from kagura_ops.sops.keyops import rotate_file

    if in_place and output:
        raise click.UsageError("use either --in-place or --output")
    result = rotate_file(file, _keyring(identities), fmt=input_type, add_age=add_age, rm_age=rm_age)
    if in_place or output:
        _write(output or file, result, private=False)
    else:
        click.echo(result, nl=False)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--input-type", type=_FORMATS, help="Format of the file (default: from the file name)."
)
def filestatus(file: str, input_type: str | None) -> None:
    """Print {"encrypted": true|false} for FILE (like sops filestatus)."""
    from kagura_ops.sops.files import detect_format, is_encrypted_text, read_text

    fmt = detect_format(file, input_type)
    encrypted = is_encrypted_text(read_text(file), fmt, source=file)
    click.echo(json.dumps({"encrypted": encrypted}))
