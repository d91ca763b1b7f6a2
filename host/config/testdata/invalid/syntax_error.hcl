shim {
  listen = "127.0.0.1:8001"
  max_body_bytes = 
}

plugin "echo" {
  path = "bin/dsmil-echo
}
