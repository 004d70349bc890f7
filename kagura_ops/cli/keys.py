"""``keygen``: create an age identity."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Identity file to create (mode 0600). Default: $KAGURA_HOME/keys.txt (~/.kagura/keys.txt).",
)
def keygen(output: str | None) -> None:
    """Create an age X25519 identity and print its public key (the recipient)."""
    from pathlib import Path

    from kagura_ops.keys.age import write_identity_file
    from kagura_ops.keys.identities import Keyring

    target = Path(output) if output else Keyring().kagura_keys_file
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    public = write_identity_file(target)
    click.echo(f"Public key: {public}")
    click.echo(f"kagura-ops: identity written to {target} (keep it private)", err=True)
