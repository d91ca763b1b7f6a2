package claims

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
)

// claimVectors is the part of sdk/identity/testdata/claims/dct1.json (docs/dbe.md
// §12.10) the verifier is checked against.
type claimVectors struct {
	MinterPublicKey string `json:"minter_public_key"`
	Verifier        struct {
		Audience           string   `json:"audience"`
		Issuers            []string `json:"issuers"`
		SkewSeconds        int64    `json:"skew_seconds"`
		MaxLifetimeSeconds int64    `json:"max_lifetime_seconds"`
	} `json:"verifier"`
	Checks []struct {
		Name      string `json:"name"`
		Value     string `json:"value"`
		Tenant    string `json:"tenant"`
		Now       int64  `json:"now"`
		Presenter string `json:"presenter"`
		Result    string `json:"result"`
	} `json:"checks"`
}

// TestClaimVectors runs the claim-token vectors' checks, in order, against
// one real Verifier fed the frames a router would see: every accepted value
// must be accepted, every refused one refused with exactly the vector's
// reason (L7Error.param).
func TestClaimVectors(t *testing.T) {
	b, err := os.ReadFile("../../sdk/identity/testdata/claims/dct1.json")
	if err != nil {
		t.Fatal(err)
	}
	var v claimVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	raw, _ := hex.DecodeString(v.MinterPublicKey)
	minter, err := identity.ParsePublicKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Verifier.Issuers) != 1 || v.Verifier.Issuers[0] != minter.KeyID().String() {
		t.Fatalf("issuers %v, want the minter %s", v.Verifier.Issuers, minter.KeyID())
	}
	var now time.Time
	ver, err := NewVerifier(VerifierConfig{Issuers: []*identity.PublicKey{minter}, Audience: v.Verifier.Audience,
		Skew: time.Duration(v.Verifier.SkewSeconds) * time.Second, MaxLifetime: time.Duration(v.Verifier.MaxLifetimeSeconds) * time.Second,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Checks) < 10 {
		t.Fatalf("only %d checks", len(v.Checks))
	}
	for _, c := range v.Checks {
		now = time.Unix(c.Now, 0)
		tok, _ := hex.DecodeString(c.Value)
		f := &dbe.Frame{Type: dbe.MsgChatReq, CorrelationID: 1}
		f.SetTenantID(c.Tenant)
		f.SetClaimToken(tok)
		if _, err := dbe.Decode(mustMarshal(t, f)); err != nil {
			t.Fatalf("%s: the frame does not decode: %v", c.Name, err)
		}
		ctx := context.Background()
		if c.Presenter != "" {
			id, err := identity.ParseKeyID(c.Presenter)
			if err != nil {
				t.Fatal(err)
			}
			ctx = identity.WithPresenter(ctx, id)
		}
		got := "ok"
		if err := ver.VerifyClaim(ctx, f); err != nil {
			me, _ := err.(*mux.Error)
			if me == nil || me.Code != dbe.CodeClaimTokenInvalid {
				t.Fatalf("%s: %v is not a CLAIM_TOKEN_INVALID error", c.Name, err)
			}
			got = me.Param
		}
		if got != c.Result {
			t.Errorf("%s: %s, want %s", c.Name, got, c.Result)
		}
	}
}

func mustMarshal(t *testing.T, f *dbe.Frame) []byte {
	t.Helper()
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
