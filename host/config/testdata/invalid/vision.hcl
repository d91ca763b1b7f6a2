plugin "echo" {
  path      = "bin/dsmil-echo"
  device_id = 47
  profiles  = ["echo", "ocr"]
}

model "dsmil-echo" {
  profile = "echo"
  vision  = "dsmil-ocr"
}

model "dsmil-ocr-ppocrv4" {
  profile = "ocr"
  vision  = "dsmil-ocr-ppocrv4"
}

model "dsmil-chat" {
  profile = "echo"
  vision  = "dsmil-echo2"
}

model "dsmil-echo2" {
  profile = "echo"
  vision  = "dsmil-ocr-ppocrv4"
}
