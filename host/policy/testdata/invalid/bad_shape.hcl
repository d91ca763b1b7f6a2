policy "no-effect" {
  when = request.roe == "TRAINING"
}

policy "no-when" {
  effect = "deny"
}

policy "empty" {
  description = "neither a rule nor a declaration"
}

policy "mixed" {
  dev_profiles = ["echo"]
  effect       = "deny"
  when         = true
}

policy "bad-dev-profile" {
  dev_profiles = ["Echo!"]
}

policy "unknown-attribute" {
  effect   = "deny"
  when     = true
  severity = "high"
}

policy "builtin.grant" {
  effect = "allow"
  when   = true
}

policy "reason-with-variables" {
  effect = "deny"
  when   = true
  reason = "tenant ${request.tenant} denied"
}
