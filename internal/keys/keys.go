// Package keys generates and checks API keys and one-time tokens, which are stored only as SHA-256 hashes.
package keys

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"hash/crc32"
	"strings"
)

// APIKeyPrefix starts every API key, so secret scanners can spot keys.
const APIKeyPrefix = "async_"

const (
	alphabet    = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	bodyLen     = 43 // base62 digits for 256 bits: 62^43 > 2^256
	checksumLen = 6  // base62 digits for 32 bits: 62^6 > 2^32
	apiKeyLen   = len(APIKeyPrefix) + bodyLen + checksumLen
	tokenLen    = 64
	displayLen  = 12
)

// NewAPIKey returns a new API key and its SHA-256. The key is APIKeyPrefix,
// then 43 base62 digits encoding 32 random bytes, then 6 base62 digits
// encoding the CRC32 (IEEE) of those 43 digits, 55 characters in all:
// ^async_[0-9A-Za-z]{49}$.
func NewAPIKey() (raw string, hash [32]byte) {
	var b [32]byte
	rand.Read(b[:]) // never returns an error; it crashes the program instead
	body := base62(b[:], bodyLen)
	raw = APIKeyPrefix + body + checksum(body)
	return raw, Hash(raw)
}

// ValidAPIKey reports whether raw is shaped like a key from NewAPIKey:
// prefix, length, alphabet and checksum. It does no lookup, so callers can
// reject garbage (and typos) before touching the database.
func ValidAPIKey(raw string) bool {
	if len(raw) != apiKeyLen || !strings.HasPrefix(raw, APIKeyPrefix) {
		return false
	}
	rest := raw[len(APIKeyPrefix):]
	for i := 0; i < len(rest); i++ {
		if strings.IndexByte(alphabet, rest[i]) < 0 {
			return false
		}
	}
	body, sum := rest[:bodyLen], rest[bodyLen:]
	return checksum(body) == sum
}

// Hash returns the SHA-256 of s, the form in which keys and tokens are stored.
func Hash(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// DisplayPrefix returns the first 12 characters of raw followed by "…": for
// an API key, "async_" and 6 random characters. It is safe to show and log.
func DisplayPrefix(raw string) string {
	n := 0
	for i := range raw {
		if n == displayLen {
			return raw[:i] + "…"
		}
		n++
	}
	return raw + "…"
}

// NewToken returns a new one-time token, 64 lowercase hex characters encoding
// 256 random bits, and the SHA-256 of that hex string.
func NewToken() (raw string, hash [32]byte) {
	var b [32]byte
	rand.Read(b[:]) // never returns an error; it crashes the program instead
	raw = hex.EncodeToString(b[:])
	return raw, Hash(raw)
}

// ValidToken reports whether s is exactly 64 characters of [0-9a-f].
// Uppercase hex is rejected: NewToken never produces it, and the hash of an
// uppercased token would not match the stored one anyway.
func ValidToken(s string) bool {
	if len(s) != tokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Equal reports whether a and b are equal, in time independent of their contents.
func Equal(a, b [32]byte) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }

// checksum returns the 6-digit base62 CRC32 (IEEE) of body.
func checksum(body string) string {
	c := crc32.ChecksumIEEE([]byte(body))
	return base62([]byte{byte(c >> 24), byte(c >> 16), byte(c >> 8), byte(c)}, checksumLen)
}

// base62 encodes the big-endian number b as exactly width base62 digits,
// most significant first. width must be large enough for b.
func base62(b []byte, width int) string {
	num := append([]byte(nil), b...) // divided in place below
	out := make([]byte, width)
	for i := width - 1; i >= 0; i-- {
		// Long division of num by 62; the remainder is the next digit.
		var rem uint
		for j, d := range num {
			cur := rem<<8 | uint(d)
			num[j] = byte(cur / 62)
			rem = cur % 62
		}
		out[i] = alphabet[rem]
	}
	return string(out)
}
