# An included file: its errors are reported against this file.
plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 470
  profiles  = ["echo"]
}

tenant "X" {
  compartments = ["SOC"]
  models       = ["dsmil-echoo"]
}
