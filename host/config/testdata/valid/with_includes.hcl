# Includes: globs are relative to the file that names them, matches are read in
# sorted order, a file is read once however often it matches (so this file
# matching itself through conf.d/b.hcl is harmless), and an included file may
# include more.
include = ["conf.d/*.hcl", "conf.d/a.hcl"]

model "dsmil-echo" {
  profile = "echo"
}
