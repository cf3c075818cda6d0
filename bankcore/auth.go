package bankcore

import (
	"errors"
	"fmt"
	"time"

	"github.com/tally-ledger/tally/crypto/signature"
)

// SignatureHeader is the header every POST between the core and the
// bridge carries, in both directions (docs/bridge.md, HTTP interface; the
// format is package signature's, shared with the bridge).
const SignatureHeader = signature.Header

// Sign returns the SignatureHeader value for body sent at t.
func Sign(secret, body []byte, t time.Time) string { return signature.Sign(secret, body, t) }

// ErrBadSignature is a missing, malformed or wrong signature, or a
// timestamp outside the replay window.
var ErrBadSignature = errors.New("bad signature")

// Verify checks a SignatureHeader value against body. Errors wrap
// ErrBadSignature.
func Verify(secret, body []byte, header string, now time.Time, maxSkew time.Duration) error {
	if err := signature.Verify(secret, body, header, now, maxSkew); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}
