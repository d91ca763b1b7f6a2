include = "include/plugins/*.hcl"
