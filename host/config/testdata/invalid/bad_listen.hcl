shim {
  listen = "localhost"
}

metrics {
  listen = "127.0.0.1:70000"
}
