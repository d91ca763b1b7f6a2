router {
  socket_mode = "01777"
}
