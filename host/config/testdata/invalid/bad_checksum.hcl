plugin "echo" {
  path      = "bin/dsmil-echo"
  sha256    = "deadbeef"
  device_id = 47
  profiles  = ["echo"]
}

plugin "echo2" {
  path      = "bin/dsmil-echo"
  sha256    = "zz8e5bd5fc3d2a6b7e0c4c3d2b1a0f9e8d7c6b5a4938271605f4e3d2c1b0a9f8"
  device_id = 47
  profiles  = ["echo2"]
}

tenant "T" {
  api_key_sha256 = ["sk-my-secret-api-key", "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"]
  compartments   = ["SOC"]
  models         = ["*"]
}
