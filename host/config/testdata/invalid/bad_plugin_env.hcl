plugin "echo" {
  path      = ""
  device_id = 47
  profiles  = ["echo"]
  env       = { "BAD=NAME" = "x", GOOD = "y" }
}
