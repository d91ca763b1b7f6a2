includes = ["policies/*.hcl"]

plugins "echo" {
  path = "bin/dsmil-echo"
}

metric {
  listen = "127.0.0.1:9108"
}
