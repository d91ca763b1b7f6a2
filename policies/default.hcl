# default.hcl: the policy shipped with DSMIL L7, included by dsmil.hcl
# (include = ["policies/*.hcl"]). docs/policy.md describes the language.
#
# The built-in rules run before these and cannot be changed here: KINETIC
# and EXEC are always denied, and every request must lie within its
# tenant's grant (compartments, classification, ROE, profiles and models of
# its tenant block). The rules below narrow that grant; a request that
# passes everything is allowed by builtin.grant.

# TRAINING tenants may only use development profiles. The echo plugin is
# the smoke-test plugin; add your development profiles here.
policy "dev-profiles" {
  description  = "Profiles that TRAINING tenants may use."
  dev_profiles = ["echo"]
}

policy "crypto-requires-secret" {
  description = "CRYPTO compartment material is never handled as UNCLAS."
  effect      = "deny"
  priority    = 100
  when        = contains(request.compartments, "CRYPTO") && request.classification == "UNCLAS"
  reason      = "DENIED: CRYPTO compartment requests must be classified SECRET or above"
}

policy "agent-tasks-in-soc" {
  description = "Agent tasks act on SOC tooling: outside TRAINING they need the SOC compartment."
  effect      = "deny"
  priority    = 100
  when        = request.operation == "agent" && request.roe != "TRAINING" && !contains(request.compartments, "SOC")
  reason      = "DENIED: agent tasks require the SOC compartment"
}
