include = [
  "include/does-not-exist.hcl",
  "include/none-match-*.hcl",
  "include/[bad-glob",
  "",
]
