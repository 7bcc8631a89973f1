"""Pickling in and out: the only module that imports cloudpickle.

Values are encoded as *frames*: one pickle stream plus its out-of-band buffers
(pickle protocol 5), so a large NumPy array is written to disk and read back
without an extra copy in memory.
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import hashlib
import io
import mmap
import os
import pickle
import platform
import struct
import traceback
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import cloudpickle

from nbjobs.errors import JobFailed, PayloadLoadError

PROTOCOL = 5
VERSIONS = {"python": platform.python_version(), "cloudpickle": cloudpickle.__version__}
_MAGIC = b"NBJF"


class Readable(Protocol):
    def read(self, n: int, /) -> bytes: ...

    def readinto(self, buffer: memoryview, /) -> int | None: ...


_HEADER = struct.Struct("<4sI")
_LEN = struct.Struct("<Q")
_ONE_FRAME = _HEADER.pack(_MAGIC, 1)  # the header of a value without out-of-band buffers


@dataclass(slots=True)
class Frames:
    """A pickled value: the pickle stream and the raw buffers it refers to."""

    main: bytes
    buffers: tuple[memoryview, ...] = ()

    @property
    def size(self) -> int:
        if not self.buffers:
            return len(self.main)
        return len(self.main) + sum(b.nbytes for b in self.buffers)

    def chunks(self) -> Iterable[bytes | memoryview]:
        """The bytes to write: header, lengths, then each frame."""
        yield _HEADER.pack(_MAGIC, 1 + len(self.buffers))
        yield _LEN.pack(len(self.main))
        for buf in self.buffers:
            yield _LEN.pack(buf.nbytes)
        yield self.main
        yield from self.buffers

    def to_bytes(self) -> bytes:
        if not self.buffers:  # most values: one frame
            return _ONE_FRAME + _LEN.pack(len(self.main)) + self.main
        return b"".join(self.chunks())


def dumps(value: Any) -> Frames:
    """Pickle `value` (plain pickle first, cloudpickle for what it cannot do).

    Raises `pickle.PicklingError`, `TypeError` or `AttributeError` when neither can.
    """
    buffers: list[pickle.PickleBuffer] = []
    try:
        main = pickle.dumps(value, PROTOCOL, buffer_callback=buffers.append)
    except Exception:
        buffers.clear()
        main = cloudpickle.dumps(value, PROTOCOL, buffer_callback=buffers.append)
    return Frames(main, tuple(_raw(b) for b in buffers) if buffers else ())


def _raw(buf: pickle.PickleBuffer) -> memoryview:
    try:
        return buf.raw()
    except BufferError:  # not contiguous: let pickle copy it
        return memoryview(bytes(buf))


def loads(data: bytes | memoryview) -> Any:
    """Inverse of `Frames.to_bytes()`."""
    return read(io.BytesIO(data))


def read(stream: Readable) -> Any:
    """Load a value written as frames from a binary stream."""
    try:
        magic, count = _HEADER.unpack(_read_exactly(stream, _HEADER.size))
        if magic != _MAGIC:
            raise PayloadLoadError("not an nbjobs value (bad magic)")
        sizes = [_LEN.unpack(_read_exactly(stream, _LEN.size))[0] for _ in range(count)]
        main = _read_exactly(stream, sizes[0])
        bufs = []
        for size in sizes[1:]:
            buf = _writable(size)
            view = memoryview(buf)
            got = 0
            while got < size:
                n = stream.readinto(view[got:])
                if not n:
                    raise PayloadLoadError("truncated value")
                got += n
            bufs.append(buf)
        return pickle.loads(main, buffers=bufs)
    except PayloadLoadError:
        raise
    except Exception as exc:
        raise PayloadLoadError(
            f"a stored value could not be loaded ({type(exc).__name__}: {exc}); it was written "
            "by another Python or library version, or the store is damaged"
        ) from exc


_MMAP_FROM = 1 << 20
_MMAP_FLAGS = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)


def _writable(size: int) -> bytearray | mmap.mmap:
    """Writable memory to read a buffer into (arrays made on it stay writable).

    A big one is fresh private memory from the kernel: `bytearray(n)` zero-fills it first,
    which doubled the time to read a 500 MB array back.
    """
    if size < _MMAP_FROM or not _MMAP_FLAGS:
        return bytearray(size)
    return mmap.mmap(-1, size, flags=_MMAP_FLAGS)


def _read_exactly(stream: Readable, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise PayloadLoadError("truncated value")
    return data


# --------------------------------------------------------------------------- functions
_FN_CACHE: weakref.WeakKeyDictionary[Callable[..., Any], tuple[str, bytes, tuple[str, ...]]] = (
    weakref.WeakKeyDictionary()
)


def dump_function(fn: Callable[..., Any]) -> tuple[str, bytes]:
    """Cloudpickle `fn` once per function object; returns (digest, bytes).

    Globals the function uses are captured at its first submit. A global it uses that did
    not exist then (defined in a later cell) makes the next submit pickle it again:
    otherwise the job would fail with a `NameError` however often it is submitted.
    """
    try:
        digest_, data, missing = _FN_CACHE[fn]
    except (KeyError, TypeError):
        pass
    else:
        if not missing or not _any_defined(fn, missing):
            return digest_, data
    data = cloudpickle.dumps(fn, PROTOCOL)
    out = (hashlib.blake2b(data, digest_size=16).hexdigest(), data)
    with contextlib.suppress(TypeError):  # not weak-referenceable: pickled again next time
        _FN_CACHE[fn] = (*out, missing_globals(fn))
    return out


def _any_defined(fn: Callable[..., Any], names: tuple[str, ...]) -> bool:
    found: dict[str, Any] = getattr(fn, "__globals__", {})
    return any(name in found for name in names)


def missing_globals(fn: Callable[..., Any]) -> tuple[str, ...]:
    """Global names the code of `fn` (and of the functions of its module it calls) reads
    that are neither defined in its module nor builtins; () for other callables."""
    code = getattr(fn, "__code__", None)
    if code is None or not isinstance(getattr(fn, "__globals__", None), dict):
        return ()
    import dis  # only when a function is first pickled

    found: dict[str, Any] = fn.__globals__
    missing: set[str] = set()
    seen: set[int] = set()
    codes = [code]
    while codes:
        code = codes.pop()
        if id(code) in seen:
            continue
        seen.add(id(code))
        codes += [c for c in code.co_consts if hasattr(c, "co_code")]
        for ins in dis.get_instructions(code):
            if ins.opname not in _GLOBAL_OPS:
                continue
            value = found.get(ins.argval, _ABSENT)
            if value is _ABSENT:
                if ins.argval not in _BUILTINS:
                    missing.add(ins.argval)
            elif getattr(value, "__globals__", None) is found and hasattr(value, "__code__"):
                codes.append(value.__code__)  # a function of the same module: its globals too
    return tuple(sorted(missing))


_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"})
_ABSENT = object()
_BUILTINS = frozenset(dir(builtins))


def dump_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """Pickle a call's arguments (pickle first, cloudpickle as a fallback)."""
    try:
        return pickle.dumps((args, kwargs), PROTOCOL)
    except Exception:
        return bytes(cloudpickle.dumps((args, kwargs), PROTOCOL))


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


