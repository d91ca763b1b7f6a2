security {
  identity_key = "keys/host.key"
  group        = "x448"
  claim_ttl    = "forever"
  cross_node_listen = "no-port"
}

plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo"]
}
