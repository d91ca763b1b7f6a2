plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo"]
}

model "dsmil-echo" {
  profile = "echo"
}

tenant "LOCAL_TOOL_USER" {
  api_key_env  = "DSMIL_OPENAI_API_KEY"
  compartments = ["SOC"]
  models       = ["*", "dsmil-ecko", "gpt-4o"]
}
