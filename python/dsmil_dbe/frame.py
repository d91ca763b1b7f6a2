"""DBE frames: a header, typed TLVs and a protobuf payload.

Encoding, decoding and every TLV value's wire form are done by libdbe (the
Go codec); this module only holds the values and converts them to Python
types.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import uuid
from typing import Any, Iterator

from . import _lib
from .errors import InvalidRequest
from .types import FLAG_END_STREAM, Classification, Compartment, MsgType, ROELevel, TLVType

_lib_ = _lib.lib


def _tlv_code(name: str | int) -> int:
    if isinstance(name, int):
        return int(name)
    try:
        return int(TLVType[name])
    except KeyError:
        try:
            return int(name.removeprefix("TLV_"), 0)
        except ValueError:
            raise InvalidRequest(f"unknown TLV {name!r}") from None


def _to_json(code: int, value: Any) -> Any:
    """A Python value in the JSON form libdbe's TLV encoder reads."""
    if code == TLVType.TIMESTAMP:
        if isinstance(value, _dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=_dt.timezone.utc)
            delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
            return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
        if isinstance(value, float):  # time.time()
            return int(round(value * 1e9))
        return int(value)  # nanoseconds
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, Compartment):
        return int(value)
    if isinstance(value, (Classification, ROELevel)):
        return value.name
    return value


