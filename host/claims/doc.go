// Package claims is the router's check of L7_CLAIM_TOKENs: a Verifier that
// accepts a token only when one of the configured issuer keys (the shim's,
// or a claim_issuer block's) signed it for this audience and for the frame's
// TENANT_ID, within its validity and lifetime limits, for a tenant its
// issuer may mint for, presented by the peer that minted it, and not
// revoked. Verified tokens are cached, so a repeated token, or a 68-byte
// claim reference to it, costs well under a microsecond.
//
// A refusal is a CLAIM_TOKEN_INVALID error whose Param is one of the
// identity.Reason constants, which the shim maps to 401 or 403. Tokens, their
// minting (identity.Minter), claim references and those reasons are wire
// vocabulary (docs/dbe.md §12.3) and live in sdk/identity, which plugin
// authors and DBE clients import; the verifier is the host's alone.
package claims
