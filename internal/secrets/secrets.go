// Package secrets owns encryption at rest: the master keyring and the sealed
// form of secret values (environment variables, registry passwords, tokens)
// as stored in the database.
//
// Values are sealed with envelope encryption. Each value gets a fresh random
// 256-bit data key; the value is encrypted with the data key and the data key
// is wrapped with the current master key, both with AES-256-GCM and random
// 96-bit nonces. The sealed text is
//
//	v1:<key id>:<base64url(nonce|wrapped data key)>:<base64url(nonce|ciphertext)>
//
// The caller's aad ("additional authenticated data", e.g.
// "env:app:42:DATABASE_URL") is authenticated with both layers, so a sealed
// value copied to another row, or opened with the wrong aad, fails with
// ErrDecrypt instead of yielding another owner's secret.
//
// The key id is derived from the key itself (the first 8 hex characters of a
// domain-separated SHA-256), so ids never need to be configured or stored and
// cannot be mixed up; Open picks the master key by the id in the sealed text.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// KeySize is the length of a master key in bytes (AES-256).
const KeySize = 32

// ErrDecrypt means a sealed value cannot be opened: it is malformed, was
// sealed under a key that is not in the keyring, was tampered with, or was
// opened with a different aad than it was sealed with. Errors wrapping it
// never contain plaintext or key material.
var ErrDecrypt = errors.New("secrets: cannot decrypt value (wrong key, tampered data or wrong owner)")

const (
	version = "v1"
	// Domain separation: a wrapped data key can never be confused with a
	// value ciphertext, nor a v1 value with a later format.
	wrapAADPrefix  = "berth/secrets/v1/dek\x00"
	valueAADPrefix = "berth/secrets/v1/value\x00"
	keyIDPrefix    = "berth/secrets/key-id\x00"
)

var b64 = base64.RawURLEncoding // no ':' and no padding: compact and splittable

// Keyring holds the current master key, used to seal, and older keys, kept so
// that values sealed before a rotation still open. It is safe for concurrent
// use. It deliberately keeps only AES ciphers, not key bytes, and prints only
// key ids.
type Keyring struct {
	mu      sync.RWMutex
	current string
	keys    map[string]cipher.AEAD
	order   []string // ids, current first, for String
}

// New returns a keyring holding keys; the first is current. Each key must be
// KeySize bytes. Duplicate keys are ignored.
func New(keys ...[]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("secrets: a keyring needs at least one key")
	}
	k := &Keyring{keys: make(map[string]cipher.AEAD, len(keys))}
	for i := len(keys) - 1; i >= 0; i-- { // oldest first, so the first ends up current
		if _, err := k.add(keys[i]); err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
	}
	return k, nil
}

// GenerateKey returns a new random master key.
func GenerateKey() ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("secrets: generate key: %w", err)
	}
	return key, nil
}

// KeyID is the id under which key is stored and named in sealed values.
func KeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte(keyIDPrefix))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:4])
}

// add makes key current, keeping the others. Caller holds mu (or owns k).
func (k *Keyring) add(key []byte) (string, error) {
	if len(key) != KeySize {
		return "", fmt.Errorf("secrets: a master key must be %d bytes, got %d", KeySize, len(key))
	}
	id := KeyID(key)
	if _, ok := k.keys[id]; !ok {
		aead, err := newGCM(key)
		if err != nil {
			return "", err
		}
		k.keys[id] = aead
	}
	k.current = id
	k.order = slices.Insert(slices.DeleteFunc(k.order, func(s string) bool { return s == id }), 0, id)
	return id, nil
}

// Rotate makes key the current key: new values are sealed under it, while
// values sealed under the previous keys still open. Rotating to a key already
// in the ring just makes it current. It returns the key's id.
//
// To rotate a deployment: add the new key (BERTH_MASTER_KEY="<new>,<old>"),
// Reseal every stored value, then drop the old key.
func (k *Keyring) Rotate(key []byte) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.add(key)
}

// CurrentKeyID is the id of the key new values are sealed under.
func (k *Keyring) CurrentKeyID() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.current
}

// KeyIDs lists the ids in the ring, current first.
func (k *Keyring) KeyIDs() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return slices.Clone(k.order)
}

// String describes the keyring by key ids only, so that printing or logging
// it by mistake reveals nothing.
func (k *Keyring) String() string {
	return fmt.Sprintf("secrets.Keyring{current: %s, keys: %v}", k.CurrentKeyID(), k.KeyIDs())
}

