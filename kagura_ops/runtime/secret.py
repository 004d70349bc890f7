"""``Secret``: a decrypted value that never shows itself by accident.

Display paths show ``***``: ``repr`` gives ``Secret('***')``; ``str``, f-strings,
``format``, ``%s``, ``logging`` and ``json.dumps`` give ``***``. The value comes
out only through :meth:`Secret.reveal`.

Why a ``str`` subclass whose text is ``***``: ``json.dumps`` (C encoder and
Python encoder alike) only writes ``str`` instances, so that is the one way to
make it print ``***`` instead of failing. The other half of the contract is that
a Secret is *not silently usable as a str*: every operation that would use the
text as data raises :class:`TypeError` with a hint to call ``.reveal()``:
``encode`` (so ``requests``/``httpx``/``http.client`` headers, ``os.environ``
and ``subprocess`` environments fail loudly instead of sending ``***``),
concatenation, a Secret used as a ``%`` template, indexing,
iteration, ``len``, ``in``, ordering and every ``str`` method.

Known gaps, inherent to any ``str`` subclass: C functions that read the text
buffer directly (``"".join``, ``re``, ``hmac.compare_digest``, ``sqlite3``
parameters, ``bytes(s, enc)``) see ``***``. Compare with ``==`` (constant time)
and pass ``.reveal()`` wherever the value is needed.

Equality is constant-time (:func:`hmac.compare_digest`) against another Secret
or a plain value; a Secret is unhashable (its hash would be an oracle).
``pickle`` and ``copyreg`` refuse it; ``copy``/``deepcopy`` return it unchanged.
"""

from __future__ import annotations

import hmac
from typing import Any, NoReturn

__all__ = ["MASK", "Secret"]

MASK = "***"

_HINT = "Secret values are not strings: call .reveal() where the value is really needed"


def _refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise TypeError(_HINT)


def _bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return f"{type(value).__name__}:{value!s}".encode("utf-8", "surrogatepass")


class Secret(str):
    """A secret value; ``.reveal()`` returns it, everything else shows ``***``."""

    __slots__ = ("_value",)
    _value: object

    def __new__(cls, value: object) -> Secret:
        if isinstance(value, Secret):
            value = value.reveal()
        self = super().__new__(cls, MASK)
        object.__setattr__(self, "_value", value)
        return self

    def reveal(self) -> Any:
        """The value (str, int, float, bool or time text, as it was encrypted)."""
        return self._value

    # -- display: always the mask --------------------------------------------------------

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)

    def __rich_repr__(self) -> Any:  # pragma: no cover - for rich's pretty printer
        yield MASK

    # -- equality: constant time, no hash ----------------------------------------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            other = other._value
        elif isinstance(other, str | bytes | int | float):
            pass
        else:
            return NotImplemented
        return hmac.compare_digest(_bytes(self._value), _bytes(other))

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> bool:
        return bool(self._value)

    # -- no serialisation, no copies of the value ------------------------------------------

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("Secret values cannot be pickled: pass .reveal() explicitly if you must")

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret values cannot be pickled: pass .reveal() explicitly if you must")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: Any) -> Secret:
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Secret is immutable")

    def __getnewargs__(self) -> NoReturn:
        _refuse()

    # -- not usable as text -------------------------------------------------------------

    def encode(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse()

    def __rmod__(self, template: object) -> Any:
        # "%s" % secret is display formatting, like an f-string: it shows the mask.
        if isinstance(template, str):
            return template % (MASK,)
        return NotImplemented

    __add__ = __radd__ = __mul__ = __rmul__ = __mod__ = _refuse
    __getitem__ = __iter__ = __len__ = __contains__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = _refuse


# Every other public str method would operate on the mask: refuse them all.
for _name in dir(str):
    if not _name.startswith("_") and _name != "encode":
        setattr(Secret, _name, _refuse)
del _name
