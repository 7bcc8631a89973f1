"""Whether a call fits its function, told at submit rather than when the job runs.

`check` compares a call's positional count and keyword names with the function's
parameters: a call the function cannot take is refused (`InvalidArgumentType`, as Python
would raise, with a hint at the name that was meant) before anything is stored. A keyword
given straight to `submit` that a `**kwargs` function would swallow, but that is a near miss
of a job option's name (`retires=3`), is passed on with a warning. Callables whose
parameters cannot be told (many builtins) are accepted as they are.

The parameter facts are read once per function object: `inspect.signature` costs tens of
µs, and `submit` is called in loops.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import types
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nbjobs import validate
from nbjobs.calls.call import fn_name
from nbjobs.errors import InvalidArgumentType

_P = inspect.Parameter
_POSITIONAL = (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)


@dataclass(frozen=True, slots=True)
class Params:
    """What a callable accepts: enough to tell whether a call fits, without binding it."""

    name: str  # "fit()", for messages
    positional: tuple[str, ...]  # the parameters that take an argument by position
    posonly: int  # how many of those take it by position only
    least: int  # fewest positional arguments a call without keywords needs
    most: float  # most positional arguments (inf with *args)
    named: frozenset[str]  # the parameters that take an argument by keyword
    required: frozenset[str]  # the parameters without a default
    keyword_required: bool  # some keyword-only parameter has no default
    varkw: bool  # **kwargs

    def bound(self) -> Params:
        """The facts of the function bound as a method: its first positional is taken."""
        if not self.positional:
            return self  # `def f(*args)`: the instance goes into args
        first = self.positional[0]
        return Params(
            self.name,
            self.positional[1:],
            max(self.posonly - 1, 0),
            max(self.least - 1, 0),
            self.most - 1,
            self.named - {first},
            self.required - {first},
            self.keyword_required,
            self.varkw,
        )


_FACTS: weakref.WeakKeyDictionary[Any, Params | None] = weakref.WeakKeyDictionary()
_BOUND: weakref.WeakKeyDictionary[Any, Params | None] = weakref.WeakKeyDictionary()


def params(fn: Callable[..., Any]) -> Params | None:
    """The parameter facts of `fn` (None: they cannot be told), once per function object.

    >>> params(lambda n, alpha=0.1: None).named == {"n", "alpha"}
    True
    """
    if type(fn) is types.MethodType:
        # A new object at each attribute access: the facts are kept on its function.
        return _cached(_BOUND, fn.__func__, lambda f: _bound(params(f)))
    return _cached(_FACTS, fn, _read)


def _cached(
    cache: weakref.WeakKeyDictionary[Any, Params | None],
    fn: Any,
    read: Callable[[Any], Params | None],
) -> Params | None:
    try:
        return cache[fn]
    except (KeyError, TypeError):
        pass
    facts = read(fn)
    with contextlib.suppress(TypeError):  # not weakly referenceable: read again next time
        cache[fn] = facts
    return facts


def _bound(facts: Params | None) -> Params | None:
    return None if facts is None else facts.bound()


def _read(fn: Callable[..., Any]) -> Params | None:
    if type(fn) is types.FunctionType:
        return _from_code(fn)
    try:
        # What `fn` itself accepts: a decorator's wrapper may take more than what it wraps.
        sig = inspect.signature(fn, follow_wrapped=False)
    except Exception:  # no signature (builtins), or a callable inspect cannot read
        return None
    items = list(sig.parameters.values())
    positional = [p for p in items if p.kind in _POSITIONAL]
    empty = _P.empty
    return Params(
        _label(fn),
        tuple(p.name for p in positional),
        sum(p.kind is _P.POSITIONAL_ONLY for p in positional),
        max((i + 1 for i, p in enumerate(positional) if p.default is empty), default=0),
        math.inf if any(p.kind is _P.VAR_POSITIONAL for p in items) else len(positional),
        frozenset(p.name for p in items if p.kind in (_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)),
        frozenset(p.name for p in items if p.default is empty and p.kind not in _VARIADIC),
        any(p.kind is _P.KEYWORD_ONLY and p.default is empty for p in items),
        any(p.kind is _P.VAR_KEYWORD for p in items),
    )


_VARIADIC = (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)


def _from_code(fn: types.FunctionType) -> Params:
    """A plain function's facts from its code: what a call actually checks, and ~20x faster
    than `inspect.signature` (a lambda made anew for each submit is read each time)."""
    code = fn.__code__
    names = code.co_varnames
    n_pos, n_kw = code.co_argcount, code.co_kwonlyargcount
    positional = names[:n_pos]
    keyword_only = names[n_pos : n_pos + n_kw]
    least = n_pos - len(fn.__defaults__ or ())
    kw_defaults = fn.__kwdefaults__ or {}
    missing_kw = frozenset(k for k in keyword_only if k not in kw_defaults)
    return Params(
        _label(fn),
        positional,
        code.co_posonlyargcount,
        least,
        math.inf if code.co_flags & inspect.CO_VARARGS else n_pos,
        frozenset(positional[code.co_posonlyargcount :] + keyword_only),
        frozenset(positional[:least]) | missing_kw,
        bool(missing_kw),
        bool(code.co_flags & inspect.CO_VARKEYWORDS),
    )


def _label(fn: Callable[..., Any]) -> str:
    return f"{fn_name(fn)}()"


def check(
    fn: Callable[..., Any],
    nargs: int,
    kwargs: Mapping[str, Any],
    loose: Iterable[str] = (),
    options: Iterable[str] = (),
    *,
    warn: bool = True,
) -> None:
    """Refuse a call `fn(<nargs positional>, **kwargs)` that `fn` cannot take, naming what
    was meant; warn (unless not to `warn`) about the `loose` keywords (given straight to the
    caller, not through `kwargs={...}`) that `fn`'s `**kwargs` would take but that are near
    misses of one of the `options` (the caller's own option names).

    >>> check(lambda n, alpha=0.1: None, 1, {"alpah": 2})
    Traceback (most recent call last):
    ...
    nbjobs.errors.InvalidArgumentType: <lambda>() takes no keyword argument 'alpah' ...
    """
    try:
        facts = _FACTS[fn]  # inline: the usual submit pays one lookup, no more calls
    except (KeyError, TypeError):
        facts = params(fn)
    if facts is None:
        return
    if not kwargs and facts.least <= nargs <= facts.most and not facts.keyword_required:
        return  # the usual call: positional arguments that fit
    fits = _fits(facts, nargs, kwargs)
    if fits and not (warn and facts.varkw):
        return
    direct, names = tuple(loose), tuple(options)
    if not fits:
        problem = _problem(facts, nargs, kwargs, direct, names)
        if problem:
            raise InvalidArgumentType(f"{problem}; nothing was stored")
    if warn and facts.varkw:
        for word in direct:
            meant = None if word in facts.named else closest(word, names)
            if meant is not None:
                validate.warn(
                    f"the keyword argument {word!r} is not a job option, so it goes to "
                    f"{facts.name[:-1]}(**kwargs); did you mean {meant}=? (pass it as "
                    f"kwargs={{{word!r}: ...}} to mean the function's own, without this warning)"
                )


def _fits(facts: Params, nargs: int, kwargs: Mapping[str, Any]) -> bool:
    """The quick yes for a call with keywords: each names a parameter not already given by
    position, and nothing required is left out (False: ask `_problem`)."""
    if nargs > facts.most or nargs < facts.least or facts.keyword_required:
        return False
    if not (facts.varkw or facts.named.issuperset(kwargs)):
        return False
    return kwargs.keys().isdisjoint(facts.positional[:nargs])


def _problem(
    facts: Params,
    nargs: int,
    kwargs: Mapping[str, Any],
    loose: tuple[str, ...],
    options: tuple[str, ...],
) -> str:
    """Why the call does not fit, as Python would say it with a hint; '' if it fits. A
    keyword given through `kwargs={...}` is meant for the function: only a `loose` one may
    be a misspelt option."""
    fn = facts.name
    if nargs > facts.most:
        return (
            f"{fn} takes at most {int(facts.most)} positional argument(s) "
            f"({', '.join(facts.positional) or 'none'}), but the call gives {nargs}"
        )
    for word in kwargs:
        at = facts.positional.index(word) if word in facts.positional else -1
        if 0 <= at < nargs and word in facts.named:
            return f"{fn} got the argument {word!r} twice: by position and as {word}="
        if word in facts.named or facts.varkw:
            continue
        if 0 <= at < facts.posonly:
            return f"{fn} takes {word!r} by position only (a positional-only parameter)"
        meant = closest(word, (*sorted(facts.named), *(options if word in loose else ())))
        hint = "" if meant is None else f"; did you mean {meant}=?"
        takes = ", ".join(sorted(facts.named)) or "no keyword arguments"
        return f"{fn} takes no keyword argument {word!r} (it takes {takes}){hint}"
    given = set(facts.positional[:nargs]) | {k for k in kwargs if k in facts.named}
    order = (*facts.positional, *sorted(facts.named - set(facts.positional)))
    missing = [p for p in order if p in facts.required and p not in given]
    if not missing:
        return ""
    text = f"{fn} is missing the argument(s) {', '.join(map(repr, missing))}"
    taken = [p for p in missing if p in options]
    if taken:
        text += (
            f" ({taken[0]}= is a job option, taken by nbjobs for itself; pass the function's "
            f"own through kwargs={{{taken[0]!r}: ...}})"
        )
    return text


@functools.lru_cache(maxsize=1024)  # a loop of submits asks about the same words
def closest(word: str, names: tuple[str, ...]) -> str | None:
    """The name `word` is most likely a misspelling of: one edit away from a name of up to
    four letters, two from a longer one; None if there is none.

    >>> closest("retires", ("retries", "retry_on", "timeout"))
    'retries'
    """
    best: tuple[int, str] | None = None
    for name in names:
        if name == word:
            continue
        edits = _edits(word, name)
        if edits <= (1 if len(name) <= 4 else 2) and (best is None or edits < best[0]):
            best = (edits, name)
    return None if best is None else best[1]


def _edits(a: str, b: str) -> int:
    """Insertions, deletions, substitutions and swaps of neighbours that turn `a` into `b`."""
    if abs(len(a) - len(b)) > 2:
        return 3  # farther than any hint reaches
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            cost = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, prev2[j - 2] + 1)
            row.append(cost)
        prev2, prev = prev, row
    return prev[-1]
