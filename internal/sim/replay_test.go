package sim

import (
	"flag"
	"io"
	"maps"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestReplayCommandParsesBack: the replay command a failed run prints
// (replayCommand) makes, parsed as TestSim parses its flags, the run's
// Config again, custom fault weights included (it used to print a
// command that ran other seeds with the default weights); so do the
// variables of its make sim form, passed on as the Makefile passes them.
func TestReplayCommandParsesBack(t *testing.T) {
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	membership := map[Fault]int{FaultAddValidator: 3, FaultDataDirLost: 1, FaultRestart: 1, FaultPartition: 3, FaultHeal: 1}
	for _, cfg := range []Config{
		{Seed: 651, Steps: 2000, Faults: membership},
		{Seed: 7, Steps: 3000},
		{Seed: 5, Steps: 2000, Faults: map[Fault]int{}},
		{Seed: 288, Steps: 2000, Faults: DefaultFaults},
		{Seed: 1, Steps: 500, Standby: 1, Faults: map[Fault]int{FaultRaftDirLost: 1, FaultRestart: 0}},
		{Seed: 2, Steps: 2000, Nodes: 5},
	} {
		cmd := replayCommand(cfg)
		goTest, ok := strings.CutSuffix(cmd[strings.Index(cmd, "go test "):], ")")
		if !ok && strings.HasPrefix(cmd, "make ") {
			t.Fatalf("%q: the go test form is not in parentheses", cmd)
		}
		words := shellWords(t, goTest)
		if len(words) < 3 || strings.Join(words[:3], " ") != "go test ./internal/sim" {
			t.Fatalf("%q: not go test ./internal/sim", goTest)
		}
		fs := flag.NewFlagSet("sim.test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		run := fs.String("run", "", "")
		seed, steps, cf := defineConfigFlags(fs)
		if err := fs.Parse(words[3:]); err != nil || fs.NArg() != 0 {
			t.Fatalf("%q: %v (arguments left: %q)", goTest, err, fs.Args())
		}
		if re, err := regexp.Compile(*run); err != nil || !re.MatchString("TestSim") || re.MatchString("TestSimX") || re.MatchString("XTestSim") {
			t.Errorf("%q: -run=%s does not select TestSim alone", goTest, *run)
		}
		got, err := cf.config(*seed, *steps)
		if err != nil {
			t.Fatalf("%q: %v", goTest, err)
		}
		if !reflect.DeepEqual(got, cfg) {
			t.Errorf("%q parses back to %+v, not %+v", goTest, got, cfg)
		}
		make, ok := strings.CutPrefix(cmd, "make sim ")
		if !ok {
			if cfg.Nodes == 0 && cfg.Standby == 0 {
				t.Errorf("%q: no make sim form", cmd)
			}
			continue
		}
		make, _, _ = strings.Cut(make, " (or ")
		// The sim target passes each variable on as its flag.
		var args []string
		for _, w := range shellWords(t, make) {
			name, value, _ := strings.Cut(w, "=")
			flagName := map[string]string{"SEED": "seed", "STEPS": "steps", "FAULTS": "faults"}[name]
			if flagName == "" || !strings.Contains(string(makefile), "-"+flagName+"=$("+name+")") {
				t.Fatalf("%q: the Makefile does not pass %s on as -%s", cmd, name, flagName)
			}
			args = append(args, "-"+flagName+"="+value)
		}
		fs = flag.NewFlagSet("sim.test", flag.ContinueOnError)
		seed, steps, cf = defineConfigFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		if got, err := cf.config(*seed, *steps); err != nil || !reflect.DeepEqual(got, cfg) {
			t.Errorf("make sim %s parses back to %+v (%v), not %+v", make, got, err, cfg)
		}
	}
}

// shellWords splits a command line as a POSIX shell does words with
// single quotes and no other quoting.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var word strings.Builder
	in, quoted := false, false
	for _, r := range line {
		switch {
		case r == '\'':
			quoted, in = !quoted, true
		case r == ' ' && !quoted:
			if in {
				words = append(words, word.String())
				word.Reset()
			}
			in = false
		case strings.ContainsRune("\"\\$`;&|<>()*?[]", r) && !quoted:
			t.Fatalf("%q: %q would need more shell than words and single quotes", line, r)
		default:
			word.WriteRune(r)
			in = true
		}
	}
	if quoted {
		t.Fatalf("%q: unclosed quote", line)
	}
	if in {
		words = append(words, word.String())
	}
	return words
}

// TestParseFaults: FormatFaults and ParseFaults are each other's inverse,
// and ParseFaults refuses what is no weighting.
func TestParseFaults(t *testing.T) {
	for _, faults := range []map[Fault]int{DefaultFaults, {}, {FaultPartition: 3, FaultHeal: 0}} {
		got, err := ParseFaults(FormatFaults(faults))
		if err != nil || !maps.Equal(got, faults) || got == nil {
			t.Errorf("%v: %q parses back to %v, %v", faults, FormatFaults(faults), got, err)
		}
	}
	if got := FormatFaults(map[Fault]int{FaultRestart: 1, FaultAddValidator: 3}); got != "add-validator:3,restart:1" {
		t.Errorf("FormatFaults: %q, want the kinds sorted", got)
	}
	for _, bad := range []string{"", "restart", "restart:", "restart:-1", "restart:x", "drop:1", "restart:1,restart:2", "restart:1,"} {
		if got, err := ParseFaults(bad); err == nil {
			t.Errorf("ParseFaults(%q) = %v, want an error", bad, got)
		}
	}
}
