package vault

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func newCipher(t *testing.T, key []byte) *Cipher {
	t.Helper()
	c, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewKeyLength(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 24, 31, 33, 64} {
		if _, err := New(make([]byte, n)); err == nil {
			t.Errorf("New(%d-byte key) succeeded, want error", n)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	c := newCipher(t, testKey(7))
	for _, pt := range [][]byte{nil, {}, []byte("x"), []byte("Bearer r8_secret-value"), bytes.Repeat([]byte("ab"), 5000)} {
		sealed := c.Seal(pt, "tok_abc")
		if got, want := len(sealed), 12+len(pt)+16; got != want {
			t.Errorf("len(sealed) = %d, want %d", got, want)
		}
		got, err := c.Open(sealed, "tok_abc")
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, pt) {
			t.Errorf("Open = %q, want %q", got, pt)
		}
	}
}

func TestOpenFailures(t *testing.T) {
	t.Parallel()
	c := newCipher(t, testKey(1))
	other := newCipher(t, testKey(2))
	pt := []byte("r8_0123456789abcdef")
	sealed := c.Seal(pt, "tok_A")

	check := func(name string, got []byte, err error) {
		t.Helper()
		if !errors.Is(err, ErrOpen) {
			t.Errorf("%s: err = %v, want ErrOpen", name, err)
		}
		if got != nil {
			t.Errorf("%s: returned plaintext %q", name, got)
		}
	}
	got, err := other.Open(sealed, "tok_A")
	check("wrong key", got, err)
	got, err = c.Open(sealed, "tok_B")
	check("wrong aad", got, err)
	got, err = c.Open(sealed, "")
	check("empty aad", got, err)
	for i := range sealed {
		flipped := bytes.Clone(sealed)
		flipped[i] ^= 0x01
		got, err = c.Open(flipped, "tok_A")
		check("flipped byte", got, err)
	}
	for _, n := range []int{0, 1, 11, 12, 27, len(sealed) - 1} {
		got, err = c.Open(sealed[:n], "tok_A")
		check("truncated", got, err)
	}
	got, err = c.Open(append(bytes.Clone(sealed), 0), "tok_A")
	check("extended", got, err)
}

func TestNoncesDiffer(t *testing.T) {
	t.Parallel()
	c := newCipher(t, testKey(3))
	pt := []byte("same plaintext")
	seen := map[string]bool{}
	nonces := map[string]bool{}
	for range 100 {
		s := c.Seal(pt, "tok_x")
		if seen[string(s)] {
			t.Fatal("two seals of the same plaintext are identical")
		}
		seen[string(s)] = true
		nonces[string(s[:12])] = true
	}
	if len(nonces) != 100 {
		t.Errorf("%d distinct nonces in 100 seals", len(nonces))
	}
}

func TestPlaintextNotInSealed(t *testing.T) {
	t.Parallel()
	c := newCipher(t, testKey(9))
	secret := []byte("sk-live-THIS-IS-THE-SECRET-VALUE-0123456789")
	sealed := c.Seal(secret, "tok_secret")
	forms := [][]byte{
		secret,
		secret[:8],
		[]byte(hex.EncodeToString(secret)),
		[]byte(base64.StdEncoding.EncodeToString(secret)),
	}
	for _, f := range forms {
		if bytes.Contains(sealed, f) {
			t.Errorf("sealed output contains %q", f)
		}
	}
	for _, enc := range [][]byte{[]byte(hex.EncodeToString(sealed)), []byte(base64.StdEncoding.EncodeToString(sealed))} {
		if bytes.Contains(enc, secret) {
			t.Error("encoded sealed output contains the secret")
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	c := newCipher(t, testKey(4))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			aad := NewTokenID()
			for range 50 {
				pt := []byte(strings.Repeat("v", i+1))
				got, err := c.Open(c.Seal(pt, aad), aad)
				if err != nil || !bytes.Equal(got, pt) {
					t.Errorf("round trip failed: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i*7 + 250) // includes bytes that make + / - _ in base64
	}
	hexKey := hex.EncodeToString(key)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"hex lower", hexKey, true},
		{"hex upper", strings.ToUpper(hexKey), true},
		{"hex with newline", hexKey + "\n", true},
		{"hex with spaces", "  " + hexKey + "\t", true},
		{"base64 std", base64.StdEncoding.EncodeToString(key), true},
		{"base64 std raw", base64.RawStdEncoding.EncodeToString(key), true},
		{"base64 url", base64.URLEncoding.EncodeToString(key), true},
		{"base64 url raw", base64.RawURLEncoding.EncodeToString(key), true},
		{"empty", "", false},
		{"hex 63", hexKey[:63], false},
		{"hex 62", hexKey[:62], false},
		{"hex 66", hexKey + "00", false},
		{"hex bad char", "g" + hexKey[1:], false},
		{"base64 16 bytes", base64.StdEncoding.EncodeToString(key[:16]), false},
		{"base64 33 bytes", base64.StdEncoding.EncodeToString(append(bytes.Clone(key), 1)), false},
		{"base64 48 bytes", base64.StdEncoding.EncodeToString(append(bytes.Clone(key), key[:16]...)), false},
		{"passphrase", "correct horse battery staple", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseKey(tt.in)
			if !tt.ok {
				if err == nil {
					t.Fatalf("ParseKey succeeded, want error")
				}
				if err.Error() != "vault key must be 32 bytes as 64 hex characters or base64" {
					t.Errorf("error = %q", err)
				}
				if tt.in != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.in)) {
					t.Error("error repeats the key")
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey: %v", err)
			}
			if !bytes.Equal(got, key) {
				t.Errorf("ParseKey = %x, want %x", got, key)
			}
		})
	}
}

func TestKeyFileCreateAndReread(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "aq.db.vault-key")
	k1, created, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("created = false for a new file")
	}
	if len(k1) != KeySize {
		t.Fatalf("key length %d", len(k1))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode = %04o, want 0600", perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}\n$`).Match(b) {
		t.Errorf("file content %q is not one line of 64 hex characters", b)
	}

	k2, created, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Error("created = true for an existing file")
	}
	if !bytes.Equal(k1, k2) {
		t.Error("reread gives a different key")
	}

	// Data sealed with the first key opens with the reread one.
	sealed := newCipher(t, k1).Seal([]byte("v"), "tok_1")
	if _, err := newCipher(t, k2).Open(sealed, "tok_1"); err != nil {
		t.Error(err)
	}

	// No temporary files are left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
}

