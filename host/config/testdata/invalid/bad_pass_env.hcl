plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo"]
  env       = { DSMIL_HOST_NAME = "spoofed" }
  pass_env  = ["DSMIL_ORT_LIB", "BAD=NAME", "PLUGIN_MIN_PORT", "DSMIL_PLUGIN_IDENTITY_FD", "DSMIL_ORT_LIB", "SOC_KEY"]
}

tenant "SOC" {
  api_key_env    = "SOC_KEY"
  compartments   = ["SOC"]
  classification = "UNCLAS"
  roe            = "ANALYSIS_ONLY"
  models         = ["*"]
}
