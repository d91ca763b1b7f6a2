"""Every DBE conformance vector through Python: valid frames decode to what
the vector's JSON says and re-encode byte for byte; invalid ones are refused
with the vector's error."""

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest

import dsmil_dbe as d

VECTORS = sorted((Path(__file__).resolve().parents[2] / "sdk" / "dbe" / "testdata" / "vectors").glob("*.json"))


def test_vectors_present():
    assert len(VECTORS) >= 100


def _load(path):
    v = json.loads(path.read_text())
    v["hex"] = path.with_suffix(".hex").read_text().strip()
    return v


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector(path):
    v = _load(path)
    data = bytes.fromhex(v["hex"])
    if not v["valid"]:
        with pytest.raises(d.DBEError) as e:
            d.Frame.decode(data)
        assert e.value.reason == v["error"], e.value
        return
    f = d.Frame.decode(data)
    assert f.encode() == data
    h = v["header"]
    assert int(f.msg_type) == int(h["msg_type"], 16)
    assert f.flags == int(h["flags"], 16)
    assert f.correlation_id == int(h["correlation_id"])
    assert [(t, raw.hex()) for t, raw in f.tlvs] == [(int(t["type"], 16), t["value_hex"]) for t in v.get("tlvs", [])]
    assert f.payload.hex() == v.get("payload_hex", "")
    for t in v.get("tlvs", []):
        if "value" in t and t["name"] in d.TLVType.__members__:
            value = f.timestamp_ns if t["name"] == "TIMESTAMP" else f.tlv_get(t["name"])
            assert _render(t["name"], value) == t["value"], t["name"]


def _render(name, value):
    """The vectors' rendering of a TLV value (docs/dbe.md, test vectors)."""
    match name:
        case "COMPARTMENT_MASK":
            names = [c.name for c in d.Compartment if value & c]
            rest = int(value) & ~sum(int(c) for c in d.Compartment)
            if rest:
                names.append(f"0x{rest:02x}")
            return "|".join(names) or "NONE"
        case "CLASSIFICATION" | "ROE_LEVEL":
            return value.name if hasattr(value, "name") else value
        case "LAYER_PATH":
            return "→".join(str(x) for x in value)
        case "DEVICE_ID_SRC" | "DEVICE_ID_DST" | "TIMEOUT_MS":
            return str(value)
        case "TIMESTAMP":  # nanoseconds, always 9 digits
            secs = dt.datetime.fromtimestamp(value // 10**9, dt.timezone.utc)
            return secs.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value % 10**9:09d}Z"
        case "REQUEST_ID":
            return str(value)
    return value


def test_tlv_values_round_trip():
    f = d.DBEMessage(msg_type=d.MessageType.L7_CHAT_REQ, payload={"messages": [{"role": "user", "content": "hi"}]})
    rid = uuid.uuid4()
    now = dt.datetime(2025, 11, 23, 0, 0, 0, 500000, tzinfo=dt.timezone.utc)
    f.tlv_set("TENANT_ID", "SOC_TEAM_ALPHA")
    f.compartment_mask = d.Compartment.SOC | d.Compartment.LAB
    f.classification = "SECRET"
    f.roe_level = d.ROELevel.SOC_ASSIST
    f.layer_path = [3, 5, 7]
    f.device_id_dst = 43
    f.l7_profile = "llm-7b-amx"
    f.claim_token = b"\x00\x01opaque"
    f.timestamp = now
    f.request_id = rid
    f.timeout_ms = 1500
    g = d.Frame.decode(f.encode())
    assert g == f
    assert g.tenant_id == "SOC_TEAM_ALPHA"
    assert g.compartment_mask == d.Compartment.SOC | d.Compartment.LAB
    assert g.classification is d.Classification.SECRET
    assert g.roe_level is d.ROELevel.SOC_ASSIST
    assert g.layer_path == [3, 5, 7] and g.device_id_dst == 43 and g.l7_profile == "llm-7b-amx"
    assert g.claim_token == b"\x00\x01opaque" and g.request_id == rid and g.timeout_ms == 1500
    assert g.timestamp == now
    assert g.payload_dict() == {"messages": [{"role": "user", "content": "hi"}]}
    del g.layer_path
    assert g.layer_path is None


@pytest.mark.parametrize("name,value,param", [
    ("TENANT_ID", "", "TENANT_ID"),
    ("CLASSIFICATION", "TOP", "TOP"),
    ("DEVICE_ID_DST", 104, "DEVICE_ID_DST"),
    ("L7_PROFILE", "Bad Profile", "L7_PROFILE"),
    ("REQUEST_ID", "not-a-uuid", "UUID"),
    ("NO_SUCH_TLV", 1, "NO_SUCH_TLV"),
])
def test_bad_tlv_values(name, value, param):
    f = d.Frame()
    with pytest.raises(d.DBEError) as e:
        f.tlv_set(name, value)
    assert param in str(e.value)
    assert f.tlvs == []


def test_bad_payload_and_frame():
    with pytest.raises(d.InvalidRequest, match="no_such_field"):
        d.Frame(d.MsgType.L7_CHAT_REQ, payload={"no_such_field": 1})
    with pytest.raises(d.InvalidRequest, match="carries no protobuf payload"):
        d.Frame(d.MsgType.HEALTH, payload={"x": 1})
    with pytest.raises(d.MalformedFrame):
        d.Frame(d.MsgType.L7_CHAT_REQ, payload=b"\xff\xff\xff").payload_dict()
