package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newRing(t *testing.T, keys ...[]byte) *Keyring {
	t.Helper()
	k, err := New(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func noEnv(string) string { return "" }

const aad = "env:app:42:DATABASE_URL"

func TestSealOpenRoundTrip(t *testing.T) {
	k := newRing(t, newKey(t))
	for _, pt := range [][]byte{
		[]byte("postgres://u:hunter2@db/app"),
		{},
		bytes.Repeat([]byte{0, 1, 2, 0xff}, 20000),
		[]byte("ünïcødé\n"),
	} {
		sealed, err := k.Seal(pt, aad)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(sealed, "v1:"+k.CurrentKeyID()+":") || strings.Count(sealed, ":") != 3 {
			t.Errorf("sealed form %q is not v1:<id>:<dek>:<ct>", sealed[:min(len(sealed), 40)])
		}
		got, err := k.Open(sealed, aad)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, pt) {
			t.Errorf("Open = %q, want %q", got[:min(len(got), 40)], pt[:min(len(pt), 40)])
		}
	}
}

func TestSealIsRandomized(t *testing.T) {
	k := newRing(t, newKey(t))
	a, _ := k.Seal([]byte("same"), aad)
	b, _ := k.Seal([]byte("same"), aad)
	if a == b {
		t.Fatal("two seals of the same value are identical; data keys or nonces are reused")
	}
}

func TestPlaintextNotInSealed(t *testing.T) {
	k := newRing(t, newKey(t))
	secret := "s3cr3t-VALUE-that-must-not-leak"
	sealed, err := k.Seal([]byte(secret), aad)
	if err != nil {
		t.Fatal(err)
	}
	for _, enc := range []string{
		secret,
		base64.StdEncoding.EncodeToString([]byte(secret)),
		base64.RawURLEncoding.EncodeToString([]byte(secret)),
		fmt.Sprintf("%x", secret),
	} {
		if strings.Contains(sealed, enc) || strings.Contains(sealed, enc[:12]) {
			t.Fatalf("sealed value contains (an encoding of) the plaintext: %q", sealed)
		}
	}
}

func TestOpenFailures(t *testing.T) {
	k := newRing(t, newKey(t))
	secret := "hunter2-plaintext"
	sealed, err := k.Seal([]byte(secret), aad)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(sealed, ":")
	flip := func(s string, i int) string {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		b[i%len(b)] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	other := newRing(t, newKey(t))
	tests := []struct {
		name   string
		ring   *Keyring
		sealed string
		aad    string
	}{
		{"wrong aad", k, sealed, "env:app:43:DATABASE_URL"},
		{"empty aad", k, sealed, ""},
		{"wrong key", other, sealed, aad},
		{"tampered ciphertext", k, strings.Join([]string{parts[0], parts[1], parts[2], flip(parts[3], 20)}, ":"), aad},
		{"tampered ciphertext nonce", k, strings.Join([]string{parts[0], parts[1], parts[2], flip(parts[3], 0)}, ":"), aad},
		{"tampered wrapped key", k, strings.Join([]string{parts[0], parts[1], flip(parts[2], 30), parts[3]}, ":"), aad},
		{"truncated ciphertext", k, strings.Join([]string{parts[0], parts[1], parts[2], parts[3][:10]}, ":"), aad},
		{"unknown version", k, "v2" + sealed[2:], aad},
		{"missing part", k, strings.Join(parts[:3], ":"), aad},
		{"not base64", k, strings.Join([]string{parts[0], parts[1], "!!!", parts[3]}, ":"), aad},
		{"empty", k, "", aad},
		{"plaintext", k, secret, aad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ring.Open(tt.sealed, tt.aad)
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Open = %q, %v; want ErrDecrypt", got, err)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), tt.sealed) && tt.sealed != "" {
				t.Errorf("error %q leaks the value", err)
			}
		})
	}
}

