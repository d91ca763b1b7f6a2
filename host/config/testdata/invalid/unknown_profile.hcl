plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo", "chat"]
}

model "dsmil-echo" {
  profile = "ecko"
}

model "dsmil-chat" {
  profile = "completely-different"
}