Value = tuple[str, Frames]
"""A large argument stored apart from its call: (the digest of its content, its frames)."""


def dump_apart(
    args: tuple[Any, ...], kwargs: dict[str, Any], limit: int
) -> tuple[bytes, list[tuple[str, Value]]]:
    """Pickle a call's arguments with each argument larger than `limit` bytes stored apart
    (its place refers to its digest); returns (the arguments' bytes, [(what, value)]), where
    `what` names the argument. Read them back with `load_args`.

    The frames of an argument refer to the memory of the caller's arrays (no copy), and its
    digest is SHA-256 of its content (the fastest hashlib digest here: 0.18 s for 200 MB).
    """
    named = [(f"argument {i}", a) for i, a in enumerate(args)]
    named += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    apart: dict[int, str] = {}
    values: list[tuple[str, Value]] = []
    for what, arg in named:
        if id(arg) in apart:  # the same object twice: stored once
            continue
        frames = dumps(arg)
        if frames.size > limit:
            h = hashlib.sha256()
            for chunk in frames.chunks():
                h.update(chunk)
            apart[id(arg)] = key = h.hexdigest()[:32]
            values.append((f"{what} ({type(arg).__name__})", (key, frames)))
    if not values:
        return dump_call(args, kwargs), []
    out = io.BytesIO()
    try:
        _Apart(out, apart).dump((args, kwargs))
    except Exception:
        out = io.BytesIO()
        _CloudApart(out, apart).dump((args, kwargs))
    return out.getvalue(), values