func TestValueMovedToAnotherRowFails(t *testing.T) {
	k := newRing(t, newKey(t))
	a, _ := k.Seal([]byte("a-secret"), "env:app:1:TOKEN")
	b, _ := k.Seal([]byte("b-secret"), "env:app:2:TOKEN")
	// Swap the wrapped data keys between two rows: neither may open.
	pa, pb := strings.Split(a, ":"), strings.Split(b, ":")
	mixed := strings.Join([]string{pa[0], pa[1], pb[2], pa[3]}, ":")
	if _, err := k.Open(mixed, "env:app:1:TOKEN"); !errors.Is(err, ErrDecrypt) {
		t.Errorf("mixed envelope opened: %v", err)
	}
	if _, err := k.Open(a, "env:app:2:TOKEN"); !errors.Is(err, ErrDecrypt) {
		t.Errorf("value copied to another row opened: %v", err)
	}
}

func TestRotateAndReseal(t *testing.T) {
	keyA, keyB := newKey(t), newKey(t)
	k := newRing(t, keyA)
	idA := k.CurrentKeyID()
	sealedA, err := k.Seal([]byte("old value"), aad)
	if err != nil {
		t.Fatal(err)
	}

	idB, err := k.Rotate(keyB)
	if err != nil {
		t.Fatal(err)
	}
	if idB == idA || k.CurrentKeyID() != idB {
		t.Fatalf("after Rotate current = %s, want new id %s (old %s)", k.CurrentKeyID(), idB, idA)
	}
	if got := k.KeyIDs(); len(got) != 2 || got[0] != idB || got[1] != idA {
		t.Errorf("KeyIDs = %v, want [%s %s]", got, idB, idA)
	}
	if got, err := k.Open(sealedA, aad); err != nil || string(got) != "old value" {
		t.Fatalf("value sealed under A after rotation: %q, %v", got, err)
	}
	if newSealed, _ := k.Seal([]byte("x"), aad); !strings.HasPrefix(newSealed, "v1:"+idB+":") {
		t.Errorf("new value not sealed under B: %q", newSealed[:12])
	}

	resealed, err := k.Reseal(sealedA, aad)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := SealedKeyID(resealed); id != idB {
		t.Errorf("Reseal left the value under %s, want %s", id, idB)
	}
	if _, err := k.Reseal(sealedA, "env:app:1:OTHER"); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Reseal with the wrong aad: %v, want ErrDecrypt", err)
	}
	again, err := k.Reseal(resealed, aad)
	if err != nil || again != resealed {
		t.Errorf("Reseal of a current value = changed %v, %v; want unchanged", again != resealed, err)
	}

	// Once A is gone, only the resealed value opens.
	onlyB := newRing(t, keyB)
	if got, err := onlyB.Open(resealed, aad); err != nil || string(got) != "old value" {
		t.Errorf("resealed value with only B: %q, %v", got, err)
	}
	if _, err := onlyB.Open(sealedA, aad); !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), idA) {
		t.Errorf("value under A with only B: %v, want ErrDecrypt naming key %s", err, idA)
	}
}

func TestRotateRejectsBadKey(t *testing.T) {
	k := newRing(t, newKey(t))
	if _, err := k.Rotate(make([]byte, 16)); err == nil {
		t.Fatal("Rotate accepted a 16-byte key")
	}
}

func TestKeyringDoesNotPrintKeys(t *testing.T) {
	key := newKey(t)
	k := newRing(t, key)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), k.LogValue().String()} {
		if !strings.Contains(s, k.CurrentKeyID()) {
			t.Errorf("%q does not name the key id", s)
		}
		if strings.Contains(s, base64.StdEncoding.EncodeToString(key)) || strings.Contains(s, fmt.Sprintf("%x", key)) {
			t.Errorf("%q contains the key", s)
		}
	}
}

