plugin "echo" {
  path = "bin/dsmil-echo"
  device_id = 47 47
}
