package iso20022

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestDetectSamples(t *testing.T) {
	for _, tc := range []struct {
		file    string
		typ     MessageType
		version string
	}{
		{"camt054_deposit_payout.xml", Camt054, Camt054Version},
		{"camt053_statement.xml", Camt053, Camt053Version},
		{"pain001_payout.xml", Pain001, Pain001Version},
		{"pain002_settled.xml", Pain002, Pain002Version},
		{"pain002_rejected.xml", Pain002, Pain002Version},
		{"public/genkgo_camt054.v8.xml", Camt054, Camt054Version},
		{"public/genkgo_camt053.v8.xml", Camt053, Camt053Version},
	} {
		typ, version, err := Detect(readTestdata(t, tc.file))
		if err != nil || typ != tc.typ || version != tc.version {
			t.Errorf("%s: Detect = %q, %q, %v", tc.file, typ, version, err)
		}
		if SupportedVersion(typ) != version {
			t.Errorf("%s: SupportedVersion(%s) = %q", tc.file, typ, SupportedVersion(typ))
		}
	}
}

// Older (or newer) versions of the four messages are refused with an error
// that names both the version found and the one supported, by Detect and by
// every parser.
func TestWrongVersionsRefused(t *testing.T) {
	parsers := map[MessageType]func(io.Reader) error{
		Camt054: func(r io.Reader) error { _, err := ParseCamt054(r); return err },
		Camt053: func(r io.Reader) error { _, err := ParseCamt053(r); return err },
		Pain001: func(r io.Reader) error { _, err := ParsePain001(r); return err },
		Pain002: func(r io.Reader) error { _, err := ParsePain002(r); return err },
	}
	for _, tc := range []struct {
		file, found string
		typ         MessageType
	}{
		{"camt054_deposit_payout.xml", "camt.054.001.02", Camt054},
		{"camt054_deposit_payout.xml", "camt.054.001.13", Camt054},
		{"camt053_statement.xml", "camt.053.001.02", Camt053},
		{"pain001_payout.xml", "pain.001.001.03", Pain001},
		{"pain001_payout.xml", "pain.001.001.12", Pain001},
		{"pain002_settled.xml", "pain.002.001.03", Pain002},
	} {
		t.Run(tc.found, func(t *testing.T) {
			supported := SupportedVersion(tc.typ)
			data := edit(t, readTestdata(t, tc.file), Namespace(supported), Namespace(tc.found))
			typ, version, err := Detect(data)
			wantErr(t, err, ErrUnsupportedVersion, tc.found, supported)
			var ve *VersionError
			if !errors.As(err, &ve) || ve.Found != tc.found || ve.Supported != supported || ve.Type != tc.typ {
				t.Errorf("VersionError %+v", ve)
			}
			if typ != tc.typ || version != tc.found {
				t.Errorf("Detect = %q, %q", typ, version)
			}
			wantErr(t, parsers[tc.typ](bytes.NewReader(data)), ErrUnsupportedVersion, tc.found, supported)
		})
	}
}

func TestDetectRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		err       error
	}{
		{"other ISO message", `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"><FIToFICstmrCdtTrf/></Document>`, ErrUnsupportedMessage},
		{"no namespace", `<Document><BkToCstmrStmt/></Document>`, ErrNotISO20022},
		{"foreign namespace", `<Document xmlns="urn:example:camt.054.001.08"/>`, ErrNotISO20022},
		{"namespace without version", `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt"/>`, ErrNotISO20022},
		{"prefixed root with ISO namespace", `<x:Doc xmlns:x="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"/>`, ErrNotISO20022},
		{"html", `<!-- hi --><html><body>camt.054</body></html>`, ErrNotISO20022},
		{"empty", ``, ErrNotISO20022},
		{"whitespace only", " \n\t", ErrNotISO20022},
		{"not xml", `camt.054.001.08`, ErrMalformed},
		{"unclosed", `<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"`, ErrMalformed},
		{"DTD", `<!DOCTYPE Document [<!ENTITY x "y">]><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"/>`, ErrMalformed},
		{"latin-1", `<?xml version="1.0" encoding="ISO-8859-1"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"/>`, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Detect([]byte(tc.doc))
			wantErr(t, err, tc.err)
			// Every parser refuses what Detect refuses, with the same error.
			_, err = ParseCamt054(strings.NewReader(tc.doc))
			wantErr(t, err, tc.err)
			_, err = ParsePain002(strings.NewReader(tc.doc))
			wantErr(t, err, tc.err)
		})
	}
}

