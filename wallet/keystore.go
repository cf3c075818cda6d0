package wallet

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/tally-ledger/tally/crypto"
)

// Keystore errors. They are returned wrapped; match with errors.Is.
var (
	// ErrUnknownAccount means no key file in the keystore holds the address.
	ErrUnknownAccount = errors.New("account not in keystore")
	// ErrWrongPassword means the password does not open the account's key
	// file (or the file is corrupt: the two cannot be told apart).
	ErrWrongPassword = errors.New("wrong password")
	// ErrDuplicateAccount means Import was given a key the keystore already holds.
	ErrDuplicateAccount = errors.New("account already in keystore")
)

// maxKeyFileSize bounds a key file read from the keystore directory; a v3
// file is about 500 bytes, so anything larger is not one.
const maxKeyFileSize = 64 << 10

// Keystore is a directory of keystore v3 files, one per account, named
// "UTC--<time>--<address>" as go-ethereum names them. The directory is
// created with mode 0700 and files with 0600: an encrypted key is still a
// target for offline password guessing. Files that are not key files are
// ignored, so the directory can be shared with geth. A Keystore is safe for
// concurrent use; it holds no keys in memory.
type Keystore struct {
	dir     string
	scryptN int
	scryptP int
}

// KeystoreOption configures OpenKeystore.
type KeystoreOption func(*Keystore)

// WithLightScrypt makes Import encrypt with go-ethereum's light scrypt
// parameters (about 4 MiB and 100 ms instead of 256 MiB and 1 s). For tests
// and devnets only: it makes offline password guessing 64 times cheaper.
func WithLightScrypt() KeystoreOption {
	return func(ks *Keystore) { ks.scryptN, ks.scryptP = crypto.LightScryptN, crypto.LightScryptP }
}

// OpenKeystore opens the keystore in dir, creating the directory (mode 0700)
// if it does not exist.
func OpenKeystore(dir string, opts ...KeystoreOption) (*Keystore, error) {
	if dir == "" {
		return nil, errors.New("open keystore: empty directory name")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open keystore: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("open keystore: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open keystore: %s is not a directory", dir)
	}
	ks := &Keystore{dir: dir, scryptN: crypto.StandardScryptN, scryptP: crypto.StandardScryptP}
	for _, o := range opts {
		o(ks)
	}
	return ks, nil
}

// Dir returns the keystore's directory.
func (ks *Keystore) Dir() string { return ks.dir }

// Import encrypts key with password and stores it in a new file. It refuses
// a key whose address the keystore already holds, so an account never has
// two files that could carry different passwords.
func (ks *Keystore) Import(key *crypto.PrivateKey, password string) (common.Address, error) {
	addr := key.Address()
	if _, err := ks.find(addr); err == nil {
		return common.Address{}, fmt.Errorf("import %s: %w", addr, ErrDuplicateAccount)
	} else if !errors.Is(err, ErrUnknownAccount) {
		return common.Address{}, fmt.Errorf("import %s: %w", addr, err)
	}
	data, err := crypto.EncryptKey(key, password, ks.scryptN, ks.scryptP)
	if err != nil {
		return common.Address{}, fmt.Errorf("import %s: %w", addr, err)
	}
	name := filepath.Join(ks.dir, keyFileName(addr, time.Now()))
	if err := writeFileAtomic(name, data); err != nil {
		return common.Address{}, fmt.Errorf("import %s: %w", addr, err)
	}
	return addr, nil
}

// Accounts returns the addresses the keystore holds, sorted by byte value.
func (ks *Keystore) Accounts() ([]common.Address, error) {
	files, err := ks.scan()
	if err != nil {
		return nil, fmt.Errorf("keystore accounts: %w", err)
	}
	out := make([]common.Address, 0, len(files))
	for a := range files {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i][:], out[j][:]) < 0 })
	return out, nil
}

// Unlock decrypts the key of addr. It fails with ErrUnknownAccount when the
// keystore has no file for addr and ErrWrongPassword when the password does
// not open it. The key inside is checked against addr, so a file whose
// address field lies is never used to sign for another account.
func (ks *Keystore) Unlock(addr common.Address, password string) (*crypto.PrivateKey, error) {
	path, err := ks.find(addr)
	if err != nil {
		return nil, fmt.Errorf("unlock %s: %w", addr, err)
	}
	data, err := readKeyFile(path)
	if err != nil {
		return nil, fmt.Errorf("unlock %s: %w", addr, err)
	}
	key, err := crypto.DecryptKey(data, password)
	if errors.Is(err, crypto.ErrKeystoreMAC) {
		return nil, fmt.Errorf("unlock %s: %w", addr, ErrWrongPassword)
	}
	if err != nil {
		return nil, fmt.Errorf("unlock %s: %s: %w", addr, filepath.Base(path), err)
	}
	if got := key.Address(); got != addr {
		return nil, fmt.Errorf("unlock %s: %s holds the key of %s", addr, filepath.Base(path), got)
	}
	return key, nil
}

// find returns the path of addr's key file.
func (ks *Keystore) find(addr common.Address) (string, error) {
	files, err := ks.scan()
	if err != nil {
		return "", err
	}
	path, ok := files[addr]
	if !ok {
		return "", ErrUnknownAccount
	}
	return path, nil
}

// scan reads the address of every key file in the directory. When two
// files claim one address (copied by hand), the first by name wins, which
// is the oldest for go-ethereum's names.
func (ks *Keystore) scan() (map[common.Address]string, error) {
	entries, err := os.ReadDir(ks.dir)
	if err != nil {
		return nil, err
	}
	files := make(map[common.Address]string, len(entries))
	for _, e := range entries { // ReadDir sorts by name
		name := e.Name()
		if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") || !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(ks.dir, name)
		addr, ok := keyFileAddress(path)
		if !ok {
			continue
		}
		if _, dup := files[addr]; !dup {
			files[addr] = path
		}
	}
	return files, nil
}

// keyFileAddress reads the "address" field of a v3 key file; ok is false
// for anything that is not one.
func keyFileAddress(path string) (addr common.Address, ok bool) {
	data, err := readKeyFile(path)
	if err != nil {
		return addr, false
	}
	var f struct {
		Address string `json:"address"`
	}
	if json.Unmarshal(data, &f) != nil {
		return addr, false
	}
	h := strings.TrimPrefix(strings.ToLower(f.Address), "0x")
	if len(h) != 2*common.AddressLength {
		return addr, false
	}
	if _, err := hex.Decode(addr[:], []byte(h)); err != nil {
		return addr, false
	}
	return addr, true
}

// readKeyFile reads a file of at most maxKeyFileSize bytes.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("%s is too large for a key file", filepath.Base(path))
	}
	return data, nil
}

// keyFileName is go-ethereum's name for a key file:
// UTC--<ISO 8601 time with '-' for ':'>--<lowercase hex address>.
func keyFileName(addr common.Address, t time.Time) string {
	return "UTC--" + t.UTC().Format("2006-01-02T15-04-05.000000000Z") + "--" + hex.EncodeToString(addr[:])
}

// writeFileAtomic writes data to a temporary file (mode 0600) in the target
// directory, syncs it and renames it into place, so a crash never leaves a
// truncated key file behind.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), fs.ErrExist)
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
