policy "unclosed" {
  effect = "deny"
  when   = (request.tenant == "A"
}