// GoString is String, for %#v.
func (k *Keyring) GoString() string { return k.String() }

// LogValue logs key ids only.
func (k *Keyring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("current", k.CurrentKeyID()), slog.Any("keys", k.KeyIDs()))
}

// Seal encrypts plaintext under a fresh data key wrapped with the current
// master key, binding it to aad. The same aad must be given to Open.
func (k *Keyring) Seal(plaintext []byte, aad string) (string, error) {
	k.mu.RLock()
	id, master := k.current, k.keys[k.current]
	k.mu.RUnlock()
	return seal(id, master, plaintext, aad)
}

func seal(id string, master cipher.AEAD, plaintext []byte, aad string) (string, error) {
	dek := make([]byte, KeySize)
	defer clear(dek)
	if _, err := rand.Read(dek); err != nil {
		return "", fmt.Errorf("secrets: generate data key: %w", err)
	}
	data, err := newGCM(dek)
	if err != nil {
		return "", err
	}
	wrapped, err := encrypt(master, dek, wrapAAD(id, aad))
	if err != nil {
		return "", err
	}
	ct, err := encrypt(data, plaintext, valueAADPrefix+aad)
	if err != nil {
		return "", err
	}
	return version + ":" + id + ":" + b64.EncodeToString(wrapped) + ":" + b64.EncodeToString(ct), nil
}

// Open decrypts a value produced by Seal with the same aad. Every failure
// wraps ErrDecrypt.
func (k *Keyring) Open(sealed string, aad string) ([]byte, error) {
	id, wrapped, ct, err := parse(sealed)
	if err != nil {
		return nil, err
	}
	k.mu.RLock()
	master, ok := k.keys[id]
	k.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: sealed under key %s, which is not in the keyring", ErrDecrypt, id)
	}
	dek, err := decrypt(master, wrapped, wrapAAD(id, aad))
	if err != nil {
		return nil, ErrDecrypt
	}
	defer clear(dek)
	if len(dek) != KeySize {
		return nil, ErrDecrypt
	}
	data, err := newGCM(dek)
	if err != nil {
		return nil, ErrDecrypt
	}
	plaintext, err := decrypt(data, ct, valueAADPrefix+aad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return plaintext, nil
}

// Reseal re-encrypts a sealed value under the current key. A value already
// sealed under the current key is checked (it must open with aad) and
// returned unchanged, so a rotation sweep can skip writing it back.
func (k *Keyring) Reseal(sealed string, aad string) (string, error) {
	plaintext, err := k.Open(sealed, aad)
	if err != nil {
		return "", err
	}
	defer clear(plaintext)
	k.mu.RLock()
	id, master := k.current, k.keys[k.current]
	k.mu.RUnlock()
	if sealedID, _, _, _ := parse(sealed); sealedID == id {
		return sealed, nil
	}
	return seal(id, master, plaintext, aad)
}

// SealedKeyID returns the id of the master key a sealed value was sealed
// under, without decrypting it, e.g. to find values still needing Reseal.
func SealedKeyID(sealed string) (string, error) {
	id, _, _, err := parse(sealed)
	return id, err
}

func parse(sealed string) (id string, wrapped, ct []byte, err error) {
	parts := strings.Split(sealed, ":")
	if len(parts) != 4 || parts[0] != version {
		return "", nil, nil, fmt.Errorf("%w: not a %s sealed value", ErrDecrypt, version)
	}
	if wrapped, err = b64.DecodeString(parts[2]); err != nil {
		return "", nil, nil, fmt.Errorf("%w: malformed data key", ErrDecrypt)
	}
	if ct, err = b64.DecodeString(parts[3]); err != nil {
		return "", nil, nil, fmt.Errorf("%w: malformed ciphertext", ErrDecrypt)
	}
	return parts[1], wrapped, ct, nil
}

func wrapAAD(id, aad string) string { return wrapAADPrefix + id + "\x00" + aad }

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets: %w", err)
	}
	return aead, nil
}

// encrypt returns nonce|ciphertext.
func encrypt(aead cipher.AEAD, plaintext []byte, aad string) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secrets: generate nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plaintext, []byte(aad)), nil
}

func decrypt(aead cipher.AEAD, sealed []byte, aad string) ([]byte, error) {
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrDecrypt
	}
	n := aead.NonceSize()
	return aead.Open(nil, sealed[:n], sealed[n:], []byte(aad))
}
