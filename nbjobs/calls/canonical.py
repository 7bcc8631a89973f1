"""The canonical form of a value, hashed: what an automatic key digests (`Canon`).

Typed, length-prefixed tokens fed to blake2b, never raw pickle bytes: dict and set order do not
matter, a list differs from a tuple, a function is its name, source (or bytecode), defaults,
closure and the notebook functions it calls, NumPy arrays and pandas objects hash their data.
NumPy, pandas and joblib are imported only when a value needs them. The keys built from it are
nbjobs/calls/autokey.py.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import importlib
import inspect
import math
import pickle
import struct
import types
from collections.abc import Callable, Iterator
from typing import Any, Final

_DIGEST_SIZE: Final = 16
LEN: Final = struct.Struct("<Q")
_FLOAT: Final = struct.Struct("<d")
_FUNCTION_TYPES: Final = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    functools.partial,
    type,
)


class Unhashable(Exception):
    """A value the canonical form cannot describe; the message says what it was."""


def _qualified_name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', None)}"


def _source(obj: Any) -> str | None:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return None


_TAG_PREFIXES: dict[bytes, bytes] = {}  # tag -> its length byte and itself (tags are literals)


class Canon:
    """Feeds a canonical form of values to blake2b: typed, length-prefixed tokens.

    Sub-hashers (for the items of dicts and sets, sorted by digest) share `active`, the
    containers being traversed, so a cycle becomes a back-reference instead of a recursion.
    """

    def __init__(self, active: dict[int, int] | None = None) -> None:
        self._hash = hashlib.blake2b(digest_size=_DIGEST_SIZE)
        self._active = {} if active is None else active

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def copy(self) -> Canon:
        """A hasher that continues from this one's state (this one is left as it is)."""
        twin = Canon()
        twin._hash = self._hash.copy()
        return twin

    def token(self, tag: bytes, data: bytes | memoryview = b"") -> None:
        prefix = _TAG_PREFIXES.get(tag)
        if prefix is None:
            prefix = _TAG_PREFIXES[tag] = bytes((len(tag),)) + tag
        self._hash.update(prefix + LEN.pack(len(data)))
        self._hash.update(data)

    def text(self, tag: bytes, text: str) -> None:
        self.token(tag, text.encode("utf-8", "surrogatepass"))

    def value(self, x: Any) -> None:
        plain = _PLAIN.get(type(x))
        if plain is not None:
            plain(self, x)
            return
        nested = _NESTED.get(type(x))
        if nested is not None:
            self._guarded(x, nested)
            return
        self._other(x)

    def _guarded(self, x: Any, feed: Callable[[Canon, Any], None]) -> None:
        depth = self._active.get(id(x))
        if depth is not None:
            self.token(b"cycle", LEN.pack(depth))
            return
        self._active[id(x)] = len(self._active)
        try:
            feed(self, x)
        finally:
            del self._active[id(x)]

    def _other(self, x: Any) -> None:
        module = type(x).__module__
        if module.startswith("numpy") and self._numpy(x):
            return
        if module.startswith("pandas") and self._pandas(x):
            return
        if isinstance(x, enum.Enum):
            self.text(b"enum", f"{_qualified_name(type(x))}.{x.name}")
        elif isinstance(x, _FUNCTION_TYPES):
            self.callable_(x)
        elif dataclasses.is_dataclass(x) and not isinstance(x, type):
            self._guarded(x, Canon._dataclass)
        else:
            self._fallback(x)

    # ------------------------------------------------------------------ containers
    def _sequence(self, tag: bytes, items: tuple[Any, ...] | list[Any]) -> None:
        self.token(tag, LEN.pack(len(items)))
        for item in items:
            self.value(item)

    def _unordered(self, tag: bytes, groups: Iterator[tuple[Any, ...]]) -> None:
        digests = sorted(self._sub_digest(group) for group in groups)
        self.token(tag, b"".join(digests))

    def _sub_digest(self, group: tuple[Any, ...]) -> bytes:
        sub = Canon(self._active)
        for x in group:
            sub.value(x)
        return sub._hash.digest()

    def _dataclass(self, x: Any) -> None:
        self.text(b"dataclass", _qualified_name(type(x)))
        for field in dataclasses.fields(x):
            self.text(b"field", field.name)
            self.value(getattr(x, field.name))

    # ------------------------------------------------------------------ functions
    def callable_(self, fn: Any) -> None:
        """The function's identity: name, then source or bytecode, and what it carries."""
        if isinstance(fn, functools.partial):
            self.token(b"partial")
            self.callable_(fn.func)
            self.value(fn.args)
            self.value(fn.keywords)
        elif isinstance(fn, types.MethodType):
            self.token(b"method")
            self.value(fn.__self__)
            self.callable_(fn.__func__)
        elif isinstance(fn, types.FunctionType):
            self._guarded(fn, Canon._function)
        elif isinstance(fn, type):
            self._guarded(fn, Canon._class)
        elif hasattr(fn, "__qualname__"):
            self._named(fn)
        else:  # an instance with __call__: its class and its state
            self.value(fn)

    def _function(self, fn: types.FunctionType) -> None:
        self.text(b"function", _qualified_name(fn))
        source = _source(fn)
        # A lambda's source is its whole line, shared by every lambda on that line.
        if source is None or fn.__name__ == "<lambda>":
            self._code(fn.__code__)
        if source is not None:
            self.text(b"source", source)
        self.value(fn.__defaults__)
        self.value(fn.__kwdefaults__)
        self._closure(fn.__closure__ or ())
        for helper in _helpers(fn):
            self.callable_(helper)

    def _closure(self, cells: tuple[types.CellType, ...]) -> None:
        self.token(b"closure", LEN.pack(len(cells)))
        for cell in cells:
            try:
                contents = cell.cell_contents
            except ValueError:  # a cell not assigned yet
                self.token(b"empty cell")
            else:
                self.value(contents)

    def _code(self, code: types.CodeType) -> None:
        """Bytecode, names and constants; never the file name or line numbers."""
        self.token(b"code", code.co_code)
        self.text(b"co_name", code.co_name)
        self.value(
            (code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags)
        )
        self.value((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars))
        self.token(b"consts", LEN.pack(len(code.co_consts)))
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self._code(const)
            else:
                self.value(const)

    def _class(self, cls: type) -> None:
        self.text(b"class", _qualified_name(cls))
        source = _source(cls)
        if source is not None:
            self.text(b"source", source)
            return
        for name, member in sorted(vars(cls).items()):
            member = getattr(member, "__func__", member)
            if isinstance(member, types.FunctionType):
                self.text(b"member", name)
                self.callable_(member)

    def _named(self, fn: Any) -> None:
        """A builtin or other named callable: its name, its source if any, its owner."""
        self.text(b"named", _qualified_name(fn))
        self.text(b"source", _source(fn) or "")
        owner = getattr(fn, "__self__", None)
        if owner is not None and not isinstance(owner, types.ModuleType):
            self.value(owner)

    # ------------------------------------------------------------------ libraries
    def _numpy(self, x: Any) -> bool:
        import numpy as np

        if isinstance(x, np.generic):
            self.token(b"np.scalar")
            x = np.asarray(x)
        elif type(x) is not np.ndarray:
            return False
        self.text(b"np.dtype", str(x.dtype.descr))
        self.value(x.shape)
        if x.dtype.hasobject:
            self.value(x.reshape(-1).tolist())
        elif x.dtype.itemsize:
            self.token(b"np.data", np.ascontiguousarray(x).reshape(-1).view(np.uint8).data)
        return True

    def _pandas(self, x: Any) -> bool:
        pd = _library("pandas")

        if isinstance(x, pd.Index):
            self.text(b"pd.Index", repr(x.dtype))
            self.value(list(x.names))
        elif isinstance(x, pd.Series):
            self.text(b"pd.Series", repr(x.dtype))
            self.value(x.name)
            self.value(x.index)
        elif isinstance(x, pd.DataFrame):
            self.text(b"pd.DataFrame", repr([repr(dtype) for dtype in x.dtypes]))
            self.value(x.columns)
            self.value(x.index)
        else:
            return False
        self._pandas_data(x)
        return True

    def _pandas_data(self, x: Any) -> None:
        import numpy as np

        pd = _library("pandas")
        try:
            rows = pd.util.hash_pandas_object(x, index=False).to_numpy(np.uint64)
        except TypeError:  # unhashable cells, such as lists
            self._fallback(x)
            return
        self.token(b"pd.rows", np.ascontiguousarray(rows).view(np.uint8).data)

    def _fallback(self, x: Any) -> None:
        """joblib.hash (canonical for sets, fast for arrays) when installed, else pickle."""
        self.text(b"object", _qualified_name(type(x)))
        try:
            joblib = _library("joblib")
        except ImportError:
            # Without joblib a set inside an object follows PYTHONHASHSEED: such a key can
            # change after a kernel restart, which re-runs the job rather than reusing it.
            self.token(b"pickle", _pickled(x))
            return
        try:
            self.text(b"joblib", joblib.hash(x))
        except Exception as exc:
            raise Unhashable(f"{type(x).__name__} ({type(exc).__name__}: {exc})") from exc


