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

// TestTypeErrors: a value of the wrong type is named by its key and the
// type the key takes in TOML words, never by Go struct names; an integer
// is not a duration (it would be nanoseconds).
func TestTypeErrors(t *testing.T) {
	type embedded struct {
		Level string `toml:"level"`
	}
	type cfg struct {
		Name  string     `toml:"name"`
		Every Duration   `toml:"every"`
		Dev   bool       `toml:"dev"`
		Rate  float64    `toml:"rate"`
		Count uint64     `toml:"count"`
		Small int8       `toml:"small"`
		Peers []string   `toml:"peers"`
		Waits []Duration `toml:"waits"`
		NoTag int
		Inner struct {
			Port int `toml:"port"`
		} `toml:"inner"`
		Many []struct {
			URL string `toml:"url"`
		} `toml:"many"`
		Labels map[string]int `toml:"labels"`
		embedded
	}
	for _, c := range []struct{ in, want string }{
		{"name = 3\n", `key name: expected a string, got the integer 3`},
		{"every = 5\n", `key every: expected a duration string such as "500ms" or "2s", got the integer 5`},
		{"every = true\n", `key every: expected a duration string such as "500ms" or "2s", got true`},
		{"dev = \"yes\"\n", `key dev: expected true or false, got the string "yes"`},
		{"rate = \"fast\"\n", `key rate: expected a number, got the string "fast"`},
		{"count = -1\n", `key count: expected an integer of at least 0, got the integer -1`},
		{"count = 1.5\n", `key count: expected an integer, got the number 1.5`},
		{"small = 300\n", `key small: the integer 300 is out of range`},
		{"peers = \"/ip4/1\"\n", `key peers: expected an array of strings, got the string "/ip4/1"`},
		{"peers = [\"a\", 2]\n", `key peers[1]: expected a string, got the integer 2`},
		{"waits = [1]\n", `key waits[0]: expected a duration string such as "500ms" or "2s", got the integer 1`},
		{"notag = \"x\"\n", `key notag: expected an integer, got the string "x"`},
		{"inner = 3\n", `key inner: expected a table, got the integer 3`},
		{"[inner]\nport = \"8545\"\n", `key inner.port: expected an integer, got the string "8545"`},
		{"[[many]]\nurl = 1\n", `key many[0].url: expected a string, got the integer 1`},
		{"[labels]\na = \"x\"\n", `key labels.a: expected an integer, got the string "x"`},
		{"level = 1\n", `key level: expected a string, got the integer 1`},
	} {
		var v cfg
		err := Decode([]byte(c.in), &v)
		if err == nil || err.Error() != c.want {
			t.Errorf("%q: error %v\n want %s", c.in, err, c.want)
		}
	}
	var v cfg
	if err := Decode([]byte("name = \"n\"\nevery = \"1s\"\nrate = 2\ncount = 3\npeers = [\"a\"]\nlevel = \"x\"\n[[many]]\nurl = \"u\"\n[labels]\na = 1\n"), &v); err != nil {
		t.Fatalf("a well-typed file: %v", err)
	}
	if v.Rate != 2 || v.Level != "x" || v.Labels["a"] != 1 || v.Many[0].URL != "u" {
		t.Fatalf("decoded %+v", v)
	}
}
