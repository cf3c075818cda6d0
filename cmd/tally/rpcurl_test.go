package main

import (
	"slices"
	"testing"
)

// TestParseRPCURLs: --rpc takes URLs, or addresses as tallyd's log prints
// them (127.0.0.1:8545), which mean http://; each bad entry is named.
func TestParseRPCURLs(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
		err  string
	}{
		{"127.0.0.1:8545", []string{"http://127.0.0.1:8545"}, ""},
		{"localhost:8545", []string{"http://localhost:8545"}, ""},
		{"node.bank-a.example:8545", []string{"http://node.bank-a.example:8545"}, ""},
		{"[::1]:8545", []string{"http://[::1]:8545"}, ""},
		{"https://node.bank-a.example", []string{"https://node.bank-a.example"}, ""},
		{"ws://127.0.0.1:8545", []string{"ws://127.0.0.1:8545"}, ""},
		{"127.0.0.1:8545, 127.0.0.1:8546", []string{"http://127.0.0.1:8545", "http://127.0.0.1:8546"}, ""},
		{"ftp://127.0.0.1:8545", nil, `--rpc: "ftp://127.0.0.1:8545" is not an http(s):// or ws(s):// URL`},
		{"127.0.0.1:8545,http://127.0.0.1:8545", nil, `--rpc entry 2: "http://127.0.0.1:8545" is listed twice`},
		{"127.0.0.1:8545,", nil, "--rpc entry 2: empty URL"},
		{"http://", nil, `--rpc: "http://" has no host`},
	} {
		got, err := parseRPCURLs(c.in)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%q: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("%q: %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}