class _Apart(pickle.Pickler):
    """Pickles the arguments stored apart as references to their digests."""

    def __init__(self, file: io.BytesIO, apart: dict[int, str]) -> None:
        super().__init__(file, PROTOCOL)
        self.apart = apart  # id of the argument (alive while pickled) -> its digest

    def persistent_id(self, obj: Any) -> str | None:
        return self.apart.get(id(obj))


class _CloudApart(cloudpickle.Pickler):  # type: ignore[misc]
    def __init__(self, file: io.BytesIO, apart: dict[int, str]) -> None:
        super().__init__(file, PROTOCOL)
        self.apart = apart

    def persistent_id(self, obj: Any) -> str | None:
        return self.apart.get(id(obj))


class _Resolving(pickle.Unpickler):
    def __init__(self, data: bytes, values: Callable[[str], Any] | None) -> None:
        super().__init__(io.BytesIO(data))
        self.values = values

    def persistent_load(self, pid: Any) -> Any:
        if self.values is None:
            raise PayloadLoadError(
                f"the job's call refers to a large argument ({pid}) stored in the store's "
                "blobs/ folder, which this process cannot reach"
            )
        return self.values(str(pid))


def load_args(
    data: bytes, values: Callable[[str], Any] | None = None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A call's (args, kwargs) from `dump_call` or `dump_apart` bytes; `values(digest)`
    loads an argument stored apart (`store.blobs.values_in`)."""
    args, kwargs = _Resolving(data, values).load()
    return args, kwargs


CallParts = tuple[str, bytes, Any]
"""(function digest, pickled arguments, retry policy): `payload_blob(*parts)` is the stored
call, encoded by whoever writes it (the writer thread, for a submit without a key)."""


def payload_blob(fn_digest: str, args: bytes, policy: Any = None) -> bytes:
    """The persisted call: function digest, pickled arguments, the retry policy (if any)
    and the versions that wrote them."""
    meta: dict[str, Any] = {"fn": fn_digest, "args": args, **VERSIONS}
    if policy is not None:
        with contextlib.suppress(Exception):  # a policy that cannot be kept is not resumed
            meta["policy"] = cloudpickle.dumps(policy, PROTOCOL)
    return pickle.dumps(meta, PROTOCOL)


def payload_policy(blob: bytes) -> Any:
    """The retry policy stored with a payload, or None; raises `PayloadLoadError` when it
    cannot be loaded."""
    meta = pickle.loads(blob)
    data = meta.get("policy")
    try:
        return pickle.loads(data) if data else None
    except Exception as exc:
        raise _unloadable("retry policy", meta, exc) from exc


def load_plain(blob: bytes) -> Any:
    """Load a blob nbjobs itself pickled from plain data (logs, attempt entries)."""
    return pickle.loads(blob)


def payload_args(blob: bytes) -> bytes:
    """The pickled arguments inside a payload blob."""
    args: bytes = pickle.loads(blob)["args"]
    return args


def load_payload(
    blob: bytes, fn_blob: bytes, values: Callable[[str], Any] | None = None
) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """Re-create (fn, args, kwargs) from stored bytes, with a clear error when impossible
    (`values`: see `load_args`)."""
    meta = pickle.loads(blob)
    try:
        fn = pickle.loads(fn_blob)
        args, kwargs = load_args(meta["args"], values)
    except PayloadLoadError:
        raise
    except Exception as exc:
        raise _unloadable("function or arguments", meta, exc) from exc
    return fn, args, kwargs


def _unloadable(what: str, meta: dict[str, Any], exc: Exception) -> PayloadLoadError:
    return PayloadLoadError(
        f"the job's {what} could not be loaded ({type(exc).__name__}: {exc}); "
        f"its call was stored by Python {meta.get('python')} with cloudpickle "
        f"{meta.get('cloudpickle')}, this is Python {VERSIONS['python']} with cloudpickle "
        f"{VERSIONS['cloudpickle']}"
    )


class FunctionCache:
    """The last few functions a child loaded, by digest, most recent last.

    The parent keeps a mirror (same calls, same order, so the same contents) to know
    which functions it need not send again. `use()` is the one operation on both sides.
    """

    KEEP = 8  # functions can be big (a partial carrying an array): keep only a few

    def __init__(self) -> None:
        self._entries: collections.OrderedDict[str, Any] = collections.OrderedDict()

    def use(self, digest: str, load: Callable[[], Any] | None) -> Any:
        """The entry for `digest` if kept (marked most recent); else `load()` is kept.

        On the parent's side `load` is None: the answer is just whether the child has it.
        """
        entries = self._entries
        if digest in entries:
            entries.move_to_end(digest)
            return entries[digest] if load is not None else True
        entries[digest] = load() if load is not None else None
        if len(entries) > self.KEEP:
            entries.popitem(last=False)
        return entries[digest] if load is not None else False


# --------------------------------------------------------------------------- errors
def encode_error(exc: BaseException) -> tuple[str, str, bytes]:
    """(type name, message, blob) for a job's exception.

    The blob keeps the traceback text and, when it survives a round trip, the pickled
    exception itself; an exception that cannot be pickled keeps its type, message and text.
    """
    type_name = f"{type(exc).__module__}.{type(exc).__qualname__}".removeprefix("builtins.")
    try:
        message = str(exc)
    except Exception as broken:  # its own __str__ fails: keep what can be kept
        message = f"<its str() raised {type(broken).__name__}: {broken}>"
    tb = "".join(traceback.format_exception(type(exc), exc, _from_user_code(exc.__traceback__)))
    pickled: bytes | None
    try:
        pickled = cloudpickle.dumps(exc, PROTOCOL)
        pickle.loads(pickled)
    except Exception:
        pickled = None
    blob = pickle.dumps(
        {"type": type_name, "message": message, "traceback": tb, "exc": pickled}, PROTOCOL
    )
    return type_name, message, blob


_NBJOBS_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_ASYNCIO_DIR = os.path.join(os.path.dirname(os.__file__), "asyncio") + os.sep


def _from_user_code(tb: TracebackType | None) -> TracebackType | None:
    """`tb` from the first frame of the job's own code: the nbjobs frames that called it
    (and asyncio's, for an `async def` job) say nothing to its author. Kept whole when no
    frame of other code follows them (the error is in nbjobs, or in a builtin it called)."""
    first = tb
    while first is not None and first.tb_frame.f_code.co_filename.startswith(_NBJOBS_DIR):
        first = first.tb_next
    if first is tb:
        return tb
    while first is not None and first.tb_frame.f_code.co_filename.startswith(_ASYNCIO_DIR):
        first = first.tb_next
    return tb if first is None else first


def decode_error(blob: bytes) -> BaseException:
    """The job's exception, re-created, with the job's traceback attached as a note."""
    info = pickle.loads(blob)
    if info.get("exc") is not None:
        try:
            exc: BaseException = pickle.loads(info["exc"])
            exc.add_note("Traceback inside the job:\n" + info["traceback"].rstrip())
            return exc
        except Exception:  # fall through to the text form
            pass
    return JobFailed(info["type"], info["message"], info["traceback"])


def error_traceback(blob: bytes) -> str:
    text: str = pickle.loads(blob)["traceback"]
    return text
