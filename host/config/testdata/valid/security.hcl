# A host with configured identities: PQ handshake on every DBE socket.
security {
  identity_key        = "keys/host.key"
  identity_bundle     = "keys/host.bundle"
  roots               = ["keys/root.pub"]
  claim_issuers       = ["keys/soc-bridge.pub"]
  group               = "p384"
  claim_ttl           = "30m"
  plugin_identity_ttl = "12h"
  cross_node_listen   = "127.0.0.1:7443"

  # A tool on the router socket that may speak for one tenant only.
  claim_issuer "soc-tool" {
    key     = "keys/soc-tool.pub"
    tenants = ["SOC_TEAM_ALPHA"]
  }
}

plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo"]
}

model "dsmil-echo" {
  profile = "echo"
}

tenant "SOC_TEAM_ALPHA" {
  api_key_sha256 = ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
  compartments   = ["SOC"]
  models         = ["*"]
}
