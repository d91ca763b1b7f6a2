include = ["include/syntax/*.hcl"]
