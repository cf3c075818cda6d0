package iso20022

import (
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Amounts are carried as exact decimal strings end to end. A float64 cannot
// represent most cent values exactly, and a ledger that mints and burns
// fiat-backed money must reproduce the bank's figure to the last digit.

// amountRe is the lexical form accepted for ActiveOrHistoricCurrencyAndAmount
// (xs:decimal restricted to minInclusive 0, fractionDigits 5, totalDigits 18):
// plain digits with an optional fraction. Signs, exponents and bare dots are
// refused, which also rules out every negative amount.
var amountRe = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

// Facets of ActiveOrHistoricCurrencyAndAmount_SimpleType in all four XSDs.
const (
	amountTotalDigits    = 18
	amountFractionDigits = 5
)

// ValidateAmount reports whether s is an amount the pinned XSDs accept for
// ActiveOrHistoricCurrencyAndAmount: a non-negative decimal with at most 18
// significant digits, at most 5 of them after the decimal point. The error
// wraps ErrInvalidAmount.
func ValidateAmount(s string) error {
	if !amountRe.MatchString(s) {
		return fmt.Errorf("%w: %q is not a plain non-negative decimal", ErrInvalidAmount, s)
	}
	intPart, frac, _ := strings.Cut(s, ".")
	// xs:totalDigits/fractionDigits count significant digits: leading
	// zeros of the integer part and trailing zeros of the fraction do not
	// count ("0.50" has one fraction digit).
	frac = strings.TrimRight(frac, "0")
	intPart = strings.TrimLeft(intPart, "0")
	if len(frac) > amountFractionDigits {
		return fmt.Errorf("%w: %q has more than %d fraction digits", ErrInvalidAmount, s, amountFractionDigits)
	}
	if len(intPart)+len(frac) > amountTotalDigits {
		return fmt.Errorf("%w: %q has more than %d digits", ErrInvalidAmount, s, amountTotalDigits)
	}
	return nil
}

// SumAmounts adds exact decimal amounts (each validated with ValidateAmount)
// and returns the sum in plain decimal notation, e.g. for a pain.001 CtrlSum.
func SumAmounts(amounts ...string) (string, error) {
	sum := new(big.Rat)
	maxFrac := 0
	for _, a := range amounts {
		if err := ValidateAmount(a); err != nil {
			return "", err
		}
		r, ok := new(big.Rat).SetString(a)
		if !ok {
			return "", fmt.Errorf("%w: %q", ErrInvalidAmount, a)
		}
		sum.Add(sum, r)
		if _, frac, ok := strings.Cut(a, "."); ok && len(frac) > maxFrac {
			maxFrac = len(frac)
		}
	}
	return sum.FloatString(maxFrac), nil
}

// decimalEqual compares two decimal strings numerically ("1.50" == "1.5").
func decimalEqual(a, b string) bool {
	ra, ok1 := new(big.Rat).SetString(a)
	rb, ok2 := new(big.Rat).SetString(b)
	return ok1 && ok2 && ra.Cmp(rb) == 0
}

// decimalNumberRe is DecimalNumber (CtrlSum): fractionDigits 17,
// totalDigits 18, sign allowed by xs:decimal but never meaningful for a sum
// of non-negative amounts, so refused here.
var decimalNumberRe = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

func validateDecimalNumber(path, s string) error {
	if !decimalNumberRe.MatchString(s) {
		return invalidf(path, "%q is not a plain decimal", s)
	}
	intPart, frac, _ := strings.Cut(s, ".")
	frac = strings.TrimRight(frac, "0")
	intPart = strings.TrimLeft(intPart, "0")
	if len(frac) > 17 || len(intPart)+len(frac) > 18 {
		return invalidf(path, "%q exceeds DecimalNumber's 18 digits", s)
	}
	return nil
}

// currencyRe is ActiveOrHistoricCurrencyCode: [A-Z]{3,3}.
var currencyRe = regexp.MustCompile(`^[A-Z]{3}$`)

func validateAmountAndCurrency(path, amount, currency string) error {
	if amount == "" {
		return invalidf(path, "amount missing")
	}
	if err := ValidateAmount(amount); err != nil {
		return fmt.Errorf("%w (at %s)", err, path)
	}
	if !currencyRe.MatchString(currency) {
		return invalidf(path+"/@Ccy", "currency %q is not three upper-case letters", currency)
	}
	return nil
}

// validateText checks a MaxNNText value: at most max characters, and at least
// one if required (every MaxNNText type has minLength 1, so an empty
// optional value means "absent").
func validateText(path, s string, max int, required bool) error {
	if s == "" {
		if required {
			return invalidf(path, "missing")
		}
		return nil
	}
	if n := utf8.RuneCountInString(s); n > max {
		return invalidf(path, "%d characters, at most %d allowed", n, max)
	}
	if !utf8.ValidString(s) {
		return invalidf(path, "not valid UTF-8")
	}
	return nil
}

var (
	// IBAN2007Identifier.
	ibanRe = regexp.MustCompile(`^[A-Z]{2}[0-9]{2}[a-zA-Z0-9]{1,30}$`)
	// BICFIDec2014Identifier.
	bicRe = regexp.MustCompile(`^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$`)
	// External*Code types are Max4 code-list values; the published lists
	// use upper-case letters and digits only.
	codeRe = regexp.MustCompile(`^[A-Z0-9]{1,4}$`)
	// UUIDv4Identifier.
	uetrRe = regexp.MustCompile(`^[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}$`)
	// xs:date lexical form with optional zone.
	dateRe = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2})?$`)
)

func validateCode(path, s string, required bool) error {
	if s == "" {
		if required {
			return invalidf(path, "missing")
		}
		return nil
	}
	if !codeRe.MatchString(s) {
		return invalidf(path, "code %q is not 1-4 upper-case letters or digits", s)
	}
	return nil
}

func validateBIC(path, s string) error {
	if s != "" && !bicRe.MatchString(s) {
		return invalidf(path, "%q is not a BIC", s)
	}
	return nil
}

// validateDate checks an ISODate (xs:date) value.
func validateDate(path, s string, required bool) error {
	if s == "" {
		if required {
			return invalidf(path, "missing")
		}
		return nil
	}
	if !dateRe.MatchString(s) {
		return invalidf(path, "%q is not an ISO 8601 date (YYYY-MM-DD)", s)
	}
	if _, err := time.Parse("2006-01-02", s[:10]); err != nil {
		return invalidf(path, "%q is not a calendar date", s)
	}
	return nil
}

// validateDateOrDateTime checks the string form of a DateAndDateTime2Choice:
// an ISODate, or an ISODateTime when it contains a 'T'.
func validateDateOrDateTime(path, s string, required bool) error {
	if strings.Contains(s, "T") {
		if _, err := parseDateTime(s); err != nil {
			return invalidf(path, "%v", err)
		}
		return nil
	}
	return validateDate(path, s, required)
}

// noZoneDateTime is an ISODateTime without a zone offset.
const noZoneDateTime = "2006-01-02T15:04:05.999999999"

// parseDateTime reads an ISODateTime with its zone (RFC 3339, optional
// fraction). The XSD allows a local time without an offset, but which
// zone it is in is a guess (the bank's? the customer's?), and a guess
// moves a booking across a day, so it is refused, naming the problem.
func parseDateTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if _, err := time.Parse(noZoneDateTime, s); err == nil {
		return time.Time{}, fmt.Errorf("date-time %q has no zone offset (Z or ±hh:mm); local times are refused, not guessed", s)
	}
	return time.Time{}, fmt.Errorf("not an ISO 8601 date-time: %q", s)
}

func parseDateTimeField(path, s string, required bool) (time.Time, error) {
	if s == "" {
		if required {
			return time.Time{}, invalidf(path, "missing")
		}
		return time.Time{}, nil
	}
	t, err := parseDateTime(s)
	if err != nil {
		return time.Time{}, invalidf(path, "%v", err)
	}
	return t, nil
}

// formatDateTime writes an ISODateTime with its zone offset and only as many
// fractional digits as the value has.
func formatDateTime(t time.Time) string { return t.Format(time.RFC3339Nano) }

func formatOptionalDateTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatDateTime(t)
}

func checkCount(what string, n, max int) error {
	if n > max {
		return fmt.Errorf("%w: %d %s (limit %d)", ErrTooManyEntries, n, what, max)
	}
	return nil
}

// trimSpace applies the whitespace collapsing xs:decimal values get before
// validation.
func trimSpace(s string) string { return strings.TrimSpace(s) }
