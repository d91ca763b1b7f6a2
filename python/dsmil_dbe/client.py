"""A client for the dsmil-host router socket (docs/dbe.md §8), over libdbe."""

from __future__ import annotations

import ctypes
import json
import os
import time
import uuid
from typing import Any, Iterator

from . import _lib
from .errors import DeadlineExceeded
from .frame import Frame
from .types import Classification, Compartment, MsgType, ROELevel

_lib_ = _lib.lib

#: How long one wait inside libdbe lasts, so that Ctrl-C is seen promptly.
_POLL_S = 0.2


def mint_claim(key: str | os.PathLike, *, tenant: str, audience: str = "dsmil-router", client: str = "",
               roles: list[str] | None = None, ttl: float = 0) -> bytes:
    """A claim token (DCT1, docs/dbe.md §12.3) for ``tenant``, signed with the
    ML-DSA-87 key in the file ``key`` (one of the host's claim issuers)."""
    cfg = {"key": os.fspath(key), "audience": audience, "tenant": tenant, "client": client, "roles": roles or [],
           "ttl_seconds": ttl}
    return _lib.call_bytes(_lib_.dbe_claim_mint, json.dumps(cfg).encode())


class Stream:
    """The response frames of one request, in order; iterate over it.

    The last frame has END_STREAM; an ERROR from the router raises its
    :class:`~dsmil_dbe.errors.DBEError` subclass. ``cancel()`` sends CANCEL.
    """

    def __init__(self, handle: int, timeout: float | None):
        self._h = handle
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self.done = False

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        if self.done:
            raise StopIteration
        out, n, err = ctypes.c_void_p(), ctypes.c_size_t(), ctypes.c_void_p()
        while True:
            wait = _POLL_S
            if self._deadline is not None:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    self.cancel()
                    raise DeadlineExceeded("no response within the timeout")
                wait = min(wait, left)
            rc = _lib_.dbe_stream_next(self._h, int(wait * 1000) or 1, ctypes.byref(out), ctypes.byref(n), ctypes.byref(err))
            if rc == _lib.DBE_AGAIN:
                continue
            if rc == _lib.DBE_END:
                self.close()
                raise StopIteration
            if rc != _lib.DBE_OK:
                self.close()
                _lib.raise_for(err)
            return Frame.decode(_lib._take_bytes(out, n))

    def cancel(self) -> None:
        if not self.done:
            _lib_.dbe_stream_cancel(self._h)

    def close(self) -> None:
        if not self.done:
            self.done = True
            _lib_.dbe_stream_free(self._h)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class Client:
    """One connection to a dsmil-host router socket.

    Without ``identity`` the connection sends plain frames (a host without a
    ``security`` block). With ``identity`` (a key file), ``bundle`` (its
    identity bundle, role ``client``) and ``roots`` (the public keys that
    sign the host's bundle; ``host_name``, if given, the name it must
    carry) it runs the DSMIL-PQ1 handshake and every frame is sealed. ``tenant``, ``compartments``, ``classification``, ``roe`` and
    ``claim_token`` are the security attributes put on every request unless a
    call overrides them. Use it as a context manager, or call ``close()``.
    """

    def __init__(self, socket_path: str | os.PathLike, *, identity: str | os.PathLike | None = None,
                 bundle: str | os.PathLike | None = None, roots: list[str | os.PathLike] | None = None,
                 host_name: str = "", timeout: float = 10.0, tenant: str | None = None, compartments: Compartment | int = 0,
                 classification: Classification | str = "UNCLAS", roe: ROELevel | str = "ANALYSIS_ONLY",
                 claim_token: bytes | None = None):
        opts: dict[str, Any] = {"timeout_ms": int(timeout * 1000)}
        if identity or bundle:
            opts |= {"identity_key": os.fspath(identity or ""), "identity_bundle": os.fspath(bundle or ""),
                     "roots": [os.fspath(r) for r in roots or []], "host_name": host_name}
        h, err = ctypes.c_uint64(), ctypes.c_void_p()
        if _lib_.dbe_client_open(os.fspath(socket_path).encode(), json.dumps(opts).encode(), ctypes.byref(h), ctypes.byref(err)) != _lib.DBE_OK:
            _lib.raise_for(err)
        self._h = h.value
        self.timeout = timeout
        self.tenant, self.compartments, self.classification, self.roe = tenant, compartments, classification, roe
        self.claim_token = claim_token

    # --- life cycle -------------------------------------------------------

    def close(self) -> None:
        if self._h:
            _lib_.dbe_client_close(self._h)
            self._h = 0

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # --- requests ---------------------------------------------------------

    def request(self, frame: Frame, timeout: float | None = None) -> Stream:
        """Sends ``frame`` (its correlation id is assigned by the connection)
        and returns the stream of its responses. ``timeout`` (seconds, default
        the client's) bounds the whole exchange; the router is told too."""
        timeout = self.timeout if timeout is None else timeout
        data = frame.encode()
        buf, n = _lib._in(data)
        s, err = ctypes.c_uint64(), ctypes.c_void_p()
        if _lib_.dbe_client_start(self._h, buf, n, int(timeout * 1000), ctypes.byref(s), ctypes.byref(err)) != _lib.DBE_OK:
            _lib.raise_for(err)
        return Stream(s.value, timeout)

    def send_and_receive(self, frame: Frame, timeout: float | None = None) -> Frame:
        """Sends ``frame`` and returns its last response frame (the spec's
        DBESocket.send_and_receive)."""
        last = None
        for last in self.request(frame, timeout):
            pass
        if last is None:
            raise DeadlineExceeded("the stream ended without a frame")
        return last

    def _attributes(self, f: Frame, *, tenant: str | None, compartments: Any, classification: Any, roe: Any,
                    profile: str, claim_token: bytes | None) -> Frame:
        tenant = tenant or self.tenant
        if not tenant:
            raise ValueError("dsmil_dbe: no tenant (give Client(tenant=...) or tenant=...)")
        f.tlv_set("TENANT_ID", tenant)
        f.tlv_set("COMPARTMENT_MASK", self.compartments if compartments is None else compartments)
        f.tlv_set("CLASSIFICATION", self.classification if classification is None else classification)
        f.tlv_set("ROE_LEVEL", self.roe if roe is None else roe)
        f.tlv_set("L7_PROFILE", profile)
        f.tlv_set("REQUEST_ID", uuid.uuid4())
        f.tlv_set("TIMESTAMP", time.time())
        tok = claim_token or self.claim_token
        if tok:
            f.tlv_set("L7_CLAIM_TOKEN", tok)
        return f

    def health(self, timeout: float | None = None) -> dict:
        """The router's L7_MODEL_STATUS, as a dict."""
        return self.send_and_receive(Frame(MsgType.HEALTH), timeout).payload_dict()

    def chat(self, messages: list[dict], *, profile: str, model: str = "", stream: bool = True,
             timeout: float | None = None, tenant: str | None = None, compartments: Any = None,
             classification: Any = None, roe: Any = None, claim_token: bytes | None = None, **params: Any):
        """An L7_CHAT_REQ for ``messages`` ([{"role", "content"}]) on ``profile``.

        With ``stream=True`` it returns an iterator of the generated text
        pieces; otherwise the L7_CHAT_RESP payload as a dict. ``params`` are
        further L7ChatRequest fields (``max_tokens``, ``temperature``, ...).
        """
        body = {"model": model, "messages": messages, "stream": stream, **params}
        f = self._attributes(Frame(MsgType.L7_CHAT_REQ, payload=body), tenant=tenant, compartments=compartments,
                             classification=classification, roe=roe, profile=profile, claim_token=claim_token)
        frames = self.request(f, timeout)
        if stream:
            return _deltas(frames)
        last = None
        for last in frames:
            pass
        return last.payload_dict() if last is not None else {}

    def agent_task(self, task_type: str, parameters: dict[str, str] | None = None, *, profile: str = "agent",
                   timeout_seconds: int = 0, timeout: float | None = None, tenant: str | None = None,
                   compartments: Any = None, classification: Any = None, roe: Any = None,
                   claim_token: bytes | None = None) -> Iterator[dict]:
        """An L7_AGENT_TASK for the agent plugin (Device 48): an iterator of
        its L7_AGENT_RESULT payloads as dicts, one progress frame per step
        (``status`` AGENT_TASK_STATUS_RUNNING) and the final result last.
        Agent tasks need ROE SOC_ASSIST or above (the router answers
        ``PolicyDenied`` otherwise)."""
        body = {"task_type": task_type, "parameters": parameters or {}, "timeout_seconds": timeout_seconds}
        f = self._attributes(Frame(MsgType.L7_AGENT_TASK, payload=body), tenant=tenant, compartments=compartments,
                             classification=classification, roe=roe, profile=profile, claim_token=claim_token)
        if timeout is None and timeout_seconds:
            timeout = timeout_seconds + 5
        return (fr.payload_dict() for fr in self.request(f, timeout) if fr.msg_type == MsgType.L7_AGENT_RESULT)

    def embed(self, inputs: list[str], *, profile: str, model: str = "", dimensions: int = 0,
              timeout: float | None = None, tenant: str | None = None, compartments: Any = None,
              classification: Any = None, roe: Any = None, claim_token: bytes | None = None) -> dict:
        """An L7_EMBED_REQ for ``inputs`` (texts): the L7_EMBED_RESP as a dict
        (``data`` [{``index``, ``values``}], ``usage``)."""
        body = {"model": model, "inputs": [{"text": t} for t in inputs], "dimensions": dimensions}
        f = self._attributes(Frame(MsgType.L7_EMBED_REQ, payload=body), tenant=tenant, compartments=compartments,
                             classification=classification, roe=roe, profile=profile, claim_token=claim_token)
        return self.send_and_receive(f, timeout).payload_dict()

    def policy_check(self, *, profile: str, operation: str = "chat", model: str = "", tenant: str | None = None,
                     compartments: Any = None, classification: Any = None, roe: Any = None,
                     claim_token: bytes | None = None, timeout: float | None = None) -> dict:
        """A dry run of the policy (L7_POLICY_CHECK): the L7_POLICY_RESULT as a
        dict, ``{"allow": bool, "rule", "reason", "trail"}``. A denial is a
        result, not an exception."""
        f = self._attributes(Frame(MsgType.L7_POLICY_CHECK, payload={"operation": operation, "model": model}),
                             tenant=tenant, compartments=compartments, classification=classification, roe=roe,
                             profile=profile, claim_token=claim_token)
        res = self.send_and_receive(f, timeout).payload_dict()
        res.setdefault("allow", False)
        return res


def _deltas(frames: Stream) -> Iterator[str]:
    try:
        for f in frames:
            if f.msg_type == MsgType.L7_CHAT_CHUNK and f.payload:
                if d := f.payload_dict().get("delta"):
                    yield d
    finally:
        frames.cancel()
        frames.close()


#: The spec's name for Client.
DBESocket = Client
