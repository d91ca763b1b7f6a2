# claim_issuer blocks: a tenant that does not exist, no tenants, no key,
# and a name used twice.
security {
  identity_key    = "keys/host.key"
  identity_bundle = "keys/host.bundle"
  roots           = ["keys/root.pub"]

  claim_issuer "tool" {
    key     = "keys/tool.pub"
    tenants = ["SOC_TEAM_ALPHA", "SOC_TEAM_ALPHO"]
  }
  claim_issuer "empty" {
    key     = "keys/empty.pub"
    tenants = []
  }
  claim_issuer "keyless" {
    tenants = ["SOC_TEAM_ALPHA"]
  }
  claim_issuer "tool" {
    key     = "keys/tool2.pub"
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
