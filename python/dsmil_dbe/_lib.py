"""ctypes binding of libdbe (cmd/libdbe), the one implementation of DBE.

The library is found, in order, at $DSMIL_LIBDBE, next to this package
(an installed copy), in the repository's bin/ (a source checkout after
``make build``), or by the system loader (``libdbe.so`` on its path).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
from pathlib import Path
from typing import Any

ABI_VERSION = 1

DBE_OK, DBE_END, DBE_AGAIN, DBE_ERR = 0, 1, 2, -1

_u8p = ctypes.POINTER(ctypes.c_uint8)


def _candidates() -> list[str]:
    here = Path(__file__).resolve().parent
    out = []
    if env := os.environ.get("DSMIL_LIBDBE"):
        out.append(env)
    out += [str(here / "libdbe.so"), str(here.parent.parent / "bin" / "libdbe.so")]
    if found := ctypes.util.find_library("dbe"):
        out.append(found)
    return out


def _load() -> ctypes.CDLL:
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path)
            continue
        lib = ctypes.CDLL(path)
        break
    else:
        raise ImportError(
            "dsmil_dbe: libdbe.so not found (tried %s); run `make build` or set DSMIL_LIBDBE" % ", ".join(tried)
        )
    sig = {
        "dbe_abi_version": (ctypes.c_int32, []),
        "dbe_free": (None, [ctypes.c_void_p]),
        "dbe_frame_decode": (ctypes.c_int32, [_u8p, ctypes.c_size_t, ctypes.c_int64, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p)]),
        "dbe_frame_encode": (ctypes.c_int32, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_void_p)]),
        "dbe_tlv_encode": (ctypes.c_int32, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_void_p)]),
        "dbe_tlv_decode": (ctypes.c_int32, [ctypes.c_uint16, _u8p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p)]),
        "dbe_registry": (ctypes.c_int32, [ctypes.POINTER(ctypes.c_void_p)]),
        "dbe_payload_encode": (ctypes.c_int32, [ctypes.c_uint8, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_void_p)]),
        "dbe_payload_decode": (ctypes.c_int32, [ctypes.c_uint8, _u8p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_void_p)]),
        "dbe_claim_mint": (ctypes.c_int32, [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_void_p)]),
        "dbe_client_open": (ctypes.c_int32, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_void_p)]),
        "dbe_client_close": (ctypes.c_int32, [ctypes.c_uint64]),
        "dbe_client_start": (ctypes.c_int32, [ctypes.c_uint64, _u8p, ctypes.c_size_t, ctypes.c_int64, ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_void_p)]),
        "dbe_stream_next": (ctypes.c_int32, [ctypes.c_uint64, ctypes.c_int64, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_void_p)]),
        "dbe_stream_cancel": (ctypes.c_int32, [ctypes.c_uint64]),
        "dbe_stream_free": (ctypes.c_int32, [ctypes.c_uint64]),
    }
    for name, (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    if (v := lib.dbe_abi_version()) != ABI_VERSION:
        raise ImportError(f"dsmil_dbe: libdbe ABI version {v}, this package needs {ABI_VERSION}")
    return lib


lib = _load()


def _take_str(p: ctypes.c_void_p) -> str:
    try:
        return ctypes.string_at(p.value).decode()
    finally:
        lib.dbe_free(p)


def _take_bytes(p: ctypes.c_void_p, n: ctypes.c_size_t) -> bytes:
    try:
        return ctypes.string_at(p.value, n.value)
    finally:
        lib.dbe_free(p)


def _in(data: bytes):
    buf = (ctypes.c_uint8 * max(len(data), 1)).from_buffer_copy(data or b"\0")
    return buf, len(data)


def raise_for(err: ctypes.c_void_p) -> None:
    """Raises the DBEError subclass of the error object libdbe returned."""
    from .errors import from_json

    raise from_json(json.loads(_take_str(err)))


def call_json(fn, *args) -> Any:
    out, err = ctypes.c_void_p(), ctypes.c_void_p()
    if fn(*args, ctypes.byref(out), ctypes.byref(err)) != DBE_OK:
        raise_for(err)
    return json.loads(_take_str(out))


def call_bytes(fn, *args) -> bytes:
    out, n, err = ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_void_p()
    if fn(*args, ctypes.byref(out), ctypes.byref(n), ctypes.byref(err)) != DBE_OK:
        raise_for(err)
    return _take_bytes(out, n)


def registry() -> dict:
    out = ctypes.c_void_p()
    lib.dbe_registry(ctypes.byref(out))
    return json.loads(_take_str(out))
