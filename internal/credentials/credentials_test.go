package credentials

import (
	"strings"
	"testing"
)

// TestOperatorTokensFile: the tokens file's mistakes are refused naming
// the line; tokens authenticate by name, nothing else does.
func TestOperatorTokensFile(t *testing.T) {
	tok := strings.Repeat("a", 32)
	for _, c := range []struct{ name, text, want string }{
		{"one field", "alice\n", "line 1: want"},
		{"short token", "alice short\n", "line 1: the token of alice is 5 characters"},
		{"bad name", "al ice " + tok + "\n", "line 1: want"},
		{"name with a quote", "al'ice " + tok + "\n", "operator name"},
		{"same name twice", "alice " + tok + "\nalice " + strings.Repeat("b", 32) + "\n", "line 2: operator alice is listed twice"},
		{"same token twice", "# ops\n\nalice " + tok + "\nbob " + tok + "\n", "line 4: the token of bob is another operator's too"},
	} {
		if _, err := ParseOperators([]byte(c.text)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	ops, err := ParseOperators([]byte("alice " + tok + "\nbob " + strings.Repeat("b", 32) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ header, who, err string }{
		{"Bearer " + tok, "alice", ""},
		{"Bearer " + strings.Repeat("b", 32), "bob", ""},
		{"", "", "required"},
		{"Basic " + tok, "", "required"},
		{"Bearer " + tok[:31], "", "unknown operator token"},
	} {
		who, err := ops.Authenticate(c.header)
		if who != c.who || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%q: %q, %v; want %q, %q", c.header, who, err, c.who, c.err)
		}
	}
	var none *Operators
	if _, err := none.Authenticate("Bearer " + tok); err == nil || !strings.Contains(err.Error(), "operator.tokens-file") {
		t.Errorf("no tokens file: %v", err)
	}
}
