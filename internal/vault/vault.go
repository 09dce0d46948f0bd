// Package vault encrypts Token Vault values at rest with AES-256-GCM.
//
// A sealed value is nonce || ciphertext || tag (12 + len(plaintext) + 16
// bytes) with a fresh random nonce per call, bound to additional data (the
// token id) so a value copied onto another token's row does not decrypt.
// With random 96-bit nonces one key is good for about 2^32 seals, far more
// than a vault ever holds.
package vault

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length of a vault key in bytes (AES-256).
const KeySize = 32

// TokenIDPrefix starts every token id.
const TokenIDPrefix = "tok_"

const (
	alphabet     = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	tokenBodyLen = 24 // base62 characters: about 143 bits
	maxKeyFile   = 1024
)

// ErrOpen is returned by Open for every failure: wrong key, wrong token id,
// truncated or tampered data. The causes are deliberately not told apart.
var ErrOpen = errors.New("vault: cannot decrypt value (wrong key, wrong token id or damaged data)")

var errKeyFormat = errors.New("vault key must be 32 bytes as 64 hex characters or base64")

// Cipher seals and opens vault values. It is safe for concurrent use.
type Cipher struct {
	aead cipher.AEAD
}

// New takes a 32-byte key.
func New(key []byte) (*Cipher, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("vault key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	// The random-nonce AEAD draws a 12-byte nonce from crypto/rand and puts
	// it in front of the ciphertext: exactly the nonce||ciphertext layout.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	return &Cipher{aead: aead}, nil
}

// Seal encrypts plaintext bound to additional data (the token id), returning
// nonce||ciphertext.
func (c *Cipher) Seal(plaintext []byte, aad string) []byte {
	return c.aead.Seal(nil, nil, plaintext, []byte(aad))
}

// Open decrypts a value made by Seal with the same key and aad. Any failure
// is ErrOpen.
func (c *Cipher) Open(sealed []byte, aad string) ([]byte, error) {
	if len(sealed) < c.aead.Overhead() {
		return nil, ErrOpen
	}
	pt, err := c.aead.Open(nil, nil, sealed, []byte(aad))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// ParseKey accepts the --vault-key / ASYNCQUEUE_VAULT_KEY forms: 64 hex
// characters, or standard or URL-safe base64 (padded or not) of 32 bytes.
// Surrounding white space is ignored. The error never repeats the input.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding,
		base64.URLEncoding, base64.RawURLEncoding,
	} {
		if k, err := enc.Strict().DecodeString(s); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, errKeyFormat
}

// LoadOrCreateKeyFile reads a key file (hex, one line) or, when there is
// none, creates it with 32 random bytes and mode 0600. created reports
// whether it was just made, so the caller can log a warning that the key
// must be backed up with the database. An existing file that group or others
// may access is refused: the error says to chmod 600 it.
func LoadOrCreateKeyFile(path string) (key []byte, created bool, err error) {
	key, err = readKeyFile(path)
	if !errors.Is(err, os.ErrNotExist) {
		return key, false, err
	}
	key, created, err = createKeyFile(path)
	if err != nil {
		return nil, false, err
	}
	return key, created, nil
}

// ReadKeyFile reads an existing key file, refusing one that group or others can read; the
// error wraps os.ErrNotExist when there is none.
func ReadKeyFile(path string) ([]byte, error) { return readKeyFile(path) }

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("open vault key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat vault key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("vault key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("vault key file %s has mode %04o, which lets group or others read it: run chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read vault key file: %w", err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("vault key file %s: %w", path, errKeyFormat)
	}
	key, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("vault key file %s: %w", path, err)
	}
	return key, nil
}

// createKeyFile writes the key to a temporary file in the same directory and
// hard-links it into place, so the key file appears complete or not at all,
// and two processes racing to create it end up with the same key.
func createKeyFile(path string) ([]byte, bool, error) {
	key := make([]byte, KeySize)
	rand.Read(key) // never returns an error; it crashes the program instead

	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".vault-key-*") // mode 0600
	if err != nil {
		return nil, false, fmt.Errorf("create vault key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("create vault key file: %w", err)
	}
	if _, err := tmp.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("write vault key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("write vault key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, false, fmt.Errorf("write vault key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			// Another process created it first: use theirs.
			k, err := readKeyFile(path)
			return k, false, err
		}
		return nil, false, fmt.Errorf("create vault key file: %w", err)
	}
	syncDir(dir)
	return key, true, nil
}

// syncDir makes the new directory entry durable. Best effort: not every
// file system supports syncing a directory.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	d.Close()
}

// NewTokenID returns "tok_" + 24 random base62 characters.
func NewTokenID() string {
	var b strings.Builder
	b.Grow(len(TokenIDPrefix) + tokenBodyLen)
	b.WriteString(TokenIDPrefix)
	var buf [32]byte
	for n := 0; n < tokenBodyLen; {
		rand.Read(buf[:])
		for _, c := range buf {
			// 248 = 4*62: rejecting larger bytes keeps every digit equally likely.
			if c >= 248 {
				continue
			}
			b.WriteByte(alphabet[c%62])
			if n++; n == tokenBodyLen {
				break
			}
		}
	}
	return b.String()
}

// ValidTokenID reports whether s is shaped like an id from NewTokenID.
func ValidTokenID(s string) bool {
	if len(s) != len(TokenIDPrefix)+tokenBodyLen || !strings.HasPrefix(s, TokenIDPrefix) {
		return false
	}
	for i := len(TokenIDPrefix); i < len(s); i++ {
		if strings.IndexByte(alphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}
