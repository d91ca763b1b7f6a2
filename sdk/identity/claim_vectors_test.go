package identity

// This file writes and checks the claim-token vectors of docs/dbe.md §12.10,
// testdata/claims/dct1.json. The tokens are signed deterministically (FIPS
// 204, rnd = 0^32) so that they are reproducible; the checks are run
// against the router's real verifier by host/claims (TestClaimVectors).
// Regenerate with: go test ./sdk/identity -run TestClaimVectors -update

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/claims")

// ClaimVectorsPath is where the vectors live, relative to this package.
const claimVectorsPath = "testdata/claims/dct1.json"

// ClaimVectors is the JSON of testdata/claims/dct1.json.
type ClaimVectors struct {
	Description     string            `json:"description"`
	MinterSeed      string            `json:"minter_seed"`
	MinterPublicKey string            `json:"minter_public_key"`
	MinterKeyID     string            `json:"minter_key_id"`
	OtherSeed       string            `json:"other_minter_seed"`
	OtherKeyID      string            `json:"other_minter_key_id"`
	Verifier        ClaimVerifierConf `json:"verifier"`
	Tokens          []ClaimVecToken   `json:"tokens"`
	Checks          []ClaimVecCheck   `json:"checks"`
}

// ClaimVerifierConf is the verifier the checks run against.
type ClaimVerifierConf struct {
	Audience           string   `json:"audience"`
	Issuers            []string `json:"issuers"` // key ids of the trusted minter keys
	SkewSeconds        int64    `json:"skew_seconds"`
	MaxLifetimeSeconds int64    `json:"max_lifetime_seconds"`
}

// ClaimVecToken is one full token, its fields, and its reference.
type ClaimVecToken struct {
	Name      string   `json:"name"`
	Note      string   `json:"note"`
	SignedBy  string   `json:"signed_by"` // "minter", "other_minter", or how the signature was made
	TenantID  string   `json:"tenant_id"`
	ClientID  string   `json:"client_id"`
	Roles     []string `json:"roles"`
	IssuedAt  int64    `json:"issued_at"`
	ExpiresAt int64    `json:"expires_at"`
	Audience  string   `json:"audience"`
	SessionID string   `json:"session_id"`
	KeyID     string   `json:"key_id"`
	TBS       string   `json:"tbs"`
	Signature string   `json:"signature"`
	Token     string   `json:"token"`     // the full L7_CLAIM_TOKEN value: tbs || vec16(signature)
	Reference string   `json:"reference"` // "DCR1" || the signature's first 64 bytes
}

// ClaimVecCheck is one verification, run in order against one verifier:
// its cache is state (a reference resolves only to a token it accepted).
type ClaimVecCheck struct {
	Name      string `json:"name"`
	Note      string `json:"note"`
	Token     string `json:"token"` // a Tokens name
	Form      string `json:"form"`  // "full" or "reference"
	Value     string `json:"value"` // the exact L7_CLAIM_TOKEN value
	Tenant    string `json:"tenant"`
	Now       int64  `json:"now"`                 // the verifier's clock, Unix seconds
	Presenter string `json:"presenter,omitempty"` // the DSMIL-PQ1 channel peer's key id, if any
	Result    string `json:"result"`              // "ok" or the L7Error.param reason
}

func vecSeed(name string) []byte {
	s := sha512.Sum512([]byte("dsmil claim test vector " + name))
	return s[:32]
}

