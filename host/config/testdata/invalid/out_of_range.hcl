router {
  load_threshold = 1.5
  max_in_flight_per_connection = 0
}

plugin "a" {
  path         = "bin/a"
  device_id    = 104
  profiles     = ["a"]
  replicas     = 0
  max_restarts = -1
}

plugin "b" {
  path      = "bin/b"
  device_id = -1
  profiles  = ["b"]
  replicas  = 65
}

plugin "c" {
  path      = "bin/c"
  device_id = 1.5
  profiles  = ["c"]
}

tenant "T" {
  api_key_env  = "DSMIL_OPENAI_API_KEY"
  compartments = ["SOC"]
  models       = ["*"]
  rate_limit {
    requests_per_minute = -1
    tokens_per_minute   = 0
    max_concurrent      = -16
  }
}
