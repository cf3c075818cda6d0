package iso20022

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them, so the bridge can decide with errors.Is whether a message is worth a
// retry (never, for all of these: the bytes themselves are wrong) and what to
// tell the bank's operations team.
var (
	// ErrUnsupportedVersion: the message is one of the four types this
	// package handles, but in a version other than the pinned one. The
	// concrete error is a *VersionError naming both versions.
	ErrUnsupportedVersion = errors.New("iso20022: unsupported message version")
	// ErrUnsupportedMessage: an ISO 20022 document of a message type this
	// package does not handle at all (e.g. pacs.008).
	ErrUnsupportedMessage = errors.New("iso20022: unsupported message type")
	// ErrWrongMessageType: a supported message handed to the parser of
	// another one (e.g. a pain.002 given to ParseCamt054).
	ErrWrongMessageType = errors.New("iso20022: wrong message type")
	// ErrNotISO20022: well-formed XML whose root is not an ISO 20022
	// <Document> in an urn:iso:std:iso:20022:tech:xsd:* namespace.
	ErrNotISO20022 = errors.New("iso20022: not an ISO 20022 document")
	// ErrMalformed: the input is not well-formed XML (or carries a DTD,
	// trailing elements, or a non-UTF-8 encoding).
	ErrMalformed = errors.New("iso20022: malformed XML")
	// ErrTooLarge: the input exceeds MaxMessageSize.
	ErrTooLarge = errors.New("iso20022: message too large")
	// ErrTooManyEntries: the message carries more repeated items than
	// MaxEntries / MaxTransactions allow.
	ErrTooManyEntries = errors.New("iso20022: too many entries")
	// ErrInvalidAmount: an amount that is not an exact non-negative decimal
	// within the XSD's ActiveOrHistoricCurrencyAndAmount facets.
	ErrInvalidAmount = errors.New("iso20022: invalid amount")
	// ErrInvalidMessage: a required element is missing or a field violates
	// its XSD type (length, pattern, code list, choice).
	ErrInvalidMessage = errors.New("iso20022: invalid message")
)

// VersionError reports a supported message type in an unsupported version.
// It unwraps to ErrUnsupportedVersion.
type VersionError struct {
	Type      MessageType // e.g. "camt.054"
	Found     string      // e.g. "camt.054.001.02"
	Supported string      // e.g. "camt.054.001.08"
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("iso20022: unsupported %s version %s (only %s is supported)", e.Type, e.Found, e.Supported)
}

func (e *VersionError) Unwrap() error { return ErrUnsupportedVersion }

// invalidf builds an ErrInvalidMessage naming the offending element path.
func invalidf(path, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidMessage, path, fmt.Sprintf(format, args...))
}