// MakeClaimVectors builds the vectors from their fixed inputs.
func MakeClaimVectors(t testing.TB) *ClaimVectors {
	minter, err := NewKeyFromSeed(vecSeed("minter"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewKeyFromSeed(vecSeed("other minter"))
	if err != nil {
		t.Fatal(err)
	}
	x := hex.EncodeToString
	const iat = 1780000000 // 2026-05-28T20:26:40Z
	v := &ClaimVectors{
		Description: "L7_CLAIM_TOKEN vectors (docs/dbe.md §12.3, §12.10): full DCT1 tokens signed deterministically " +
			"(ML-DSA-87, ctx \"dsmil-claim-v1\", rnd = 0^32) with the keys of minter_seed and other_minter_seed, their " +
			"68-byte DCR1 references, and checks run in order against one verifier configured as \"verifier\" " +
			"(the cache is state: a reference resolves only to a token that verifier accepted). result is \"ok\" or " +
			"the L7Error.param of the ERROR CLAIM_TOKEN_INVALID.",
		MinterSeed: x(minter.Seed()), MinterPublicKey: x(minter.Public().Bytes()), MinterKeyID: minter.Public().KeyID().String(),
		OtherSeed: x(other.Seed()), OtherKeyID: other.Public().KeyID().String(),
		Verifier: ClaimVerifierConf{Audience: "dsmil-router", Issuers: []string{minter.Public().KeyID().String()},
			SkewSeconds: 30, MaxLifetimeSeconds: 86400},
	}
	base := func() *ClaimToken {
		return &ClaimToken{TenantID: "SOC_TEAM_ALPHA", ClientID: "analyst-1", Roles: []string{"chat", "agent"},
			IssuedAt: time.Unix(iat, 0), ExpiresAt: time.Unix(iat+3600, 0), Audience: "dsmil-router",
			SessionID: [16]byte{0x5e, 0x55, 0x10, 0x4e, 1}}
	}
	add := func(name, note, by string, tok *ClaimToken, k *PrivateKey) *ClaimToken {
		if k != nil {
			tok.KeyID = k.Public().KeyID()
			tok.Signature = k.SignDeterministic(ContextClaim, tok.TBS())
		}
		raw := tok.Marshal()
		roles := tok.Roles
		if roles == nil {
			roles = []string{}
		}
		v.Tokens = append(v.Tokens, ClaimVecToken{Name: name, Note: note, SignedBy: by, TenantID: tok.TenantID,
			ClientID: tok.ClientID, Roles: roles, IssuedAt: tok.IssuedAt.Unix(), ExpiresAt: tok.ExpiresAt.Unix(),
			Audience: tok.Audience, SessionID: x(tok.SessionID[:]), KeyID: tok.KeyID.String(), TBS: x(tok.TBS()),
			Signature: x(tok.Signature), Token: x(raw), Reference: x(ClaimReference(raw))})
		return tok
	}
	valid := add("valid", "SOC_TEAM_ALPHA, valid for an hour from issued_at", "minter", base(), minter)
	exp := base()
	exp.IssuedAt, exp.ExpiresAt, exp.SessionID[15] = time.Unix(iat-7200, 0), time.Unix(iat-3600, 0), 2
	add("expired", "expired an hour before the checks' clock", "minter", exp, minter)
	wi := base()
	wi.SessionID[15] = 3
	add("wrong_issuer", "well formed and correctly signed, by a key the verifier does not trust", "other_minter", wi, other)
	aud := base()
	aud.Audience, aud.SessionID[15] = "dsmil-other", 4
	add("wrong_audience", "for another verifier", "minter", aud, minter)
	forged := base()
	forged.TenantID, forged.KeyID, forged.Signature = "ROGUE_TENANT", valid.KeyID, valid.Signature
	add("forged", "valid's signature (and so its reference key) copied onto another tenant's token", "none: valid's signature copied", forged, nil)

	tokens := map[string]ClaimVecToken{}
	for _, tk := range v.Tokens {
		tokens[tk.Name] = tk
	}
	now := int64(iat + 60)
	check := func(name, note, token, form, tenant string, at int64, presenter, result string) {
		tk := tokens[token]
		val := tk.Token
		if form == "reference" {
			val = tk.Reference
		}
		v.Checks = append(v.Checks, ClaimVecCheck{Name: name, Note: note, Token: token, Form: form, Value: val,
			Tenant: tenant, Now: at, Presenter: presenter, Result: result})
	}
	check("reference_first", "a reference before its full token was ever verified", "valid", "reference", "SOC_TEAM_ALPHA", now, "", ReasonUnknownReference)
	check("full_valid", "", "valid", "full", "SOC_TEAM_ALPHA", now, "", "ok")
	check("reference_valid", "now that the full token was accepted", "valid", "reference", "SOC_TEAM_ALPHA", now, "", "ok")
	check("full_valid_presented_by_minter", "on a DSMIL-PQ1 channel whose peer minted it", "valid", "full", "SOC_TEAM_ALPHA", now, v.MinterKeyID, "ok")
	check("full_wrong_presenter", "on a DSMIL-PQ1 channel whose peer did not mint it", "valid", "full", "SOC_TEAM_ALPHA", now, v.OtherKeyID, ReasonPresenter)
	check("reference_wrong_presenter", "", "valid", "reference", "SOC_TEAM_ALPHA", now, v.OtherKeyID, ReasonPresenter)
	check("full_wrong_tenant", "the frame's TENANT_ID is another tenant", "valid", "full", "SOC_TEAM_BRAVO", now, "", ReasonForeignTenant)
	check("reference_wrong_tenant", "", "valid", "reference", "SOC_TEAM_BRAVO", now, "", ReasonForeignTenant)
	check("full_skew_edge", "expires_at + skew − 1: still valid", "valid", "full", "SOC_TEAM_ALPHA", iat+3600+29, "", "ok")
	check("full_expired_by_skew", "expires_at + skew: expired", "valid", "full", "SOC_TEAM_ALPHA", iat+3600+30, "", ReasonExpired)
	check("reference_expired", "the cached token has expired since", "valid", "reference", "SOC_TEAM_ALPHA", iat+3600+30, "", ReasonExpired)
	check("full_not_yet_valid", "issued_at − skew − 1", "valid", "full", "SOC_TEAM_ALPHA", iat-31, "", ReasonNotYetValid)
	check("full_expired", "", "expired", "full", "SOC_TEAM_ALPHA", now, "", ReasonExpired)
	check("reference_to_expired", "an expired token is never accepted, so its reference names nothing", "expired", "reference", "SOC_TEAM_ALPHA", now, "", ReasonUnknownReference)
	check("full_wrong_issuer", "", "wrong_issuer", "full", "SOC_TEAM_ALPHA", now, "", ReasonUntrustedMinter)
	check("reference_wrong_issuer", "", "wrong_issuer", "reference", "SOC_TEAM_ALPHA", now, "", ReasonUnknownReference)
	check("full_wrong_audience", "", "wrong_audience", "full", "SOC_TEAM_ALPHA", now, "", ReasonAudience)
	check("full_forged", "its reference key is valid's, but the whole token differs: verified, and the signature fails", "forged", "full", "ROGUE_TENANT", now, "", ReasonInvalid)
	check("reference_valid_again", "the forgery changed nothing", "valid", "reference", "SOC_TEAM_ALPHA", now, "", "ok")
	return v
}

// LoadClaimVectors reads the vectors from path.
func LoadClaimVectors(t testing.TB, path string) *ClaimVectors {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v ClaimVectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

// TestClaimVectors: the file is what the implementation produces (-update
// rewrites it), every token parses back to its fields, its signature
// verifies under its signer exactly when it should, and every reference is
// "DCR1" followed by the signature's first 64 bytes.
func TestClaimVectors(t *testing.T) {
	v := MakeClaimVectors(t)
	j, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	j = append(j, '\n')
	if *update {
		if err := os.WriteFile(claimVectorsPath, j, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := os.ReadFile(claimVectorsPath); err != nil || !bytes.Equal(got, j) {
		t.Fatalf("%s is missing or differs from what the implementation produces (%v): run with -update only if the change is intended", claimVectorsPath, err)
	}
	keys := map[string]*PublicKey{}
	for _, s := range []string{v.MinterSeed, v.OtherSeed} {
		seed, _ := hex.DecodeString(s)
		k, err := NewKeyFromSeed(seed)
		if err != nil {
			t.Fatal(err)
		}
		keys[k.Public().KeyID().String()] = k.Public()
	}
	for _, tk := range v.Tokens {
		raw, _ := hex.DecodeString(tk.Token)
		tok, err := ParseClaimToken(raw)
		if err != nil {
			t.Fatalf("%s: %v", tk.Name, err)
		}
		tbs, _ := hex.DecodeString(tk.TBS)
		sig, _ := hex.DecodeString(tk.Signature)
		if tok.TenantID != tk.TenantID || tok.IssuedAt.Unix() != tk.IssuedAt || tok.ExpiresAt.Unix() != tk.ExpiresAt ||
			tok.KeyID.String() != tk.KeyID || !bytes.Equal(tok.TBS(), tbs) || !bytes.Equal(raw, append(append(tbs, byte(len(sig)>>8), byte(len(sig))), sig...)) {
			t.Errorf("%s: fields and bytes disagree", tk.Name)
		}
		verifies := keys[tk.KeyID] != nil && keys[tk.KeyID].Verify(ContextClaim, tbs, sig)
		if want := tk.SignedBy == "minter" || tk.SignedBy == "other_minter"; verifies != want {
			t.Errorf("%s: signature verifies = %v, want %v", tk.Name, verifies, want)
		}
		ref, _ := hex.DecodeString(tk.Reference)
		if len(ref) != 68 || string(ref[:4]) != "DCR1" || !bytes.Equal(ref[4:], sig[:64]) {
			t.Errorf("%s: reference %x", tk.Name, ref)
		}
	}
}