func TestLoadCreatesKeyFileAndReusesIt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := Load(dir, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, KeyFileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != KeySize {
		t.Errorf("key file mode %04o size %d, want 0600 and %d", fi.Mode().Perm(), fi.Size(), KeySize)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only the key file (temp file left behind?)", len(entries))
	}
	sealed, err := k1.Seal([]byte("v"), aad)
	if err != nil {
		t.Fatal(err)
	}

	k2, err := Load(dir, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if k2.CurrentKeyID() != k1.CurrentKeyID() {
		t.Fatalf("second Load made a new key %s, want %s", k2.CurrentKeyID(), k1.CurrentKeyID())
	}
	if got, err := k2.Open(sealed, aad); err != nil || string(got) != "v" {
		t.Errorf("Open after reload: %q, %v", got, err)
	}
}

func TestLoadRefusesBadKeyFile(t *testing.T) {
	tests := []struct {
		name    string
		content []byte
		mode    os.FileMode
		want    string
	}{
		{"group readable", make([]byte, KeySize), 0o640, "chmod 600"},
		{"world readable", make([]byte, KeySize), 0o604, "chmod 600"},
		{"short", make([]byte, 16), 0o600, "is 16 bytes, want exactly 32"},
		{"empty", nil, 0o600, "is 0 bytes"},
		{"long", make([]byte, 33), 0o600, "is 33 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, KeyFileName)
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir, noEnv)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want an error containing %q", err, tt.want)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, tt.content) {
				t.Error("Load modified the refused key file")
			}
		})
	}
}

func TestLoadPrefersEnv(t *testing.T) {
	dir := t.TempDir()
	fileRing, err := Load(dir, noEnv) // creates master.key
	if err != nil {
		t.Fatal(err)
	}
	envKey := newKey(t)
	env := func(name string) string {
		if name == EnvMasterKey {
			return base64.StdEncoding.EncodeToString(envKey)
		}
		return ""
	}
	k, err := Load(dir, env)
	if err != nil {
		t.Fatal(err)
	}
	if k.CurrentKeyID() != KeyID(envKey) || k.CurrentKeyID() == fileRing.CurrentKeyID() {
		t.Errorf("Load used key %s, want the env key %s", k.CurrentKeyID(), KeyID(envKey))
	}
	if len(k.KeyIDs()) != 1 {
		t.Errorf("keyring %v, want only the env key", k.KeyIDs())
	}

	// With the env set, no key file is created.
	empty := t.TempDir()
	if _, err := Load(empty, env); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(empty, KeyFileName)); !os.IsNotExist(err) {
		t.Errorf("key file created although %s is set: %v", EnvMasterKey, err)
	}
}

func TestLoadEnvRotationList(t *testing.T) {
	oldKey, newK := newKey(t), newKey(t)
	old := newRing(t, oldKey)
	sealed, _ := old.Seal([]byte("v"), aad)

	list := base64.RawURLEncoding.EncodeToString(newK) + ", " + base64.StdEncoding.EncodeToString(oldKey)
	k, err := Load(t.TempDir(), func(string) string { return list })
	if err != nil {
		t.Fatal(err)
	}
	if k.CurrentKeyID() != KeyID(newK) {
		t.Errorf("current = %s, want the first key %s", k.CurrentKeyID(), KeyID(newK))
	}
	if got, err := k.Open(sealed, aad); err != nil || string(got) != "v" {
		t.Errorf("value under the old key: %q, %v", got, err)
	}
}

func TestLoadEnvInvalid(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(newKey(t))
	for _, v := range []string{
		"not-base64-at-all!",
		base64.StdEncoding.EncodeToString([]byte("too short key")),
		good + ",",
		good + ",secretish-garbage",
	} {
		_, err := Load(t.TempDir(), func(string) string { return v })
		if err == nil {
			t.Errorf("Load accepted %s=%q", EnvMasterKey, v)
			continue
		}
		for _, part := range strings.Split(v, ",") {
			if part != "" && strings.Contains(err.Error(), part) {
				t.Errorf("error %q echoes key material", err)
			}
		}
	}
}
