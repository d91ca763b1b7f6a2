include = ["../with_includes.hcl"]

tenant "LOCAL_TOOL_USER" {
  api_key_env  = "DSMIL_OPENAI_API_KEY"
  compartments = ["SOC"]
  models       = ["dsmil-echo"]
}