def _library(name: str) -> Any:
    """Import an untyped optional library (pandas, joblib) lazily, as `Any`."""
    return importlib.import_module(name)


def _pickled(x: Any) -> bytes:
    try:
        return pickle.dumps(x, protocol=5)
    except Exception as exc:
        raise Unhashable(f"{type(x).__name__} ({type(exc).__name__}: {exc})") from exc


def _helpers(fn: types.FunctionType) -> list[types.FunctionType]:
    """Functions of `fn`'s own module (the notebook) that it names, so editing them counts."""
    found = []
    for name in sorted(_names(fn.__code__)):
        helper = fn.__globals__.get(name)
        if isinstance(helper, types.FunctionType) and helper.__module__ == fn.__module__:
            found.append(helper)
    return found


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _float(canon: Canon, x: float) -> None:
    # Every NaN is one value; -0.0 and 0.0 stay apart, as 1/x tells them apart.
    canon.token(b"float", b"nan" if math.isnan(x) else _FLOAT.pack(x))


def _complex(canon: Canon, x: complex) -> None:
    canon.token(b"complex")
    _float(canon, x.real)
    _float(canon, x.imag)


def _int(canon: Canon, x: int) -> None:
    canon.token(b"int", x.to_bytes(x.bit_length() // 8 + 1, "little", signed=True))


_PLAIN: Final[dict[type, Callable[[Canon, Any], None]]] = {
    type(None): lambda canon, x: canon.token(b"none"),
    bool: lambda canon, x: canon.token(b"bool", b"\x01" if x else b"\x00"),
    int: _int,
    float: _float,
    complex: _complex,
    str: lambda canon, x: canon.text(b"str", x),
    bytes: lambda canon, x: canon.token(b"bytes", x),
    bytearray: lambda canon, x: canon.token(b"bytearray", bytes(x)),
}

_NESTED: Final[dict[type, Callable[[Canon, Any], None]]] = {
    tuple: lambda canon, x: canon._sequence(b"tuple", x),
    list: lambda canon, x: canon._sequence(b"list", x),
    dict: lambda canon, x: canon._unordered(b"dict", iter(x.items())),
    set: lambda canon, x: canon._unordered(b"set", ((item,) for item in x)),
    frozenset: lambda canon, x: canon._unordered(b"frozenset", ((item,) for item in x)),
}