func TestParseRefusesMalformedBody(t *testing.T) {
	sample := readTestdata(t, "camt054_deposit_payout.xml")
	for name, data := range map[string][]byte{
		"truncated":        sample[:len(sample)/2],
		"mismatched tag":   edit(t, sample, "</GrpHdr>", "</GrpHeader>"),
		"trailing element": append(append([]byte{}, sample...), "<Document/>"...),
		"trailing text":    append(append([]byte{}, sample...), "garbage"...),
		"bad entity":       edit(t, sample, "Jane Doe", "Jane &nbsp; Doe"),
		"bad utf-8":        edit(t, sample, "Jane Doe", "Jane \xff Doe"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseCamt054(bytes.NewReader(data))
			wantErr(t, err, ErrMalformed)
		})
	}
	// Trailing whitespace and comments are fine.
	ok := append(append([]byte{}, sample...), "\n<!-- end -->\n"...)
	if _, err := ParseCamt054(bytes.NewReader(ok)); err != nil {
		t.Errorf("trailing comment: %v", err)
	}
}

func TestWrongMessageType(t *testing.T) {
	pain := readTestdata(t, "pain001_payout.xml")
	_, err := ParseCamt054(bytes.NewReader(pain))
	wantErr(t, err, ErrWrongMessageType, Pain001Version, Camt054Version)
	_, err = ParseCamt053(bytes.NewReader(readTestdata(t, "camt054_deposit_payout.xml")))
	wantErr(t, err, ErrWrongMessageType, Camt054Version, Camt053Version)
	_, err = ParsePain001(bytes.NewReader(readTestdata(t, "pain002_settled.xml")))
	wantErr(t, err, ErrWrongMessageType)
	_, err = ParsePain002(bytes.NewReader(pain))
	wantErr(t, err, ErrWrongMessageType)
}

func TestOversizedInput(t *testing.T) {
	// A valid head followed by padding: the size bound applies before any
	// decoding, whatever the content.
	big := append(readTestdata(t, "camt054_deposit_payout.xml"), bytes.Repeat([]byte(" "), MaxMessageSize)...)
	_, _, err := Detect(big)
	wantErr(t, err, ErrTooLarge)
	for name, parse := range map[string]func(io.Reader) error{
		"camt054": func(r io.Reader) error { _, err := ParseCamt054(r); return err },
		"camt053": func(r io.Reader) error { _, err := ParseCamt053(r); return err },
		"pain001": func(r io.Reader) error { _, err := ParsePain001(r); return err },
		"pain002": func(r io.Reader) error { _, err := ParsePain002(r); return err },
	} {
		wantErr(t, parse(bytes.NewReader(big)), ErrTooLarge)
		// An endless stream is cut off at the limit, not read to the end.
		r := &countingReader{}
		if err := parse(r); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: endless input: %v", name, err)
		}
		if r.n > MaxMessageSize+64<<10 {
			t.Errorf("%s: read %d bytes of an endless stream", name, r.n)
		}
	}
	// Exactly at the limit is accepted by the size check.
	atLimit := append(readTestdata(t, "pain002_settled.xml"), bytes.Repeat([]byte(" "), MaxMessageSize)...)
	atLimit = atLimit[:MaxMessageSize]
	if _, err := ParsePain002(bytes.NewReader(atLimit)); errors.Is(err, ErrTooLarge) {
		t.Errorf("message of exactly MaxMessageSize refused: %v", err)
	}
}

// countingReader is an endless stream of spaces that counts what was read.
type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	r.n += len(p)
	return len(p), nil
}

func TestVersionErrorMessage(t *testing.T) {
	err := &VersionError{Type: Camt054, Found: "camt.054.001.02", Supported: Camt054Version}
	want := "iso20022: unsupported camt.054 version camt.054.001.02 (only camt.054.001.08 is supported)"
	if err.Error() != want {
		t.Errorf("%q", err.Error())
	}
}
