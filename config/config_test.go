package config

import (
	"strings"
	"testing"
	"time"
)

type sample struct {
	Name  string   `toml:"name"`
	Every Duration `toml:"every"`
	Inner struct {
		Port int `toml:"port"`
	} `toml:"inner"`
}

func TestDecode(t *testing.T) {
	var s sample
	s.Name = "default"
	if err := Decode([]byte("every = \"250ms\"\n[inner]\nport = 8\n"), &s); err != nil {
		t.Fatal(err)
	}
	if s.Name != "default" || time.Duration(s.Every) != 250*time.Millisecond || s.Inner.Port != 8 {
		t.Fatalf("decoded %+v", s)
	}
	for name, c := range map[string]struct{ in, want string }{
		"typo":          {"[inner]\nprot = 8\n", "unknown key inner.prot"},
		"wrong type":    {"[inner]\nport = \"x\"\n", "key inner.port"},
		"bad duration":  {"every = \"soon\"\n", `bad duration "soon"`},
		"not toml":      {"name = \n", "line 1"},
		"unknown table": {"[extra]\nx = 1\n", "unknown key extra"},
	} {
		t.Run(name, func(t *testing.T) {
			var s sample
			err := Decode([]byte(c.in), &s)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to mention %q", err, c.want)
			}
		})
	}
}
