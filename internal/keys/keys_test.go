package keys

import (
	"crypto/sha256"
	"math/big"
	"regexp"
	"strings"
	"testing"
)

var apiKeyRE = regexp.MustCompile(`^async_[0-9A-Za-z]{49}$`)

// decode62 is an independent base62 decoder (math/big) for checking base62.
func decode62(t *testing.T, s string) *big.Int {
	t.Helper()
	n := new(big.Int)
	for _, c := range []byte(s) {
		d := strings.IndexByte(alphabet, c)
		if d < 0 {
			t.Fatalf("not base62: %q", s)
		}
		n.Mul(n, big.NewInt(62)).Add(n, big.NewInt(int64(d)))
	}
	return n
}

func TestBase62(t *testing.T) {
	t.Parallel()
	max := make([]byte, 32)
	for i := range max {
		max[i] = 0xff
	}
	tests := []struct {
		name  string
		in    []byte
		width int
		want  string
	}{
		{"zero", []byte{0}, 1, "0"},
		{"zero padded", []byte{0, 0, 0, 0}, 6, "000000"},
		{"61", []byte{61}, 1, "z"},
		{"62", []byte{62}, 2, "10"},
		{"255", []byte{255}, 2, "47"},
		{"uint32 max", []byte{0xff, 0xff, 0xff, 0xff}, 6, "4gfFC3"},
		{"2^256-1", max, 43, ""}, // checked by round trip below
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := base62(tt.in, tt.width)
			if len(got) != tt.width {
				t.Fatalf("len = %d, want %d", len(got), tt.width)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("base62 = %q, want %q", got, tt.want)
			}
			if decode62(t, got).Cmp(new(big.Int).SetBytes(tt.in)) != 0 {
				t.Errorf("%q does not decode back to %x", got, tt.in)
			}
		})
	}
}

func TestNewAPIKey(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		raw, hash := NewAPIKey()
		if !apiKeyRE.MatchString(raw) {
			t.Fatalf("key %q does not match %v", raw, apiKeyRE)
		}
		if !ValidAPIKey(raw) {
			t.Fatalf("ValidAPIKey(%q) = false", raw)
		}
		if hash != sha256.Sum256([]byte(raw)) || hash != Hash(raw) {
			t.Fatal("hash is not SHA-256 of the key")
		}
		body := raw[len(APIKeyPrefix) : len(APIKeyPrefix)+bodyLen]
		if decode62(t, body).BitLen() > 256 {
			t.Fatalf("body %q holds more than 256 bits", body)
		}
		if seen[raw] {
			t.Fatal("duplicate key")
		}
		seen[raw] = true
	}
}

func TestChecksumCatchesEverySubstitution(t *testing.T) {
	t.Parallel()
	for range 3 {
		raw, _ := NewAPIKey()
		for i := range len(raw) {
			for c := range 256 {
				if byte(c) == raw[i] {
					continue
				}
				mutated := raw[:i] + string([]byte{byte(c)}) + raw[i+1:]
				if ValidAPIKey(mutated) {
					t.Fatalf("ValidAPIKey accepted %q (position %d of %q changed)", mutated, i, raw)
				}
			}
		}
	}
}

