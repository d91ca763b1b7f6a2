"""dsmil_dbe against a live dsmil-host with a security block: the DSMIL-PQ1
handshake with a client identity, a streamed chat from the echo plugin, a
KINETIC request denied with the rule named, a forged claim refused, a policy
dry run. The binaries come from ``make build`` (bin/, or $DSMIL_BIN)."""

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

import dsmil_dbe as d

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("DSMIL_BIN", ROOT / "bin"))


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _host(*args, cwd=None):
    subprocess.run([str(BIN / "dsmil-host"), *args], check=True, capture_output=True, cwd=cwd)


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    for b in ("dsmil-host", "dsmil-echo"):
        assert (BIN / b).exists(), f"{BIN / b} missing: run `make build`"
    d_ = tmp_path_factory.mktemp("plane")
    keys = d_ / "keys"
    _host("keys", "gen", "-out", keys, "-name", "root")
    for name, role in [("host", "host"), ("tool", "client"), ("rogue", "client")]:
        _host("keys", "gen", "-out", keys, "-name", name)
        _host("keys", "bundle", "-root", keys / "root.key", "-name", "dsmil-host" if role == "host" else name, "-role", role,
              "-pub", keys / f"{name}.pub", "-out", keys / f"{name}.bundle")
    (d_ / "dsmil.hcl").write_text(f"""
security {{
  identity_key    = "keys/host.key"
  identity_bundle = "keys/host.bundle"
  roots           = ["keys/root.pub"]
  claim_issuer "soc-tool" {{
    key     = "keys/tool.pub"
    tenants = ["T", "ASSIST"]
  }}
}}
shim    {{ listen = "{_free_port()}" }}
metrics {{ listen = "{_free_port()}" }}
router  {{ socket = "run/router.sock" }}
admin   {{ socket = "run/admin.sock" }}
plugin "echo" {{
  path      = "{BIN / 'dsmil-echo'}"
  device_id = 47
  profiles  = ["echo"]
}}
model "dsmil-echo" {{ profile = "echo" }}
tenant "ASSIST" {{
  api_key_sha256 = ["{'ce' * 32}"]
  compartments   = ["SOC"]
  roe            = "SOC_ASSIST"
  models         = ["*"]
}}
tenant "T" {{
  api_key_sha256 = ["{'cd' * 32}"]
  compartments   = ["SOC"]
  models         = ["*"]
}}
""")
    log = open(d_ / "host.log", "wb")
    proc = subprocess.Popen([str(BIN / "dsmil-host"), "serve", "-config", str(d_ / "dsmil.hcl")], stdout=log, stderr=log, cwd=d_)
    sock = d_ / "run" / "router.sock"
    deadline = time.monotonic() + 30
    while True:
        try:
            _chat(d_)  # succeeds once the echo plugin serves
            break
        except (d.DBEError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("dsmil-host did not come up:\n" + (d_ / "host.log").read_text())
        time.sleep(0.1)
    yield d_
    proc.terminate()
    proc.wait(10)


def _client(dir_, name="tool", tenant="T", **kw):
    keys = dir_ / "keys"
    return d.Client(dir_ / "run" / "router.sock", identity=keys / f"{name}.key", bundle=keys / f"{name}.bundle",
                    roots=[keys / "root.pub"], host_name="dsmil-host", tenant=tenant, compartments=d.Compartment.SOC, **kw)


def _token(dir_, key="tool", tenant="T"):
    return d.mint_claim(dir_ / "keys" / f"{key}.key", tenant=tenant, client="soc-tool", roles=["ANALYSIS_ONLY"])


def _chat(dir_, text="hello from python", **kw):
    with _client(dir_, claim_token=_token(dir_)) as c:
        return "".join(c.chat([{"role": "user", "content": text}], profile="echo", **kw))


def test_health(plane):
    with _client(plane) as c:
        st = c.health()
    assert st["healthy"] is True and st["plugin"] == "router" and st["device_id"] == 43, st


def test_streamed_chat(plane):
    with _client(plane, claim_token=_token(plane)) as c:
        pieces = list(c.chat([{"role": "user", "content": "hello from python"}], profile="echo", model="dsmil-echo"))
    assert len(pieces) > 1, pieces
    assert "hello from python" in "".join(pieces)


def test_unary_chat(plane):
    with _client(plane, claim_token=_token(plane)) as c:
        res = c.chat([{"role": "user", "content": "once"}], profile="echo", stream=False)
    assert "once" in str(res), res


def test_kinetic_denied_with_rule(plane):
    with pytest.raises(d.PolicyDenied) as e:
        _chat(plane, compartments=d.Compartment.SOC | d.Compartment.KINETIC)
    assert e.value.rule == "builtin.kinetic", e.value


def test_forged_claim_refused(plane):
    # A claim signed by a key the host does not trust, and one for another tenant.
    with _client(plane, claim_token=_token(plane, key="rogue")) as c:
        with pytest.raises(d.ClaimInvalid):
            list(c.chat([{"role": "user", "content": "x"}], profile="echo"))
    with _client(plane, claim_token=b"DCT1 not a token") as c:
        with pytest.raises(d.ClaimInvalid):
            list(c.chat([{"role": "user", "content": "x"}], profile="echo"))


def test_no_claim_refused(plane):
    with _client(plane) as c:
        with pytest.raises(d.DBEError) as e:
            list(c.chat([{"role": "user", "content": "x"}], profile="echo"))
    assert e.value.code in ("CLAIM_TOKEN_INVALID", "UNAUTHENTICATED"), e.value


def test_policy_dry_run(plane):
    with _client(plane, claim_token=_token(plane)) as c:
        ok = c.policy_check(profile="echo", model="dsmil-echo")
        denied = c.policy_check(profile="echo", compartments=d.Compartment.SOC | d.Compartment.KINETIC)
    assert ok["allow"] is True, ok
    assert denied["allow"] is False and denied["rule"] == "builtin.kinetic", denied


def test_wrong_roots_refused(plane, tmp_path):
    _host("keys", "gen", "-out", tmp_path, "-name", "other")
    keys = plane / "keys"
    with pytest.raises(d.Unauthenticated):
        d.Client(plane / "run" / "router.sock", identity=keys / "tool.key", bundle=keys / "tool.bundle",
                 roots=[tmp_path / "other.pub"])


def test_plain_client_refused_by_secure_host(plane):
    with pytest.raises(d.DBEError):
        with d.Client(plane / "run" / "router.sock", tenant="T", timeout=3) as c:
            c.health(timeout=3)


def test_spec_sketch(plane):
    """The spec's §3.3 sketch, nearly verbatim."""
    import uuid

    request_id = str(uuid.uuid4())
    dbe_msg = d.DBEMessage(
        msg_type=d.MessageType.L7_CHAT_REQ,
        payload={"messages": [{"role": "user", "content": "What is DSMIL?"}], "temperature": 0.2, "max_tokens": 64},
    )
    dbe_msg.tlv_set("TENANT_ID", "T")
    dbe_msg.tlv_set("COMPARTMENT_MASK", 0x01)  # SOC compartment
    dbe_msg.tlv_set("CLASSIFICATION", "UNCLAS")
    dbe_msg.tlv_set("ROE_LEVEL", "ANALYSIS_ONLY")
    dbe_msg.tlv_set("L7_PROFILE", "echo")
    dbe_msg.tlv_set("L7_CLAIM_TOKEN", _token(plane))
    dbe_msg.tlv_set("REQUEST_ID", request_id)
    dbe_msg.tlv_set("TIMESTAMP", time.time())
    dbe_msg.tlv_set("DEVICE_ID_SRC", 0)
    dbe_msg.tlv_set("DEVICE_ID_DST", 47)
    keys = plane / "keys"
    router_socket = d.DBESocket(plane / "run" / "router.sock", identity=keys / "tool.key", bundle=keys / "tool.bundle",
                                roots=[keys / "root.pub"])
    response = router_socket.send_and_receive(dbe_msg, timeout=30.0)
    assert response.msg_type == d.MessageType.L7_CHAT_RESP, response
    result = response.payload_dict()
    assert "What is DSMIL?" in str(result["choices"]), result
    assert str(response.request_id) == request_id


def test_agent_task_gated_by_roe(plane):
    # ANALYSIS_ONLY may not run agent tasks (spec §4.2): refused by the router before any worker.
    with _client(plane, claim_token=_token(plane)) as c:
        with pytest.raises(d.PolicyDenied) as e:
            list(c.agent_task("summarize-logs", {"path": "logs"}))
    assert e.value.rule == "builtin.operation", e.value
    # SOC_ASSIST passes the policy; this plane has no agent plugin, so no worker serves the profile.
    with _client(plane, claim_token=_token(plane, tenant="ASSIST"), tenant="ASSIST", roe="SOC_ASSIST") as c:
        with pytest.raises((d.NoWorkerAvailable, d.NotFound)):
            list(c.agent_task("summarize-logs", {"path": "logs"}))


def test_embed_payloads(plane):
    # The echo plugin embeds with hash vectors: the L7_EMBED_REQ/RESP pair through the router.
    with _client(plane, claim_token=_token(plane)) as c:
        res = c.embed(["alpha", "beta"], profile="echo", model="dsmil-echo")
    assert [e.get("index", 0) for e in res["data"]] == [0, 1], res
    assert len(res["data"][0]["values"]) > 0 and res["data"][0]["values"] != res["data"][1]["values"], res
