# The plugins, models and tenants the golden tests decide requests for.
# golden_test.go includes one policy file at a time next to this.

plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo"]
}

plugin "llm" {
  path      = "bin/dsmil-llm"
  device_id = 48
  profiles  = ["llm-7b-amx", "llm-1b-npu"]
}

plugin "agent" {
  path      = "bin/dsmil-agent"
  device_id = 49
  profiles  = ["agent"]
}

model "dsmil-echo" { profile = "echo" }
model "llm-7b" { profile = "llm-7b-amx" }
model "llm-7b-long" { profile = "llm-7b-amx" }
model "llm-1b" { profile = "llm-1b-npu" }
model "agent" { profile = "agent" }

tenant "LOCAL_TOOL_USER" {
  api_key_sha256 = ["0000000000000000000000000000000000000000000000000000000000000001"]
  compartments   = ["SOC", "DEV"]
  classification = "UNCLAS"
  roe            = "ANALYSIS_ONLY"
  models         = ["*"]
}

tenant "SOC_TEAM_ALPHA" {
  api_key_sha256 = ["0000000000000000000000000000000000000000000000000000000000000002"]
  compartments   = ["SOC", "CRYPTO"]
  classification = "SECRET"
  roe            = "SOC_ASSIST"
  models         = ["llm-7b", "agent"]
}

tenant "SOC_NIGHT_SHIFT" {
  api_key_sha256 = ["0000000000000000000000000000000000000000000000000000000000000003"]
  compartments   = ["SOC", "CRYPTO"]
  classification = "SECRET"
  roe            = "SOC_ASSIST"
  models         = ["llm-7b", "agent"]
}

tenant "DEV_TRAINER" {
  api_key_sha256 = ["0000000000000000000000000000000000000000000000000000000000000004"]
  compartments   = ["DEV", "LAB"]
  classification = "TS_SIM"
  roe            = "TRAINING"
  models         = ["*"]
}

tenant "TS_ANALYST" {
  api_key_sha256 = ["0000000000000000000000000000000000000000000000000000000000000005"]
  compartments   = ["SOC", "LAB", "CRYPTO"]
  classification = "TS"
  roe            = "ANALYSIS_ONLY"
  models         = ["llm-7b", "llm-1b"]
}
