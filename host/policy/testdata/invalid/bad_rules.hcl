policy "bad-effect" {
  effect = "permit"
  when   = true
}

policy "typo-in-attribute" {
  effect = "deny"
  when   = request.tennant == "SOC_TEAM_ALPHA"
}

policy "not-a-bool" {
  effect = "deny"
  when   = request.tenant
}

policy "unknown-function" {
  effect = "deny"
  when   = regexmatch(request.tenant, "^SOC")
}

policy "unknown-variable" {
  effect = "allow"
  when   = user.name == "root"
}

policy "fractional-priority" {
  effect   = "deny"
  priority = 1.5
  when     = false
}

policy "huge-priority" {
  effect   = "deny"
  priority = 5000000
  when     = false
}

policy "wrong-arg-type" {
  effect = "deny"
  when   = startswith(request.compartments, "SOC")
}
