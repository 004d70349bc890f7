"""Property tests: any tree of any leaf types survives encrypt -> decrypt.

Trees are written as YAML (block style, through ruamel) and as JSON-in-YAML
(flow style), encrypted, decrypted, and the decrypted text parsed again: both
the values and our rendering of decrypted scalars must come back unchanged.
"""

from __future__ import annotations

import io
import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from kagura_ops.keys.age import AgeKey, generate_identity
from kagura_ops.keys.identities import Keyring
from kagura_ops.sops.codec import Cipher, Comment, Timestamp, format_float, to_bytes
from kagura_ops.sops.document import decrypt_document, encrypt_document
from kagura_ops.sops.selection import Selection
from kagura_ops.sops.yamlstore import parse_yaml

SECRET, PUBLIC = generate_identity()

keys = st.text(min_size=1, max_size=12).filter(lambda k: k != "sops" and "\x00" not in k)
# NEL and the Unicode line separators are line breaks in YAML 1.1 (libyaml) but
# not in 1.2 (ruamel's emitter), so texts that ruamel writes raw read back
# differently; our own renderer escapes them (test_renderer_escapes_line_breaks).
_DIALECT_BREAKS = ("\x00", "\x85", "\u2028", "\u2029")
# A plaintext that starts like a ciphertext is refused on purpose (no double encryption).
texts = st.text(max_size=40).filter(
    lambda t: not any(c in t for c in _DIALECT_BREAKS) and not t.startswith("ENC[AES256_GCM,")
)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=False, width=64)
stamps = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
scalars = st.one_of(texts, ints, floats, st.booleans(), st.none(), stamps)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=25,
)
documents = st.dictionaries(keys, trees, min_size=1, max_size=6)


def _plain(value: Any) -> Any:
    """Values as YAML gives them back: timestamps as aware datetimes."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Timestamp):
        return value.to_datetime()
    return value


def _dump_block(tree: dict[str, Any]) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.allow_unicode = True
    out = io.StringIO()
    yaml.dump(tree, out)
    # ruamel writes "2000-01-01 00:00:00+00:00", a timestamp in YAML 1.1 but a
    # string for Go's yaml.v3 (so for sops). Use the form both read as a timestamp.
    return re.sub(
        r"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d:\d\d)", r"\1T\2\3", out.getvalue()
    )


def _load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def _roundtrip(text: str, tmp: Path) -> tuple[Any, str]:
    encrypted = encrypt_document(
        parse_yaml(text), key_groups=[[AgeKey(PUBLIC)]], selection=Selection.default()
    )
    keyring = Keyring(environ={"SOPS_AGE_KEY": SECRET}, home=tmp)
    decrypted = decrypt_document(parse_yaml(encrypted), keyring)
    return decrypted.trees()[0], decrypted.render()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(documents)
def test_block_yaml_round_trip(tmp_path: Path, tree: dict[str, Any]) -> None:
    text = _dump_block(tree)
    expected = _load(text)
    values, rendered = _roundtrip(text, tmp_path)
    assert _plain(values) == expected
    assert _load(rendered) == expected


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(documents)
def test_flow_yaml_round_trip(tmp_path: Path, tree: dict[str, Any]) -> None:
    def jsonable(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: jsonable(x) for k, x in v.items()}
        if isinstance(v, list):
            return [jsonable(x) for x in v]
        if isinstance(v, float) and math.isinf(v):
            return str(v)
        if isinstance(v, datetime):
            return v.isoformat()
        return v

    # JSON is YAML flow syntax; nest it under a block key (sops files are block at the top).
    # libyaml rejects surrogate-pair escapes and raw C1 controls: escape only those.
    body = json.dumps(jsonable(tree), ensure_ascii=False)
    body = re.sub("[\x7f-\x9f\ufeff\ufffe\uffff]", lambda m: f"\\u{ord(m.group()):04x}", body)
    text = "doc: " + body
    expected = _load(text)
    values, rendered = _roundtrip(text, tmp_path)
    assert _plain(values) == expected
    assert _load(rendered) == expected


@given(st.one_of(texts, ints, floats, st.booleans(), stamps), st.text(max_size=20))
def test_value_codec_round_trip(value: Any, aad: str) -> None:
    cipher = Cipher(bytes(range(32)))
    token = cipher.encrypt(value, aad)
    if value == "":
        assert token == ""
        return
    back = cipher.decrypt(token, aad)
    if isinstance(value, datetime):
        assert back == Timestamp.from_datetime(value)
    elif isinstance(value, float):
        # sops stores floats in Go's shortest form; the value is exact.
        assert back == value and format_float(back) == format_float(value)
    else:
        assert back == value and type(back) is type(value)
    assert to_bytes(back) == to_bytes(value)


def test_comment_codec() -> None:
    cipher = Cipher(bytes(32))
    token = cipher.encrypt(Comment(" a comment"), "nested:")
    assert token.endswith("type:comment]")
    assert cipher.decrypt(token, "nested:") == Comment(" a comment")


def test_go_float_format() -> None:
    cases = {2.0: "2", 1e21: "1000000000000000000000", 3.14: "3.14", -0.0: "-0", 1e-7: "0.0000001"}
    for value, text in cases.items():
        assert format_float(value) == text


def test_timestamp_text_keeps_offset() -> None:
    moment = datetime(2006, 1, 2, 15, 4, 5, tzinfo=timezone(timedelta(hours=7, minutes=6)))
    assert Timestamp.from_datetime(moment).text == "2006-01-02T15:04:05+07:06"


def test_renderer_escapes_line_breaks() -> None:
    from kagura_ops.sops.yamlscalars import render_scalar

    for text in ("a\x85b", "a\u2028b", "tab\tand\x01control"):
        rendered = render_scalar(text)
        assert rendered.startswith('"')
        assert all(ch not in rendered for ch in ("\x85", "\u2028", "\x01"))
        assert _load(f"k: {rendered}") == {"k": text}


def test_value_that_looks_encrypted_is_refused(tmp_path: Path) -> None:
    import pytest

    from kagura_ops.errors import FormatError

    with pytest.raises(FormatError, match="already holds an ENC"):
        _roundtrip("a: ENC[AES256_GCM,\n", tmp_path)
