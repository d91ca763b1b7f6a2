package identity

// Reasons a verifier refuses a claim token: the L7Error.param of its
// CLAIM_TOKEN_INVALID error (docs/dbe.md §12.3). The shim answers 403 for
// ReasonForeignTenant, ReasonPresenter and ReasonIssuerScope (a valid
// identity using a claim that is not its to use) and 401 for the others.
const (
	ReasonMissing          = "missing"           // no L7_CLAIM_TOKEN
	ReasonInvalid          = "invalid"           // malformed, bad signature, too long a lifetime
	ReasonUntrustedMinter  = "untrusted_minter"  // signed by a key the verifier does not trust
	ReasonIssuerScope      = "issuer_scope"      // minted for a tenant its minter may not mint for
	ReasonAudience         = "audience"          // for another verifier
	ReasonExpired          = "expired"           // past expires_at (plus skew)
	ReasonNotYetValid      = "not_yet_valid"     // before issued_at (minus skew)
	ReasonForeignTenant    = "foreign_tenant"    // for another TENANT_ID
	ReasonRevoked          = "revoked"           // its session was revoked
	ReasonPresenter        = "presenter"         // presented by a peer that did not mint it
	ReasonUnknownReference = "unknown_reference" // a claim reference to no token the verifier holds
)
