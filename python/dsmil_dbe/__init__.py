"""dsmil_dbe: DSMIL Binary Envelope frames and a router-socket client.

A thin Python layer over libdbe, the Go implementation of DBE built as a C
shared library (``make build`` writes bin/libdbe.so). Nothing of the
protocol is re-implemented here: frames, TLV values, payloads, the
DSMIL-PQ1 handshake and sealed channels are all libdbe's.

    from dsmil_dbe import Client, Compartment

    with Client("run/router.sock", tenant="SOC_TEAM_ALPHA", compartments=Compartment.SOC) as c:
        for piece in c.chat([{"role": "user", "content": "hello"}], profile="echo"):
            print(piece, end="")
"""

from .client import Client, DBESocket, Stream, mint_claim
from .errors import *  # noqa: F401,F403
from .errors import DBEError
from .frame import DBEMessage, Frame, decode_tlv, encode_tlv
from .types import DBE_VERSION, FLAG_END_STREAM, Classification, Compartment, ErrorCode, MessageType, MsgType, ROELevel, TLVType

__version__ = "1.0.0"

__all__ = ["Client", "DBESocket", "Stream", "mint_claim", "DBEError", "Frame", "DBEMessage", "encode_tlv", "decode_tlv",
           "DBE_VERSION", "FLAG_END_STREAM", "Classification", "Compartment", "ErrorCode", "MessageType", "MsgType",
           "ROELevel", "TLVType"]