func TestKeyFileRefusesLoosePermissions(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o606} {
		path := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(path, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreateKeyFile(path)
		if err == nil {
			t.Fatalf("mode %04o accepted", mode)
		}
		if !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: error %q does not say to chmod 600", mode, err)
		}
		if strings.Contains(err.Error(), strings.Repeat("ab", 32)) {
			t.Error("error repeats the key")
		}
	}
}

func TestKeyFileAcceptsOwnerOnly(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o600, 0o400} {
		path := filepath.Join(t.TempDir(), "key")
		want := testKey(0xab)
		if err := os.WriteFile(path, []byte(hex.EncodeToString(want)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		got, created, err := LoadOrCreateKeyFile(path)
		if err != nil {
			t.Fatalf("mode %04o: %v", mode, err)
		}
		if created || !bytes.Equal(got, want) {
			t.Errorf("mode %04o: created=%v key=%x", mode, created, got)
		}
	}
}

func TestKeyFileBadContent(t *testing.T) {
	t.Parallel()
	for _, content := range []string{"", "\n", "not a key\n", strings.Repeat("a", 63), strings.Repeat("ab", 1000)} {
		path := filepath.Join(t.TempDir(), "key")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadOrCreateKeyFile(path); err == nil {
			t.Errorf("content %q accepted", content)
		} else if !strings.Contains(err.Error(), path) {
			t.Errorf("error %q does not name the file", err)
		}
	}
}

func TestKeyFileDirectoryRefused(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "key")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKeyFile(dir); err == nil {
		t.Error("a directory was accepted as a key file")
	}
}

func TestKeyFileMissingDirectory(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "missing", "key")
	if _, _, err := LoadOrCreateKeyFile(path); err == nil {
		t.Error("no error for a key file in a missing directory")
	}
}

func TestKeyFileConcurrentCreate(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key")
	const n = 8
	keys := make([][]byte, n)
	createdCount := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, created, err := LoadOrCreateKeyFile(path)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i], createdCount[i] = k, created
		}()
	}
	wg.Wait()
	made := 0
	for i := range n {
		if !bytes.Equal(keys[i], keys[0]) {
			t.Error("concurrent callers got different keys")
		}
		if createdCount[i] {
			made++
		}
	}
	if made != 1 {
		t.Errorf("%d callers report creating the file, want 1", made)
	}
}

func TestTokenID(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^tok_[0-9A-Za-z]{24}$`)
	seen := map[string]bool{}
	counts := map[byte]int{}
	for range 2000 {
		id := NewTokenID()
		if !re.MatchString(id) {
			t.Fatalf("NewTokenID = %q", id)
		}
		if !ValidTokenID(id) {
			t.Fatalf("ValidTokenID(%q) = false", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		for i := 4; i < len(id); i++ {
			counts[id[i]]++
		}
	}
	if len(counts) != 62 {
		t.Errorf("%d distinct characters used, want 62", len(counts))
	}

	good := "tok_" + strings.Repeat("aZ9", 8)
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{good, true},
		{"", false},
		{"tok_", false},
		{good[:len(good)-1], false},
		{good + "a", false},
		{"tak_" + good[4:], false},
		{"TOK_" + good[4:], false},
		{good[:10] + "-" + good[11:], false},
		{good[:10] + "_" + good[11:], false},
		{good[:10] + "é"[:1] + good[11:], false},
		{"async_" + good[6:], false},
	} {
		if got := ValidTokenID(tt.in); got != tt.want {
			t.Errorf("ValidTokenID(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
