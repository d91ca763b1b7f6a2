# Test fixture: policy blocks are kept undecoded for the policy engine, so
# their contents here only need to be valid HCL.
policy "deny-kinetic" {
  description = "The KINETIC compartment is never served at Layer 7."
  deny {
    compartments = ["KINETIC"]
  }
}

policy "deny-exec" {
  description = "EXEC classification requires Layer 9 authorization."
  deny {
    classification = "EXEC"
  }
}
