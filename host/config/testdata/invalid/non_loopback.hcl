shim {
  listen = "0.0.0.0:8001"
}

metrics {
  listen             = "192.0.2.10:9108"
  allow_non_loopback = false
}
