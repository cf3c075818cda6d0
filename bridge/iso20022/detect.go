package iso20022

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode"
)

// MessageType is an ISO 20022 message identifier without its variant and
// version, e.g. "camt.054".
type MessageType string

// The message types the bank bridge exchanges.
const (
	Camt053 MessageType = "camt.053" // BankToCustomerStatement
	Camt054 MessageType = "camt.054" // BankToCustomerDebitCreditNotification
	Pain001 MessageType = "pain.001" // CustomerCreditTransferInitiation
	Pain002 MessageType = "pain.002" // CustomerPaymentStatusReport
	Pacs004 MessageType = "pacs.004" // PaymentReturn
)

// The pinned versions. Banks and the bridge must agree on one version per
// message: element names and nesting change between versions (camt.054.001.02
// has no UETR, pain.001.001.03 has a plain-date ReqdExctnDt, ...), so a
// message in any other version is refused instead of being half-understood.
const (
	Camt053Version = "camt.053.001.08"
	Camt054Version = "camt.054.001.08"
	Pain001Version = "pain.001.001.09"
	Pain002Version = "pain.002.001.10"
	// Pacs004Version is the 2020 release: the only ISO original of a
	// pacs.004 schema this project could obtain (testdata/README.md).
	Pacs004Version = "pacs.004.001.10"
)

// NamespacePrefix is the common prefix of every ISO 20022 message namespace;
// the message version follows it.
const NamespacePrefix = "urn:iso:std:iso:20022:tech:xsd:"

// Namespace returns the XML namespace of a message version, e.g.
// "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08".
func Namespace(version string) string { return NamespacePrefix + version }

// Input limits. A bank file is read fully into memory before it is decoded,
// so the byte bound is what caps memory; the count bounds keep a single
// message from turning into an unbounded amount of ledger work.
const (
	// MaxMessageSize is the largest message accepted (and written): 10 MiB.
	MaxMessageSize = 10 << 20
	// MaxEntries caps the camt.053/camt.054 entries (Ntry) in one message.
	MaxEntries = 50_000
	// MaxTransactions caps transaction-level items in one message: TxDtls
	// in camt messages, CdtTrfTxInf in pain.001, TxInfAndSts in pain.002.
	MaxTransactions = 50_000
)

var supportedVersions = map[MessageType]string{
	Camt053: Camt053Version,
	Camt054: Camt054Version,
	Pain001: Pain001Version,
	Pain002: Pain002Version,
	Pacs004: Pacs004Version,
}

// SupportedVersion returns the pinned version of a message type, or "" for a
// type this package does not handle.
func SupportedVersion(t MessageType) string { return supportedVersions[t] }

// versionRe is the shape of an ISO 20022 message identifier:
// business area (4 letters), message, variant, version.
var versionRe = regexp.MustCompile(`^[a-z]{4}\.[0-9]{3}\.[0-9]{3}\.[0-9]{2}$`)

// Detect reports the message type and version of an ISO 20022 document from
// the namespace of its root <Document> element, without decoding the body.
//
// It returns ErrNotISO20022 for XML that is not an ISO 20022 Document,
// ErrUnsupportedMessage for ISO 20022 messages other than the ones handled
// here, and a *VersionError (ErrUnsupportedVersion) for a handled message in
// another version; in the last two cases the detected type and version are
// returned along with the error so callers can log them.
func Detect(data []byte) (MessageType, string, error) {
	if len(data) > MaxMessageSize {
		return "", "", fmt.Errorf("%w: %d bytes (limit %d)", ErrTooLarge, len(data), MaxMessageSize)
	}
	dec := newDecoder(data)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return "", "", fmt.Errorf("%w: no root element", ErrNotISO20022)
		}
		if err != nil {
			return "", "", fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return classify(t.Name)
		case xml.Directive:
			// No ISO 20022 message carries a DTD; refusing them keeps
			// entity tricks out of the bridge entirely.
			return "", "", fmt.Errorf("%w: DTD/directive not allowed", ErrMalformed)
		case xml.CharData:
			if !isSpace(t) {
				return "", "", fmt.Errorf("%w: text before root element", ErrMalformed)
			}
		}
	}
}

func classify(name xml.Name) (MessageType, string, error) {
	if name.Local != "Document" || !strings.HasPrefix(name.Space, NamespacePrefix) {
		return "", "", fmt.Errorf("%w: root element is {%s}%s, want an ISO 20022 Document", ErrNotISO20022, name.Space, name.Local)
	}
	version := strings.TrimPrefix(name.Space, NamespacePrefix)
	if !versionRe.MatchString(version) {
		return "", "", fmt.Errorf("%w: namespace %q has no message version", ErrNotISO20022, name.Space)
	}
	typ := MessageType(version[:8])
	supported, ok := supportedVersions[typ]
	if !ok {
		return typ, version, fmt.Errorf("%w: %s", ErrUnsupportedMessage, version)
	}
	if version != supported {
		return typ, version, &VersionError{Type: typ, Found: version, Supported: supported}
	}
	return typ, version, nil
}

func newDecoder(data []byte) *xml.Decoder {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	// CharsetReader stays nil: ISO 20022 messages are UTF-8, and the
	// decoder refuses any other declared encoding.
	return dec
}

func isSpace(b []byte) bool {
	return len(bytes.TrimFunc(b, unicode.IsSpace)) == 0
}

// readMessage reads at most MaxMessageSize bytes from r.
func readMessage(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxMessageSize+1))
	if err != nil {
		return nil, fmt.Errorf("iso20022: reading message: %w", err)
	}
	if len(data) > MaxMessageSize {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, MaxMessageSize)
	}
	return data, nil
}

// decodeDocument checks that data is the pinned version of want and decodes
// it into doc, which must be a pointer to a struct whose XMLName carries the
// matching namespace.
func decodeDocument(data []byte, want MessageType, doc any) error {
	typ, version, err := Detect(data)
	if err != nil {
		return err
	}
	if typ != want {
		return fmt.Errorf("%w: got %s, want %s", ErrWrongMessageType, version, supportedVersions[want])
	}
	dec := newDecoder(data)
	if err := dec.Decode(doc); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// Decode stops after the root element; anything but whitespace,
	// comments and processing instructions after it is not a document.
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement, xml.EndElement, xml.Directive:
			return fmt.Errorf("%w: content after the root element", ErrMalformed)
		case xml.CharData:
			if !isSpace(t) {
				return fmt.Errorf("%w: text after the root element", ErrMalformed)
			}
		}
	}
}

// encodeDocument writes doc as an indented UTF-8 XML document, refusing to
// produce anything the parsers of this package would refuse for size.
func encodeDocument(w io.Writer, doc any) error {
	body, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("iso20022: encoding: %w", err)
	}
	out := make([]byte, 0, len(xml.Header)+len(body)+1)
	out = append(out, xml.Header...)
	out = append(out, body...)
	out = append(out, '\n')
	if len(out) > MaxMessageSize {
		return fmt.Errorf("%w: encoded message is %d bytes (limit %d)", ErrTooLarge, len(out), MaxMessageSize)
	}
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("iso20022: writing: %w", err)
	}
	return nil
}
