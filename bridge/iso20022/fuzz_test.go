package iso20022

import (
	"bytes"
	"testing"
)

// The parsers face bytes from outside Tally. Each fuzz target checks that a
// parser never panics and that whatever it accepts can be written back as an
// XSD-valid message that parses to a fixed point.

func addSeeds(f *testing.F, files ...string) {
	for _, name := range files {
		f.Add(readTestdata(f, name))
	}
	f.Add([]byte(``))
	f.Add([]byte(`<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02"/>`))
	f.Add([]byte(`<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"><CstmrCdtTrfInitn/></Document>`))
}

func fuzzCodec[T any](f *testing.F, c codec[T], files ...string) {
	addSeeds(f, files...)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := c.parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := c.write(&out, v); err != nil {
			t.Fatalf("accepted message cannot be written back: %v", err)
		}
		validateInstance(t, c.version, out.Bytes())
		back, err := c.parse(bytes.NewReader(out.Bytes()))
		if err != nil {
			t.Fatalf("written message does not parse: %v\n%s", err, out.Bytes())
		}
		var again bytes.Buffer
		if err := c.write(&again, back); err != nil || !bytes.Equal(out.Bytes(), again.Bytes()) {
			t.Fatalf("parse+write not stable (%v):\n%s\n---\n%s", err, out.Bytes(), again.Bytes())
		}
	})
}

func FuzzParseCamt054(f *testing.F) {
	fuzzCodec(f, camt054Codec, "camt054_deposit_payout.xml", "public/genkgo_camt054.v8.xml")
}

func FuzzParseCamt053(f *testing.F) {
	fuzzCodec(f, camt053Codec, "camt053_statement.xml", "public/genkgo_camt053.v8.xml")
}

func FuzzParsePain001(f *testing.F) {
	fuzzCodec(f, pain001Codec, "pain001_payout.xml")
}

func FuzzParsePain002(f *testing.F) {
	fuzzCodec(f, pain002Codec, "pain002_settled.xml", "pain002_rejected.xml")
}

func FuzzParsePacs004(f *testing.F) {
	fuzzCodec(f, pacs004Codec, "pacs004_return.xml")
}

func FuzzDetect(f *testing.F) {
	addSeeds(f, "camt054_deposit_payout.xml", "pain002_rejected.xml")
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, version, err := Detect(data)
		if err == nil && SupportedVersion(typ) != version {
			t.Fatalf("Detect accepted %q %q", typ, version)
		}
	})
}
