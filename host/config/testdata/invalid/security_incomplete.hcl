security {
  identity_key = "keys/host.key"
  group        = "x448"
  claim_ttl    = "forever"
}

plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo"]
}
