package bridge

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tally-ledger/tally/bridge/signature"
)

// SignatureHeader carries the HMAC of every POST between the bank core and
// the bridge, in both directions (package signature has the format), each
// direction with its own secret: auth.intake-secret-file for the core's
// POSTs to the bridge, auth.order-secret-file for the bridge's orders to
// the core.
const SignatureHeader = signature.Header

// Sign returns the SignatureHeader value for body sent at t.
func Sign(secret, body []byte, t time.Time) string { return signature.Sign(secret, body, t) }

// AuthError is a request refused by Verify; Kind is RefusedBadSignature or
// RefusedStaleTimestamp, as the refusal is recorded.
type AuthError struct {
	Kind string
	Msg  string
}

func (e *AuthError) Error() string { return e.Msg }

// Verify checks a SignatureHeader value against body (signature.Verify)
// and classifies a refusal for the record.
func Verify(secret, body []byte, header string, now time.Time, maxSkew time.Duration) error {
	err := signature.Verify(secret, body, header, now, maxSkew)
	var se *signature.Error
	if !errors.As(err, &se) {
		return err
	}
	kind := RefusedBadSignature
	if se.Stale {
		kind = RefusedStaleTimestamp
	}
	return &AuthError{Kind: kind, Msg: se.Msg}
}

// truncate keeps echoed input short in messages and records: at most n
// bytes of s, cut at a character boundary. A cut inside a UTF-8 sequence
// would not survive the store's JSON (it becomes U+FFFD), so a resent
// entry would no longer match its own record.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// Operators authenticate with a bearer token (docs/bridge.md, "Operator
// tools"): operator.tokens-file lists "<name> <token>" per line; the name
// is the identity the operator log records. Operator endpoints,
// /v1/status and /metrics need one. The bank core's HMAC secrets are no
// good there: an operator credential is another person's, revoked alone.
type operators struct {
	byHash map[[32]byte]string // sha256(token) → name
}

// operatorName is what a token's name may be: it goes into the log as is.
var operatorName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// minTokenLen is the shortest operator token accepted (128 bits as hex).
const minTokenLen = 32

// parseOperators reads a tokens file's content; errors name the line.
func parseOperators(data []byte) (*operators, error) {
	ops := &operators{byHash: map[[32]byte]string{}}
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
			return nil, fmt.Errorf("line %d: operator name %q: 1-64 letters, digits, '.', '_', '@' or '-'", i+1, truncate(name, 70))
		}
		if len(tok) < minTokenLen {
			return nil, fmt.Errorf("line %d: the token of %s is %d characters, at least %d needed (e.g. openssl rand -hex 32)", i+1, name, len(tok), minTokenLen)
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

// authenticate returns the operator an "Authorization: Bearer <token>"
// header names. The lookup is by the token's hash, so its time does not
// depend on how much of a guess matches a real token.
func (o *operators) authenticate(header string) (string, error) {
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
