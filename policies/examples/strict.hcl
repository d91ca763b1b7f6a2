# strict.hcl: an explicit allow-list on top of the tenant grants. Not loaded
# by default (dsmil.hcl includes policies/*.hcl only); copy it into
# policies/ and adapt the tenant names to use it.
#
# Rules are tried by priority, highest first, and the first whose `when`
# is true decides. The catch-all deny at the lowest priority turns the
# implicit "within the tenant's grant" allow off: only requests an allow
# rule above it matches are served.

policy "night-shift-no-crypto" {
  description = "The night shift team does not work on CRYPTO material."
  effect      = "deny"
  priority    = 200
  when        = request.tenant == "SOC_NIGHT_SHIFT" && contains(request.compartments, "CRYPTO")
  reason      = "DENIED: CRYPTO work is not allowed for the night shift"
}

policy "soc-teams" {
  description = "SOC teams (tenants SOC_TEAM_*) may chat and run agent tasks in the SOC compartment."
  effect      = "allow"
  priority    = 100
  when        = startswith(request.tenant, "SOC_TEAM_") && contains(request.compartments, "SOC") && request.operation != "completion"
}

policy "local-tools-echo" {
  description = "Local tools may use the echo smoke-test model."
  effect      = "allow"
  priority    = 100
  when        = request.tenant == "LOCAL_TOOL_USER" && request.profile == "echo"
}

policy "deny-everything-else" {
  description = "Strict mode: nothing is served unless an allow rule above matches."
  effect      = "deny"
  priority    = -1000
  when        = true
  reason      = "DENIED: no allow rule matches this request (strict policy)"
}
