// Package identity holds the long-term identities of the DSMIL L7 plane and
// the claim tokens that carry a tenant's authorization on each request.
//
// Every party — router, shim, each plugin, local DBE clients — owns an
// ML-DSA-87 (FIPS 204) key pair. An operator root key signs an identity
// Bundle that binds a name and a role to a public key for a validity period;
// peers prove their identity in the channel handshake (sdk/session.PQ) by
// presenting their bundle and signing the handshake transcript. The shim
// mints one ClaimToken per tenant session with its key (Minter), and the
// router checks it on every request (host/claims, which is not part of the
// SDK); a client may send a short claim reference (ClaimReference) in place
// of a token the router has verified, and a refusal names one of the Reason
// constants.
//
// The wire encodings of bundles and tokens are specified in docs/dbe.md §12;
// key files are PEM blocks, and a private key file that group or others may
// read is refused.
package identity
