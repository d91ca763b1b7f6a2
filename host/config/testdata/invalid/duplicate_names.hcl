plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo"]
}

plugin "echo" {
  path      = "bin/dsmil-echo2"
  device_id = 48
  profiles  = ["echo"]
}

model "dsmil-echo" {
  profile = "echo"
}

model "dsmil-echo" {
  profile = "echo"
}

tenant "LOCAL_TOOL_USER" {
  api_key_env  = "DSMIL_OPENAI_API_KEY"
  compartments = ["SOC"]
  models       = ["*"]
}

tenant "LOCAL_TOOL_USER" {
  api_key_sha256 = ["0000000000000000000000000000000000000000000000000000000000000000"]
  compartments   = ["SOC"]
  models         = ["*"]
}

policy "p" {}
policy "p" {}
