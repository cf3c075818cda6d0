package iso20022

import (
	"strings"
	"testing"
)

func TestValidateAmount(t *testing.T) {
	for _, tc := range []struct {
		amount string
		ok     bool
	}{
		{"0", true},
		{"100.25", true},
		{"40.00", true},
		{"1.12345", true},
		{"1.500000", true}, // trailing zeros are not significant fraction digits
		{"123456789012345678", true},
		{"1234567890123.12345", true},
		{"000000000000000000000001.5", true}, // leading zeros are not significant either
		{"1e3", false},
		{"1E3", false},
		{"1.123456", false},
		{"-5", false},
		{"+5", false},
		{".5", false},
		{"5.", false},
		{"", false},
		{" ", false},
		{" 5", false},
		{"1,00", false},
		{"1 000", false},
		{"1234567890123456789", false},
		{"12345678901234.12345", false},
		{"NaN", false},
		{"Inf", false},
		{"0x10", false},
		{"１", false}, // full-width digit
		{"1.2.3", false},
	} {
		err := ValidateAmount(tc.amount)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateAmount(%q) = %v, want ok=%v", tc.amount, err, tc.ok)
		}
		if err != nil {
			wantErr(t, err, ErrInvalidAmount)
		}
	}
}

func TestSumAmounts(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, "0"},
		{[]string{"40.00"}, "40.00"},
		{[]string{"0.1", "0.2"}, "0.3"}, // exact, unlike float64
		{[]string{"0.10", "0.2", "1000000"}, "1000000.30"},
		{[]string{"99999999999999999.9", "0.1"}, "100000000000000000.0"},
		{[]string{"0.00001", "0.00002"}, "0.00003"},
	} {
		got, err := SumAmounts(tc.in...)
		if err != nil || got != tc.want {
			t.Errorf("SumAmounts(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := SumAmounts("1", "1e3"); err == nil {
		t.Error("SumAmounts accepted 1e3")
	}
}

func TestDateValidation(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"2024-03-15", true},
		{"2024-03-15Z", true},
		{"2024-03-15+01:00", true},
		{"2024-02-29", true},
		{"2023-02-29", false},
		{"2024-13-01", false},
		{"20240315", false},
		{"15.03.2024", false},
		{"2024-03-15T10:00:00Z", true},
		{"2024-03-15T10:00:00.123+05:30", true},
		{"2024-03-15T10:00:00", false}, // no zone: refused, not guessed
		{"2024-03-15T25:00:00Z", false},
		{"2024-03-15T10:00Z", false},
	} {
		err := validateDateOrDateTime("x", tc.s, true)
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok=%v", tc.s, err, tc.ok)
		}
	}
	// A date-time without a zone is refused with the reason.
	if _, err := parseDateTime("2024-03-15T10:00:00"); err == nil || !strings.Contains(err.Error(), "no zone offset") {
		t.Errorf("a date-time without a zone: %v", err)
	}
	// ISO 11649 creditor references.
	for ref, ok := range map[string]bool{"RF18539007547034": true, "RF18000000000539007547034": true, "RF19539007547034": false,
		"RF18 5390 0754 7034": false, "RF712348231": true, "XX18539007547034": false} {
		if err := CheckCreditorReference(ref); (err == nil) != ok {
			t.Errorf("CheckCreditorReference(%s) = %v, want ok=%v", ref, err, ok)
		}
	}
	// IBANs: the shape and the mod-97 check digits.
	for iban, ok := range map[string]bool{"DE89370400440532013000": true, "GB82WEST12345698765432": true,
		"DE89370400440532013001": false, "GB82WEST12345698765433": false, "de89370400440532013000": false} {
		if err := CheckIBAN(iban); (err == nil) != ok {
			t.Errorf("CheckIBAN(%s) = %v, want ok=%v", iban, err, ok)
		}
	}
}

func TestAccountValidation(t *testing.T) {
	for _, tc := range []struct {
		a  Account
		ok bool
	}{
		{Account{IBAN: "DE89370400440532013000"}, true},
		{Account{IBAN: "FR1420041010050500013M02606", Currency: "EUR"}, true},
		{Account{Other: "0532013000", Scheme: "BBAN"}, true},
		{Account{}, false},
		{Account{IBAN: "de89370400440532013000"}, false},
		{Account{IBAN: "DE89 3704 0044 0532 0130 00"}, false},
		{Account{IBAN: "DE89370400440532013000", Other: "1"}, false},
		{Account{IBAN: "DE89370400440532013000", Scheme: "BBAN"}, false},
		{Account{Other: "1234567890123456789012345678901234X"}, false},
		{Account{Other: "1", Scheme: "bban"}, false},
		{Account{Other: "1", Currency: "EURO"}, false},
	} {
		err := tc.a.validate("Acct")
		if (err == nil) != tc.ok {
			t.Errorf("%+v: %v, want ok=%v", tc.a, err, tc.ok)
		}
	}
}
