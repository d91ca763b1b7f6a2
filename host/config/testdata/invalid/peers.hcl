# peer blocks: bad address, duplicate name and address, no profiles, bad
# timings, a missing node_bundle.
security {
  identity_key    = "keys/host.key"
  identity_bundle = "keys/host.bundle"
  roots           = ["keys/root.pub"]
}

peer "node-b" {
  address  = "10.99.0.2"
  profiles = ["echo"]
}

peer "node-c" {
  address    = "10.99.0.3:7443"
  profiles   = []
  heartbeat  = "1s"
  down_after = "500ms"
}

peer "node-b" {
  address       = "10.99.0.3:7443"
  profiles      = ["echo", "echo", "Bad Name"]
  max_in_flight = 0
}

peer "node-d" {
  profiles      = ["echo"]
  reconnect_max = "10ms"
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
