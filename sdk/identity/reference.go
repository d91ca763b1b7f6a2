package identity

// A claim reference is the L7_CLAIM_TOKEN value "DCR1" followed by the
// ClaimKey of a full token: docs/dbe.md §4. After one request with the full
// token (≈4.7 KB), a client sends 68 bytes instead; the router accepts a
// reference only to a token it has verified, that has not expired, and — on
// a sealed session — that the same peer minted.
const referenceMagic = "DCR1"

// ClaimKey identifies a full claim token: the first 64 bytes of its
// signature, ML-DSA-87's commitment hash c̃, a SHAKE-256 digest over the
// signer's key and the token's content. It is unique per genuine token, but
// it is not secret: a forgery can copy a genuine signature, so whoever finds
// a token by its key must also compare the whole token.
type ClaimKey [64]byte

// ReferenceSize is the size of a claim reference.
const ReferenceSize = len(referenceMagic) + len(ClaimKey{})

// ClaimKeyOf returns the key of a full claim token, false if token is too
// short to be one. It does not parse or verify the token.
func ClaimKeyOf(token []byte) (k ClaimKey, ok bool) {
	if len(token) < 2+SignatureSize {
		return k, false
	}
	copy(k[:], token[len(token)-SignatureSize:])
	return k, true
}

// ClaimReference returns the reference to a full claim token, or nil if
// token is too short to be one.
func ClaimReference(token []byte) []byte {
	k, ok := ClaimKeyOf(token)
	if !ok {
		return nil
	}
	return append([]byte(referenceMagic), k[:]...)
}

// ParseClaimReference returns the key a claim reference names, false if b
// is not a claim reference.
func ParseClaimReference(b []byte) (k ClaimKey, ok bool) {
	if len(b) != ReferenceSize || string(b[:len(referenceMagic)]) != referenceMagic {
		return k, false
	}
	copy(k[:], b[len(referenceMagic):])
	return k, true
}
