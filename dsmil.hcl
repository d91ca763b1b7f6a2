# dsmil.hcl: the default configuration shipped with DSMIL L7.
#
# Relative paths are relative to this file's directory.

include = ["policies/*.hcl"]

shim {
  listen         = "127.0.0.1:8001"
  max_body_bytes = "4MiB"
}

router {
  socket = "run/router.sock"
}

admin {
  socket = "run/admin.sock"
}

metrics {
  listen = "127.0.0.1:9108"
}

# The echo plugin answers every prompt with the prompt: a smoke test of the
# whole path from HTTP to plugin and back.
plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo"]
}

model "dsmil-echo" {
  profile     = "echo"
  description = "Echoes the prompt back; for smoke tests."
}

# Local tools authenticate with the key in $DSMIL_OPENAI_API_KEY.
tenant "LOCAL_TOOL_USER" {
  api_key_env    = "DSMIL_OPENAI_API_KEY"
  compartments   = ["SOC", "DEV"]
  classification = "UNCLAS"
  roe            = "ANALYSIS_ONLY"
  models         = ["*"]
}
