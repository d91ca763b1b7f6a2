// Package policy is the L7 policy engine: it decides whether a request
// frame (L7_CHAT_REQ, L7_AGENT_TASK, or the dry-run L7_POLICY_CHECK) may be
// served, and implements router.Policy and router.PolicyChecker (the dry
// run the router answers L7_POLICY_CHECK with, [Engine.Check]).
//
// A decision is made in a fixed order (docs/policy.md has the details):
//
//  1. Built-in rules, which no configuration can lift: KINETIC denied,
//     EXEC denied, unknown tenant denied, then the tenant's grant:
//     compartments a subset of the tenant's, classification dominated by
//     the tenant's, ROE_LEVEL equal to the tenant's, the operation allowed
//     by that ROE, the profile in the tenant's allow-list (and, under
//     TRAINING, a development profile), the model (when it names a
//     configured one) allowed to the tenant and served by the profile.
//  2. Custom rules from the config's policy blocks (policies/*.hcl), by
//     priority, highest first (deny before allow at equal priority, then
//     load order): the first whose `when` expression is true decides. A
//     rule whose expression fails to evaluate denies (fail closed).
//  3. Otherwise the request is allowed by builtin.grant: the tenant block
//     is the implicit allow rule. Anything outside a tenant's grant has
//     already been denied, so the engine is deny-by-default.
//
// Every decision names its rule and a reason and, on request, carries the
// trail of rules evaluated. [Engine.Decide] logs one line per request
// (never prompt text).
//
//	eng, diags := policy.New(cfg, logger.Named("policy"))
//	if diags.HasErrors() {
//		_ = config.WriteDiagnostics(os.Stderr, cfg.Files(), diags)
//		return diags
//	}
//	router.New(router.Config{Policy: eng, ...})
package policy
