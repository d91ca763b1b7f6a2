package claims

import (
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/sdk/identity"
)

var _ router.ClaimResolver = (*Verifier)(nil)

// FullToken returns the full claim token a claim reference stands for, if
// this verifier has verified it (nil otherwise), or token itself when it is
// not a reference. The router forwards full tokens to worker nodes, whose
// routers verify them again and have not seen the tokens references name.
func (v *Verifier) FullToken(token []byte) []byte {
	ref, ok := identity.ParseClaimReference(token)
	if !ok {
		return token
	}
	v.mu.RLock()
	e := v.cache[ref]
	v.mu.RUnlock()
	if e == nil {
		return nil
	}
	return e.raw
}
