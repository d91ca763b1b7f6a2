tenant "A" {
  api_key_sha256 = ["ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"]
  compartments   = ["SOC"]
  models         = ["*"]
}

tenant "B" {
  api_key_sha256 = ["BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"]
  compartments   = ["SOC"]
  models         = ["*"]
}

tenant "C" {
  api_key_env  = "DSMIL_OPENAI_API_KEY"
  compartments = ["SOC"]
  models       = ["*"]
}

tenant "D" {
  api_key_env  = "DSMIL_OPENAI_API_KEY"
  compartments = ["SOC"]
  models       = ["*"]
}
