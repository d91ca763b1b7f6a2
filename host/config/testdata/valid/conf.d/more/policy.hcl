policy "from-nested-include" {
  effect = "deny"
}
