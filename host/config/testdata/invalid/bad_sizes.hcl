shim {
  max_body_bytes = "4 Mb"
}

router {
  max_frame_bytes = "0"
}

plugin "echo" {
  path          = "bin/dsmil-echo"
  device_id     = 47
  profiles      = ["echo"]
  memory_budget = "-1GiB"
}