func TestValidAPIKeyRejects(t *testing.T) {
	t.Parallel()
	good, _ := NewAPIKey()
	other, _ := NewAPIKey()
	rest := good[len(APIKeyPrefix):]
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"good", good, true},
		{"empty", "", false},
		{"prefix only", APIKeyPrefix, false},
		{"no prefix", rest, false},
		{"wrong prefix", "asynq_" + rest, false},
		{"uppercase prefix", "ASYNC_" + rest, false},
		{"prefix without underscore", "async" + rest + "x", false},
		{"one short", good[:len(good)-1], false},
		{"one long", good + "0", false},
		{"leading space", " " + good[:len(good)-1], false},
		{"trailing newline", good + "\n", false},
		{"dash", good[:10] + "-" + good[11:], false},
		{"underscore in body", good[:10] + "_" + good[11:], false},
		{"non-ASCII", good[:10] + "é" + good[12:], false},
		{"other key's checksum", good[:len(good)-checksumLen] + other[len(other)-checksumLen:], false},
		{"all zeros", APIKeyPrefix + strings.Repeat("0", bodyLen+checksumLen), false},
		{"all zeros with checksum", APIKeyPrefix + strings.Repeat("0", bodyLen) + checksum(strings.Repeat("0", bodyLen)), true},
		{"bearer included", "Bearer " + good, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ValidAPIKey(tt.in); got != tt.want {
				t.Errorf("ValidAPIKey(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestDisplayPrefix(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"async_AbCdEf0123456789", "async_AbCdEf…"},
		{"0123456789abcdef", "0123456789ab…"},
		{"short", "short…"},
		{"", "…"},
		{"exactly12chr", "exactly12chr…"},
		{"ééééééééééééééé", "éééééééééééé…"}, // never splits a character
	}
	for _, tt := range tests {
		if got := DisplayPrefix(tt.in); got != tt.want {
			t.Errorf("DisplayPrefix(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	raw, _ := NewAPIKey()
	if got := DisplayPrefix(raw); got != raw[:12]+"…" || !strings.HasPrefix(got, APIKeyPrefix) {
		t.Errorf("DisplayPrefix(key) = %q", got)
	}
}

func TestNewTokenUnique(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool, 10_000)
	for range 10_000 {
		raw, hash := NewToken()
		if !ValidToken(raw) {
			t.Fatalf("ValidToken(%q) = false", raw)
		}
		if hash != sha256.Sum256([]byte(raw)) {
			t.Fatal("hash is not SHA-256 of the hex token")
		}
		if seen[raw] {
			t.Fatalf("duplicate token %q", raw)
		}
		seen[raw] = true
	}
}

func TestValidToken(t *testing.T) {
	t.Parallel()
	hex64 := strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"good", hex64, true},
		{"all f", strings.Repeat("f", 64), true},
		{"empty", "", false},
		{"63 chars", hex64[:63], false},
		{"65 chars", hex64 + "0", false},
		{"uppercase", strings.ToUpper(hex64), false},
		{"one uppercase", "A" + hex64[1:], false},
		{"g", "g" + hex64[1:], false},
		{"space", " " + hex64[1:], false},
		{"slash", "/" + hex64[1:], false},
		{"NUL", "\x00" + hex64[1:], false},
		{"non-ASCII", "é" + hex64[2:], false},
		{"api key", "async_" + hex64[6:], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ValidToken(tt.in); got != tt.want {
				t.Errorf("ValidToken(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestEqual(t *testing.T) {
	t.Parallel()
	a, b := Hash("a"), Hash("b")
	c := a
	c[31] ^= 1
	tests := []struct {
		name string
		x, y [32]byte
		want bool
	}{
		{"same", a, Hash("a"), true},
		{"different", a, b, false},
		{"last bit", a, c, false},
		{"zero", [32]byte{}, [32]byte{}, true},
	}
	for _, tt := range tests {
		if got := Equal(tt.x, tt.y); got != tt.want {
			t.Errorf("%s: Equal = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func FuzzValidAPIKey(f *testing.F) {
	good, _ := NewAPIKey()
	for _, s := range []string{"", APIKeyPrefix, good, good[:len(good)-1], good + "0", "async_" + strings.Repeat("z", 49), "async_é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidAPIKey(s) {
			if !apiKeyRE.MatchString(s) {
				t.Fatalf("ValidAPIKey accepted %q, which does not match the format", s)
			}
			rest := s[len(APIKeyPrefix):]
			if checksum(rest[:bodyLen]) != rest[bodyLen:] {
				t.Fatalf("ValidAPIKey accepted %q with a wrong checksum", s)
			}
		}
		_ = DisplayPrefix(s)
	})
}

func FuzzValidToken(f *testing.F) {
	raw, _ := NewToken()
	for _, s := range []string{"", raw, strings.ToUpper(raw), raw[:63], raw + "0", strings.Repeat("g", 64)} {
		f.Add(s)
	}
	tokenRE := regexp.MustCompile(`^[0-9a-f]{64}$`)
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidToken(s), tokenRE.MatchString(s); got != want {
			t.Fatalf("ValidToken(%q) = %v, regexp says %v", s, got, want)
		}
	})
}
