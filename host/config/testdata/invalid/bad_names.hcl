plugin "Echo!" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["Echo", "ok", "-dash-first"]
}

model "bad id with spaces" {
  profile = "ok"
}

tenant "TAB\tINSIDE" {
  api_key_env  = "DSMIL_OPENAI_API_KEY"
  compartments = ["SOC"]
  models       = ["*"]
}

tenant "" {
  api_key_env  = "DSMIL_SOC_KEY"
  compartments = ["SOC"]
  models       = ["*"]
}

policy "" {}
