shim {
  allowed_hosts = []
  cors_origins  = ["http://localhost:3000/app", "ftp://files.example", "localhost:3000", "https://ok.example"]
}

router {
  socket      = ""
  socket_mode = "0999"
}

admin {
  socket = ""
}
