package credentials

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/tally-ledger/tally/crypto"
)

// MaxFile bounds a key, password, secret or tokens file.
const MaxFile = 64 << 10

// MinSecretLen is the shortest HMAC secret accepted: 128 bits.
const MinSecretLen = 16

// ReadBounded reads a small file (a key, a password, a secret), refusing
// one larger than MaxFile.
func ReadBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFile {
		return nil, fmt.Errorf("%s is more than %d bytes: not a key or secret file", path, MaxFile)
	}
	return data, nil
}

// Secret reads an HMAC secret file: its bytes with surrounding white space
// (a trailing newline) removed, at least MinSecretLen of them. key names
// the config key in errors.
func Secret(key, path string) ([]byte, error) {
	data, err := ReadBounded(path)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", key, err)
	}
	secret := bytes.TrimSpace(data)
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("key %s: the secret is %d bytes, at least %d needed", key, len(secret), MinSecretLen)
	}
	return secret, nil
}

// KeyConfig names a service's key (its [key] section): one keystore v3
// file and its password, from a file or an environment variable (never the
// config file itself, which is often shared and versioned).
type KeyConfig struct {
	KeystoreFile string `toml:"keystore-file"`
	PasswordFile string `toml:"password-file"`
	PasswordEnv  string `toml:"password-env"`
}

// LoadKey decrypts key.keystore-file with the password from
// key.password-file, else the environment variable key.password-env.
// resolve turns the config's relative paths into paths. Errors name the
// key.
func LoadKey(k KeyConfig, resolve func(string) string) (*crypto.PrivateKey, error) {
	data, err := ReadBounded(resolve(k.KeystoreFile))
	if err != nil {
		return nil, fmt.Errorf("key key.keystore-file: %w", err)
	}
	var pw string
	switch {
	case k.PasswordFile != "":
		p, err := ReadBounded(resolve(k.PasswordFile))
		if err != nil {
			return nil, fmt.Errorf("key key.password-file: %w", err)
		}
		line, _, _ := bytes.Cut(p, []byte("\n"))
		pw = strings.TrimSuffix(string(line), "\r")
	default:
		v, ok := os.LookupEnv(k.PasswordEnv)
		if !ok {
			return nil, fmt.Errorf("key key.password-env: environment variable %s is not set (or set key.password-file)", k.PasswordEnv)
		}
		pw = v
	}
	key, err := crypto.DecryptKey(data, pw)
	if errors.Is(err, crypto.ErrKeystoreMAC) {
		return nil, fmt.Errorf("key key.keystore-file: %s: wrong password", k.KeystoreFile)
	}
	if err != nil {
		return nil, fmt.Errorf("key key.keystore-file: %s: %w", k.KeystoreFile, err)
	}
	return key, nil
}

// Operators authenticate with a bearer token: operator.tokens-file lists
// "<name> <token>" per line; the name is the identity an action log
// records. A service's HMAC secrets are no good there: an operator
// credential is one person's, revoked alone.
type Operators struct {
	byHash map[[32]byte]string // sha256(token) → name
}

// operatorName is what a token's name may be: it goes into logs as is.
var operatorName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// MinTokenLen is the shortest operator token accepted (128 bits as hex).
const MinTokenLen = 32

// ParseOperators reads a tokens file's content; errors name the line.
func ParseOperators(data []byte) (*Operators, error) {
	ops := &Operators{byHash: map[[32]byte]string{}}
	names := map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want \"<name> <token>\"", i+1)
		}
		name, tok := f[0], f[1]
		if !operatorName.MatchString(name) {
			return nil, fmt.Errorf("line %d: operator name %.70q: 1-64 letters, digits, '.', '_', '@' or '-'", i+1, name)
		}
		if len(tok) < MinTokenLen {
			return nil, fmt.Errorf("line %d: the token of %s is %d characters, at least %d needed (e.g. openssl rand -hex 32)", i+1, name, len(tok), MinTokenLen)
		}
		h := sha256.Sum256([]byte(tok))
		if names[name] {
			return nil, fmt.Errorf("line %d: operator %s is listed twice", i+1, name)
		}
		if _, dup := ops.byHash[h]; dup {
			return nil, fmt.Errorf("line %d: the token of %s is another operator's too", i+1, name)
		}
		names[name] = true
		ops.byHash[h] = name
	}
	return ops, nil
}

// LoadOperators reads and parses a tokens file; key names the config key
// in errors.
func LoadOperators(key, path string) (*Operators, error) {
	data, err := ReadBounded(path)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", key, err)
	}
	ops, err := ParseOperators(data)
	if err != nil {
		return nil, fmt.Errorf("key %s: %s: %w", key, path, err)
	}
	return ops, nil
}

// Authenticate returns the operator an "Authorization: Bearer <token>"
// header names. The lookup is by the token's hash, so its time does not
// depend on how much of a guess matches a real token. A nil or empty set
// admits no one.
func (o *Operators) Authenticate(header string) (string, error) {
	if o == nil || len(o.byHash) == 0 {
		return "", errors.New("no operator may use this endpoint: set operator.tokens-file")
	}
	tok, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || tok == "" {
		return "", errors.New("an operator token is required: Authorization: Bearer <token>")
	}
	name, ok := o.byHash[sha256.Sum256([]byte(strings.TrimSpace(tok)))]
	if !ok {
		return "", errors.New("unknown operator token")
	}
	return name, nil
}
