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
  start_timeout   = "-30s"
}

plugin "llm" {
  path          = "bin/dsmil-llm-amx"
  device_id     = 47
  profiles      = ["llm"]
  start_timeout = "2 minutes"
}

plugin "npu" {
  path          = "bin/dsmil-llm-npu"
  device_id     = 44
  profiles      = ["npu"]
  start_timeout = "0s"
}
