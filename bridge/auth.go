package bridge

import (
	"errors"
	"time"
	"unicode/utf8"

	"github.com/tally-ledger/tally/crypto/signature"
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
