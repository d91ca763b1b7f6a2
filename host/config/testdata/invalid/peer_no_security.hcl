# A peer needs a security block: the link is authenticated both ways.
peer "node-b" {
  address  = "10.99.0.2:7443"
  profiles = ["echo"]
}

plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo"]
}