def _from_json(code: int, value: Any) -> Any:
    """libdbe's JSON form of a TLV value as a Python value."""
    if code == TLVType.COMPARTMENT_MASK:
        return Compartment(value)
    if code == TLVType.CLASSIFICATION:
        return Classification[value] if value in Classification.__members__ else value
    if code == TLVType.ROE_LEVEL:
        return ROELevel[value] if value in ROELevel.__members__ else value
    if code == TLVType.TIMESTAMP:
        return _dt.datetime.fromtimestamp(value // 10**9, _dt.timezone.utc) + _dt.timedelta(microseconds=(value % 10**9) // 1000)
    if code == TLVType.REQUEST_ID:
        return uuid.UUID(value)
    if code == TLVType.L7_CLAIM_TOKEN or not isinstance(value, (int, str, list)) or code not in TLVType._value2member_map_:
        return base64.b64decode(value) if isinstance(value, str) else value
    return value


def encode_tlv(name: str | int, value: Any) -> tuple[int, bytes]:
    """The type code and wire bytes of a TLV value (validated by libdbe)."""
    code = _tlv_code(name)
    wire_name = TLVType(code).name if code in TLVType._value2member_map_ else f"0x{code:04X}"
    js = json.dumps(_to_json(code, value)).encode()
    return code, _lib.call_bytes(_lib_.dbe_tlv_encode, wire_name.encode(), js)


def decode_tlv(code: int, raw: bytes) -> Any:
    """The Python value of a TLV's wire bytes (validated by libdbe)."""
    buf, n = _lib._in(raw)
    return _from_json(code, _lib.call_json(_lib_.dbe_tlv_decode, code, buf, n))


class Frame:
    """One DBE frame.

    ``msg_type`` is a :class:`MsgType` (or an int for an unregistered type),
    ``tlvs`` a list of ``(type_code, bytes)`` in wire order, ``payload`` the
    protobuf bytes. Registered TLVs read and write as Python values through
    :meth:`tlv_get` / :meth:`tlv_set` or the properties (``tenant_id``,
    ``compartment_mask``, ``classification``, ``roe_level``, ``layer_path``,
    ``device_id_src``, ``device_id_dst``, ``l7_profile``, ``claim_token``,
    ``timestamp``, ``request_id``, ``timeout_ms``). ``payload`` may also be
    given as a dict, encoded as the message type's protobuf message.
    """

    def __init__(self, msg_type: int = MsgType.L7_CHAT_REQ, *, flags: int = 0, correlation_id: int = 0,
                 tlvs: list[tuple[int, bytes]] | None = None, payload: bytes | dict | None = None):
        self.msg_type = MsgType(msg_type) if msg_type in MsgType._value2member_map_ else int(msg_type)
        self.flags = flags
        self.correlation_id = correlation_id
        self.tlvs: list[tuple[int, bytes]] = list(tlvs or [])
        self.payload = b""
        if isinstance(payload, dict):
            self.set_payload(payload)
        elif payload:
            self.payload = bytes(payload)

    # --- TLVs -------------------------------------------------------------

    def tlv_raw(self, name: str | int) -> bytes | None:
        code = _tlv_code(name)
        for t, v in self.tlvs:
            if t == code:
                return v
        return None

    def tlv_get(self, name: str | int) -> Any:
        """The value of TLV ``name`` (``"TENANT_ID"``, a code, ``"TLV_0x4001"``), or None."""
        code = _tlv_code(name)
        raw = self.tlv_raw(code)
        return None if raw is None else decode_tlv(code, raw)

    @property
    def timestamp_ns(self) -> int | None:
        """TIMESTAMP in nanoseconds since the Unix epoch (its resolution is
        2^-16 s, finer than a datetime's microseconds)."""
        raw = self.tlv_raw("TIMESTAMP")
        if raw is None:
            return None
        buf, n = _lib._in(raw)
        return _lib.call_json(_lib_.dbe_tlv_decode, int(TLVType.TIMESTAMP), buf, n)

    def tlv_set(self, name: str | int, value: Any) -> None:
        """Sets TLV ``name`` to ``value`` (replacing it in place, or appending)."""
        code, raw = encode_tlv(name, value)
        for i, (t, _) in enumerate(self.tlvs):
            if t == code:
                self.tlvs[i] = (code, raw)
                return
        self.tlvs.append((code, raw))

    def tlv_del(self, name: str | int) -> None:
        code = _tlv_code(name)
        self.tlvs = [(t, v) for t, v in self.tlvs if t != code]

    # --- payload ----------------------------------------------------------

    def set_payload(self, message: dict) -> None:
        """Encodes ``message`` (protobuf JSON: l7.proto's field names) as the payload."""
        self.payload = _lib.call_bytes(_lib_.dbe_payload_encode, int(self.msg_type), json.dumps(message).encode())

    def payload_dict(self) -> dict:
        """The payload decoded as the message type's protobuf message, in protobuf JSON."""
        buf, n = _lib._in(self.payload)
        return _lib.call_json(_lib_.dbe_payload_decode, int(self.msg_type), buf, n)

    # --- wire -------------------------------------------------------------

    @property
    def end_stream(self) -> bool:
        return bool(self.flags & FLAG_END_STREAM)

    def encode(self) -> bytes:
        j = {"version": 1, "msg_type": int(self.msg_type), "flags": self.flags, "correlation_id": self.correlation_id,
             "tlvs": [{"type": t, "value": base64.b64encode(v).decode()} for t, v in self.tlvs],
             "payload": base64.b64encode(self.payload).decode()}
        return _lib.call_bytes(_lib_.dbe_frame_encode, json.dumps(j).encode())

    @classmethod
    def decode(cls, data: bytes, max_frame: int = 0) -> "Frame":
        buf, n = _lib._in(bytes(data))
        j = _lib.call_json(_lib_.dbe_frame_decode, buf, n, max_frame)
        return cls(j["msg_type"], flags=j["flags"], correlation_id=j["correlation_id"],
                   tlvs=[(t["type"], base64.b64decode(t["value"] or "")) for t in j["tlvs"]],
                   payload=base64.b64decode(j["payload"] or ""))

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        for t, _ in self.tlvs:
            name = TLVType(t).name if t in TLVType._value2member_map_ else f"TLV_0x{t:04X}"
            yield name, self.tlv_get(t)

    def __repr__(self) -> str:
        name = self.msg_type.name if isinstance(self.msg_type, MsgType) else f"MSG_0x{self.msg_type:02X}"
        return f"Frame({name}, correlation_id={self.correlation_id}, flags=0x{self.flags:04x}, tlvs={dict(self)!r}, payload={len(self.payload)} bytes)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Frame) and (int(self.msg_type), self.flags, self.correlation_id, self.tlvs, self.payload) == (
            int(other.msg_type), other.flags, other.correlation_id, other.tlvs, other.payload)


def _prop(name: str, doc: str) -> property:
    return property(lambda self: self.tlv_get(name), lambda self, v: self.tlv_set(name, v), lambda self: self.tlv_del(name), doc)


for _attr, _name in [("tenant_id", "TENANT_ID"), ("compartment_mask", "COMPARTMENT_MASK"), ("classification", "CLASSIFICATION"),
                     ("roe_level", "ROE_LEVEL"), ("layer_path", "LAYER_PATH"), ("device_id_src", "DEVICE_ID_SRC"),
                     ("device_id_dst", "DEVICE_ID_DST"), ("l7_profile", "L7_PROFILE"), ("claim_token", "L7_CLAIM_TOKEN"),
                     ("timestamp", "TIMESTAMP"), ("request_id", "REQUEST_ID"), ("timeout_ms", "TIMEOUT_MS")]:
    setattr(Frame, _attr, _prop(_name, f"The {_name} TLV."))

#: The spec's name for Frame.
DBEMessage = Frame
