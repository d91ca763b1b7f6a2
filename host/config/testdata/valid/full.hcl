# Every setting, with values that differ from the defaults.

shim {
  listen             = "localhost:18001"
  max_body_bytes     = "512KiB"
  allowed_hosts      = ["localhost:18001", "dsmil.local:18001"]
  cors_origins       = ["http://localhost:3000", "https://tools.example"]
  request_timeout    = "5m"
  keepalive_interval = "10s"
}

router {
  socket          = "/run/dsmil/router.sock"
  socket_mode     = "0600"
  request_timeout = "90s"
  max_frame_bytes = "32MB"
  load_threshold  = 0.75
  max_in_flight_per_connection = 256
}

admin {
  socket = "state/admin.sock"
}

metrics {
  listen = "[::1]:9200"
}

plugin "echo" {
  path     = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo"]
}

plugin "amx-chat" {
  path            = "/opt/dsmil/bin/dsmil-amx"
  sha256          = "7f512da80a46ab9883d159705be0e5467d4e2e8f03d4efc75c9165e7c7c597f6"
  device_id       = 103
  profiles        = ["chat", "chat.long-context", "embed_v2"]
  replicas        = 4
  memory_budget   = "12GiB"
  env             = { OMP_NUM_THREADS = "8", DSMIL_LOG = "debug" }
  pass_env        = ["DSMIL_ORT_LIB", "OMP_PROC_BIND"]
  args            = ["--numa", "0"]
  health_interval = "2s"
  max_restarts    = 0
  restart_backoff = "30s"
  start_timeout   = "120s"

  # Plugin-specific settings, kept for DecodePluginSettings.
  model_path = "models/chat.onnx"
  threads    = 8
}

plugin "amx-chat-spare" {
  path      = "bin/dsmil-amx"
  device_id = 0
  profiles  = ["chat"]
  replicas  = 64
}

model "dsmil-echo" {
  profile = "echo"
}

model "dsmil/chat:7b-q8.0_v2" {
  profile     = "chat"
  owned_by    = "dsmil-lab"
  description = "Chat on AMX."
}

model "dsmil-embed" {
  profile = "embed_v2"
}

tenant "SOC_TEAM_ALPHA" {
  api_key_sha256 = ["2C1FB3F3FAE108FC9C4C188AC0C58202DFDA461997F9935408A835EBA18CE06F"]
  api_key_env    = "DSMIL_SOC_KEY"
  compartments   = ["SOC", "CRYPTO", "SOC"]
  classification = "TS_SIM"
  roe            = "SOC_ASSIST"
  models         = ["dsmil/chat:7b-q8.0_v2", "dsmil-embed"]
  client_id      = "soc-console"

  rate_limit {
    requests_per_minute = 600
    tokens_per_minute   = 200000
    max_concurrent      = 16
  }
}

tenant "Équipe de formation — LAB" {
  api_key_sha256 = ["be9e6e10f4d9e47b04dfbc79bee20b2e58f05a95682d6322f08bfb51aab156b4"]
  compartments   = ["LAB", "KINETIC"]
  classification = "EXEC"
  roe            = "TRAINING"
  models         = ["*"]

  rate_limit {
    max_concurrent = 1
  }
}

policy "inline" {
  anything = "goes here"
}
