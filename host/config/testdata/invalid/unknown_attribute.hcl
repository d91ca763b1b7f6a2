shim {
  lisen = "127.0.0.1:8001"
}

router {
  socket_perm = "0660"
}

tenant "T" {
  api_key_env  = "DSMIL_OPENAI_API_KEY"
  compartments = ["SOC"]
  models       = ["*"]
  rate_limit {
    request_per_minute = 10
  }
}
