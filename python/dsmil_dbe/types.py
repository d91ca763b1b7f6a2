"""The registered names and codes of DBE v1, read from libdbe."""

from __future__ import annotations

import enum

from ._lib import registry

_reg = registry()

DBE_VERSION: int = _reg["dbe_version"]
FLAG_END_STREAM: int = _reg["flag_end_stream"]
MAX_FRAME_SIZE: int = _reg["max_frame_size"]

#: Message types (docs/dbe.md §5): ``MsgType.L7_CHAT_REQ`` == 0x41.
MsgType = enum.IntEnum("MsgType", sorted(_reg["msg_types"].items(), key=lambda kv: kv[1]), module=__name__)
#: TLV type codes (docs/dbe.md §4), critical bit included.
TLVType = enum.IntEnum("TLVType", sorted(_reg["tlv_types"].items(), key=lambda kv: kv[1]), module=__name__)
#: COMPARTMENT_MASK bits; combine with ``|``.
Compartment = enum.IntFlag("Compartment", sorted(_reg["compartments"].items(), key=lambda kv: kv[1]), module=__name__)
#: CLASSIFICATION.
Classification = enum.IntEnum("Classification", sorted(_reg["classifications"].items(), key=lambda kv: kv[1]), module=__name__)
#: ROE_LEVEL.
ROELevel = enum.IntEnum("ROELevel", sorted(_reg["roe_levels"].items(), key=lambda kv: kv[1]), module=__name__)
#: Error codes (docs/dbe.md §9).
ErrorCode = enum.IntEnum("ErrorCode", sorted(_reg["error_codes"].items(), key=lambda kv: kv[1]), module=__name__)

#: The spec's name for MsgType.
MessageType = MsgType
