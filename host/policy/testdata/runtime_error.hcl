# Type-checks at load (the list's length is unknown then) but fails at run
# time for a request with no compartment: indexing an empty list.
policy "first-compartment" {
  effect = "deny"
  when   = request.compartments[0] == "LAB"
}
