# A router host with two worker nodes: echo is served here and on both
# nodes, chat only on node-c.
security {
  identity_key    = "keys/host.key"
  identity_bundle = "keys/host.bundle"
  node_bundle     = "keys/host-node.bundle"
  roots           = ["keys/root.pub"]
}

plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo"]
}

peer "node-b" {
  address  = "10.99.0.2:7443"
  profiles = ["echo"]
}

peer "node-c" {
  address           = "node-c.internal:7443"
  identity          = "dsmil-node-c"
  roots             = ["keys/site-c-root.pub"]
  profiles          = ["echo", "chat"]
  heartbeat         = "100ms"
  down_after        = "500ms"
  reconnect_backoff = "50ms"
  reconnect_max     = "2s"
  dial_timeout      = "1s"
  max_in_flight     = 64
}

model "dsmil-echo" {
  profile = "echo"
}

# Served only by node-c: valid because a peer routes the profile.
model "dsmil-chat" {
  profile = "chat"
}

tenant "SOC_TEAM_ALPHA" {
  api_key_sha256 = ["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
  compartments   = ["SOC"]
  models         = ["*"]
}
