shim {
  request_timeout    = "120"
  keepalive_interval = "-1s"
}

router {
  request_timeout = "0s"
}

plugin "echo" {
  path            = "bin/dsmil-echo"
  device_id       = 47
  profiles        = ["echo"]
  health_interval = "soon"
  restart_backoff = "1m"
}
