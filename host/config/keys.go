package config

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
)

// HashKey returns the lowercase hex SHA-256 of an API key: the form
// api_key_sha256 holds. (printf %s "$KEY" | sha256sum computes the same.)
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// MatchKey reports whether key is one of the tenant's API keys. It hashes key
// and compares the digest with every stored digest (api_key_sha256 and the
// digest of the api_key_env key) in constant time, without stopping at the
// first match. The empty key never matches.
func (t *Tenant) MatchKey(key string) bool {
	if t == nil {
		return false
	}
	got := []byte(HashKey(key))
	match := 0
	for _, d := range t.APIKeySHA256 {
		match |= subtle.ConstantTimeCompare(got, []byte(strings.ToLower(d)))
	}
	if t.EnvKeySHA256 != "" {
		match |= subtle.ConstantTimeCompare(got, []byte(strings.ToLower(t.EnvKeySHA256)))
	}
	return match == 1 && key != ""
}
