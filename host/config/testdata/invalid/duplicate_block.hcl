shim {
  listen = "127.0.0.1:8001"
}

shim {
  listen = "127.0.0.1:8002"
}
