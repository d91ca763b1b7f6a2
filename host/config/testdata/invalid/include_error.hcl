include = ["include/plugins/*.hcl"]

model "dsmil-echo" {
  profile = "echo"
}
