package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigPrelude: every command that takes --config FILE and no
// argument (the services, the bridge's operator tools, the bank
// simulator) refuses, as a usage error (exit 2) with the same words,
// a missing --config (naming the command as typed), an argument, and a
// config file that is missing or has an unknown key (naming the key);
// its --help names whose config the flag wants.
func TestConfigPrelude(t *testing.T) {
	typo := writeFile(t, "typo.toml", "listen = \"127.0.0.1:0\"\nno-such-key = 1\n")
	missing := filepath.Join(t.TempDir(), "none.toml")
	for _, c := range []struct {
		args []string // the command
		help string   // its --config flag's help
		kind string   // its loader's name for the config ("read bridge config")
	}{
		{[]string{"bridge"}, "the bridge's config FILE (bridge.toml)", "bridge"},
		{[]string{"monitor"}, "the monitor's config FILE (monitor.toml)", "monitor"},
		{[]string{"merchant"}, "the notifier's config FILE (merchant.toml)", "merchant"},
		{[]string{"bankcore-sim"}, "the simulator's config FILE (sim.toml)", "bankcore-sim"},
		{[]string{"bridge", "deposits"}, "the bridge's config FILE (bridge.toml)", "bridge"},
		{[]string{"bridge", "payouts"}, "the bridge's config FILE (bridge.toml)", "bridge"},
		{[]string{"bridge", "release"}, "the bridge's config FILE (bridge.toml)", "bridge"},
		{[]string{"bridge", "log"}, "the bridge's config FILE (bridge.toml)", "bridge"},
	} {
		name := strings.Join(c.args, " ")
		for _, u := range []struct {
			what  string
			extra []string
			want  string
		}{
			{"no --config", nil, "tally: " + name + ": --config is required\n"},
			{"an argument", []string{"--config", typo, "now"}, "tally: " + name + ": unexpected argument \"now\"\n"},
			{"an unknown key", []string{"--config", typo}, "tally: " + c.kind + " config " + typo + ": unknown key no-such-key\n"},
			{"a missing file", []string{"--config", missing}, "tally: read " + c.kind + " config: open " + missing + ": "},
		} {
			r := tally(t, "", append(append([]string(nil), c.args...), u.extra...)...)
			if r.code != exitUsage || !strings.Contains(r.stderr, u.want) || r.stdout != "" {
				t.Errorf("%s with %s: exit %d, stdout %q, stderr %q; want exit %d and %q", name, u.what, r.code, r.stdout, r.stderr, exitUsage, u.want)
			}
		}
		r := tally(t, "", append(append([]string(nil), c.args...), "--help")...)
		if r.code != exitOK || !strings.Contains(r.stderr, "--config FILE") || !strings.Contains(r.stderr, c.help) {
			t.Errorf("%s --help: exit %d, stderr %q; want the flag's help %q", name, r.code, r.stderr, c.help)
		}
	}
}
