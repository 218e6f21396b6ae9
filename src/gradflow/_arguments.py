"""Groups of arguments that several public callables take, each declared once.

A group is a frozen dataclass: its fields are the arguments, with their defaults (a field marked
keyword-only is a keyword-only argument). `takes(Group, into=name)` makes a function take the
group's fields as its own arguments and gathers them into one `Group` passed as `name`: a new
argument, or a new default, is then written once for every function that takes the group, and
the signature that `help` and `inspect.signature` show still lists every argument.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

_POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD
_KEYWORD = inspect.Parameter.KEYWORD_ONLY


def takes(group: type, *, into: str) -> Callable[[Callable], Callable[..., Any]]:
    """Decorator: `fn(..., <into>: group)` as a function that takes `group`'s fields themselves.

    The signature is `fn`'s positional parameters, then the group's fields (positional-or-keyword,
    or keyword-only where the field is `kw_only`), then `fn`'s keyword-only parameters. A call is
    bound to it as any call is (`TypeError` for a missing, unknown or repeated argument), and the
    group's arguments, given or defaulted, reach `fn` as one `group(...)`.

    The result is typed `Callable[..., Any]`: a static type checker cannot see the signature made
    here, and would otherwise check calls against `fn`'s own (with `into`), refusing the group's
    keywords. `help`, `inspect.signature` and IPython's completion read the real one.
    """
    fields = dataclasses.fields(group)
    shared = [
        inspect.Parameter(
            f.name,
            _KEYWORD if f.kw_only else _POSITIONAL,
            default=inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default,
            annotation=f.type,
        )
        for f in fields
    ]

    def decorate(fn: Callable) -> Callable[..., Any]:
        own = [p for p in inspect.signature(fn).parameters.values() if p.name != into]
        if any(p.kind not in (_POSITIONAL, _KEYWORD) for p in own):
            raise TypeError(f"{fn.__qualname__}: only named parameters go with a group")
        signature = inspect.signature(fn).replace(
            parameters=[p for p in own if p.kind == _POSITIONAL]
            + [p for p in shared if p.kind == _POSITIONAL]
            + [p for p in shared if p.kind == _KEYWORD]
            + [p for p in own if p.kind == _KEYWORD]
        )

        @functools.wraps(fn)
        def taking_group(*args, **kwargs):
            try:
                arguments = signature.bind(*args, **kwargs).arguments
            except TypeError as err:
                raise TypeError(f"{fn.__qualname__}() {err}") from None
            given = {f.name: arguments.pop(f.name) for f in fields if f.name in arguments}
            return fn(**arguments, **{into: group(**given)})

        taking_group.__signature__ = signature
        return taking_group

    return decorate
