package wallet

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	gethkeystore "github.com/ethereum/go-ethereum/accounts/keystore"
	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/crypto"
)

func testKey(t *testing.T, i uint32) *crypto.PrivateKey {
	t.Helper()
	k, err := crypto.KeyFromMnemonic(crypto.TestMnemonic, "", i)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeystoreRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	ks, err := OpenKeystore(dir, WithLightScrypt())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", fi.Mode().Perm())
	}
	if accts, err := ks.Accounts(); err != nil || len(accts) != 0 {
		t.Fatalf("empty keystore: accounts %v, err %v", accts, err)
	}

	keys := []*crypto.PrivateKey{testKey(t, 2), testKey(t, 0), testKey(t, 1)}
	passwords := []string{"two", "zero", "one"}
	var want []common.Address
	for i, k := range keys {
		addr, err := ks.Import(k, passwords[i])
		if err != nil {
			t.Fatalf("import %d: %v", i, err)
		}
		if addr != k.Address() {
			t.Fatalf("import returned %s, want %s", addr, k.Address())
		}
		want = append(want, addr)
	}
	slices.SortFunc(want, func(a, b common.Address) int { return a.Cmp(b) })
	got, err := ks.Accounts()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("accounts %v, want sorted %v", got, want)
	}
	if !slices.Contains(got, common.HexToAddress("0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")) {
		t.Fatalf("test mnemonic accounts missing: %v", got)
	}

	// Files: go-ethereum's names, mode 0600, readable by go-ethereum.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(keys) {
		t.Fatalf("%d files in keystore, want %d", len(entries), len(keys))
	}
	nameRE := regexp.MustCompile(`^UTC--\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{9}Z--[0-9a-f]{40}$`)
	for _, e := range entries {
		if !nameRE.MatchString(e.Name()) {
			t.Errorf("file name %q is not go-ethereum's form", e.Name())
		}
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", e.Name(), info.Mode().Perm())
		}
	}
	for i, k := range keys {
		name := keyFileGlob(t, dir, k.Address())
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		gk, err := gethkeystore.DecryptKey(data, passwords[i])
		if err != nil {
			t.Fatalf("go-ethereum cannot open %s: %v", name, err)
		}
		if gk.Address != k.Address() {
			t.Fatalf("go-ethereum reads address %s, want %s", gk.Address, k.Address())
		}
	}

	// Unlock: right password, wrong password, unknown account.
	for i, k := range keys {
		u, err := ks.Unlock(k.Address(), passwords[i])
		if err != nil {
			t.Fatalf("unlock %d: %v", i, err)
		}
		if string(u.Bytes()) != string(k.Bytes()) {
			t.Fatalf("unlock %d returned another key", i)
		}
	}
	tests := []struct {
		name     string
		addr     common.Address
		password string
		want     error
	}{
		{"wrong password", keys[0].Address(), "zero", ErrWrongPassword},
		{"empty password", keys[0].Address(), "", ErrWrongPassword},
		{"unknown account", testKey(t, 7).Address(), "two", ErrUnknownAccount},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ks.Unlock(tc.addr, tc.password)
			if !errors.Is(err, tc.want) {
				t.Fatalf("unlock: %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.addr.Hex()) {
				t.Errorf("error %q does not name the account", err)
			}
		})
	}

	// Reopening sees the same accounts.
	ks2, err := OpenKeystore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got2, _ := ks2.Accounts(); !slices.Equal(got2, want) {
		t.Fatalf("reopened accounts %v, want %v", got2, want)
	}
}

func TestKeystoreDuplicateImport(t *testing.T) {
	ks, err := OpenKeystore(t.TempDir(), WithLightScrypt())
	if err != nil {
		t.Fatal(err)
	}
	k := testKey(t, 0)
	if _, err := ks.Import(k, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Import(k, "b"); !errors.Is(err, ErrDuplicateAccount) {
		t.Fatalf("second import: %v, want ErrDuplicateAccount", err)
	}
	// The first password still works: the file was not replaced.
	if _, err := ks.Unlock(k.Address(), "a"); err != nil {
		t.Fatal(err)
	}
	if accts, _ := ks.Accounts(); len(accts) != 1 {
		t.Fatalf("accounts %v, want one", accts)
	}
}

func TestKeystoreIgnoresOtherFiles(t *testing.T) {
	dir := t.TempDir()
	ks, err := OpenKeystore(dir, WithLightScrypt())
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"README":             "not a key",
		".hidden":            `{"address":"f39fd6e51aad88f6f4ce6ab8827279cfffb92266"}`,
		"UTC--broken--x":     `{"address":"zz"}`,
		"UTC--truncated--yy": `{"addr`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if accts, err := ks.Accounts(); err != nil || len(accts) != 0 {
		t.Fatalf("accounts %v, err %v; want none", accts, err)
	}
}

func TestKeystoreLyingAddressField(t *testing.T) {
	dir := t.TempDir()
	ks, err := OpenKeystore(dir, WithLightScrypt())
	if err != nil {
		t.Fatal(err)
	}
	k0, k1 := testKey(t, 0), testKey(t, 1)
	if _, err := ks.Import(k1, "pw"); err != nil {
		t.Fatal(err)
	}
	// Rewrite the file's address field to claim account 0.
	name := keyFileGlob(t, dir, k1.Address())
	data, _ := os.ReadFile(name)
	lower := strings.ToLower(strings.TrimPrefix(k1.Address().Hex(), "0x"))
	forged := strings.Replace(string(data), lower, strings.ToLower(strings.TrimPrefix(k0.Address().Hex(), "0x")), 1)
	if forged == string(data) {
		t.Fatal("address field not found in key file")
	}
	if err := os.WriteFile(name, []byte(forged), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Unlock(k0.Address(), "pw"); err == nil || !strings.Contains(err.Error(), "holds the key of") {
		t.Fatalf("unlock of forged file: %v, want a mismatch error", err)
	}
}

func TestOpenKeystoreNotDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenKeystore(f); err == nil {
		t.Fatal("OpenKeystore on a file succeeded")
	}
	if _, err := OpenKeystore(""); err == nil {
		t.Fatal("OpenKeystore(\"\") succeeded")
	}
}

func keyFileGlob(t *testing.T, dir string, a common.Address) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "UTC--*--"+strings.ToLower(strings.TrimPrefix(a.Hex(), "0x"))))
	if err != nil || len(m) != 1 {
		t.Fatalf("key file of %s: %v %v", a, m, err)
	}
	return m[0]
}
