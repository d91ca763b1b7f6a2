tenant "A" {
  api_key_env    = "DSMIL_OPENAI_API_KEY"
  compartments   = ["soc", "OPS", "KINETIC"]
  classification = "TOP_SECRET"
  roe            = "SOC-ASSIST"
  models         = ["*"]
}

tenant "B" {
  api_key_env    = "DSMIL_SOC_KEY"
  compartments   = []
  classification = "unclas"
  roe            = "WEAPONS_FREE"
  models         = []
}
