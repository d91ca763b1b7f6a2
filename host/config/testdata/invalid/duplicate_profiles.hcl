plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo", "chat", "echo"]
}

plugin "none" {
  path      = "bin/none"
  device_id = 1
  profiles  = []
}
