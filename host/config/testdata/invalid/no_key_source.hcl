tenant "LOCAL_TOOL_USER" {
  compartments = ["SOC"]
  models       = ["*"]
}

tenant "EMPTY_LIST" {
  api_key_sha256 = []
  compartments   = ["SOC"]
  models         = ["*"]
}

tenant "BAD_ENV" {
  api_key_env  = "A=B"
  compartments = ["SOC"]
  models       = ["*"]
}
