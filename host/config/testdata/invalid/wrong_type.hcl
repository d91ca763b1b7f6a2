shim {
  allow_non_loopback = "yes please"
  allowed_hosts      = "localhost:8001"
}

plugin "echo" {
  path      = ["bin/dsmil-echo"]
  device_id = "forty-seven"
  profiles  = "echo"
  env       = { N = [1] }
}

model "m" {
  profile = var.profile
}
