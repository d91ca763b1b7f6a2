# Non-loopback listeners are allowed when asked for, with warnings.
shim {
  listen             = "0.0.0.0:8001"
  allow_non_loopback = true
  cors_origins       = ["*"]
}

metrics {
  listen             = "192.0.2.10:9108"
  allow_non_loopback = true
}
