"""``Secret`` never shows its value: repr, str, format, logging, json, pickle, copies."""

from __future__ import annotations

import copy
import json
import logging
import os
import pickle

import pytest

from kagura_ops import Secret

VALUE = "sk-never-shown-0123456789"


def test_display_paths_show_the_mask(caplog: pytest.LogCaptureFixture) -> None:
    s = Secret(VALUE)
    shown = [
        repr(s),
        str(s),
        f"{s}",
        f"{s!r}",
        f"{s:>10}",
        f"{s}",
        "%s" % s,  # noqa: UP031
        "%s %r" % (s, s),  # noqa: UP031
        json.dumps({"key": s}),
        json.dumps([s], indent=2),
        repr({"nested": [s]}),
    ]
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("key=%s", s)
        logging.getLogger("t").info(s)
        logging.getLogger("t").info({"k": s})
    shown += [r.getMessage() for r in caplog.records]
    for text in shown:
        assert VALUE not in text
        assert "***" in text
    assert repr(s) == "Secret('***')" and str(s) == "***"
    assert json.loads(json.dumps({"k": s})) == {"k": "***"}


def test_reveal_and_constant_time_equality() -> None:
    s = Secret(VALUE)
    assert s.reveal() == VALUE
    assert s == VALUE and s == Secret(VALUE) and s != "***" and s != "other"
    assert Secret(42).reveal() == 42 and Secret(42) == 42 and Secret(42) != "42"
    assert not Secret("") and Secret("x")
    with pytest.raises(TypeError):
        hash(s)


def test_not_silently_usable_as_a_string() -> None:
    s = Secret(VALUE)
    attempts = [
        lambda: "Bearer " + s,
        lambda: s + "x",
        lambda: s.encode(),
        lambda: s.upper(),
        lambda: s.startswith("sk"),
        lambda: len(s),
        lambda: s[0],
        lambda: list(s),
        lambda: "sk" in s,
        lambda: s < "a",
        lambda: os.fsencode(s),
    ]
    for attempt in attempts:
        with pytest.raises(TypeError, match=r"reveal\(\)"):
            attempt()
    env = dict(os.environ)
    env["X"] = s  # a dict is fine; handing it to the OS is not:
    with pytest.raises(TypeError):
        os.environ["KAGURA_TEST_SECRET"] = s
    assert "KAGURA_TEST_SECRET" not in os.environ


def test_http_clients_fail_loudly() -> None:
    import http.client

    import requests

    with pytest.raises(TypeError, match=r"reveal\(\)"):
        # Port 9 (discard): the request must fail before anything is sent.
        requests.get("http://127.0.0.1:9/", headers={"Authorization": Secret(VALUE)}, timeout=2)
    conn = http.client.HTTPConnection("127.0.0.1", 9)
    conn.putrequest("GET", "/")
    with pytest.raises(TypeError):
        conn.putheader("Authorization", Secret(VALUE))


def test_no_pickle_and_copies_are_the_same_object() -> None:
    s = Secret(VALUE)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError):
            pickle.dumps(s, protocol=protocol)
        with pytest.raises(TypeError):
            pickle.dumps({"nested": [s]}, protocol=protocol)
    assert copy.copy(s) is s and copy.deepcopy({"a": s})["a"] is s
    assert not hasattr(s, "__dict__")
    with pytest.raises(AttributeError):
        s._value = "changed"  # type: ignore[misc]
