package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/wallet"
)

func TestMain(m *testing.M) {
	// Light scrypt keeps key creation in tests to milliseconds; the command
	// itself always uses the standard parameters.
	keystoreOpts = []wallet.KeystoreOption{wallet.WithLightScrypt()}
	os.Exit(m.Run())
}

const (
	addr0 = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266" // test mnemonic, index 0
	addr1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" // index 1
	addr2 = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC" // index 2
	// badSum is addr1 with one letter's case flipped.
	badSum = "0x70997970C51812dc3A010C7d01b50e0d17dc79c8"
)

type result struct {
	code           int
	stdout, stderr string
}

// tally runs the command in-process with stdin.
func tally(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return result{code, out.String(), errOut.String()}
}

// setup gives the test its own keystore through TALLY_KEYSTORE and a
// password through TALLY_PASSWORD, and returns the keystore directory.
func setup(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keystore")
	t.Setenv(envKeystore, dir)
	t.Setenv(envPassword, "correct horse")
	return dir
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUsageErrors(t *testing.T) {
	setup(t)
	mn := writeFile(t, "mnemonic", crypto.TestMnemonic+"\n")
	pk := writeFile(t, "key", "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d\n")
	closed := "http://127.0.0.1:1"
	send := func(extra ...string) []string {
		return append([]string{"send", "--rpc", closed, "--from", addr0, "--to", addr1, "--value", "1"}, extra...)
	}
	tests := []struct {
		name string
		args []string
		want []string // substrings of the error line
	}{
		{"no command", nil, []string{"no command"}},
		{"unknown command", []string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
		{"unknown wallet command", []string{"wallet", "frob"}, []string{`wallet: unknown command "frob"`}},
		{"no wallet command", []string{"wallet"}, []string{"wallet: no command"}},
		{"unknown flag", []string{"send", "--bogus"}, []string{"bogus"}},
		{"missing --to", []string{"send", "--from", addr0, "--value", "1"}, []string{"--to is required"}},
		{"missing --from", []string{"send", "--to", addr1, "--value", "1"}, []string{"--from is required"}},
		{"missing --value", []string{"send", "--from", addr0, "--to", addr1}, []string{"--value is required"}},
		{"bad --to checksum", []string{"send", "--from", addr0, "--to", badSum, "--value", "1"}, []string{"--to", "checksum"}},
		{"bad --from", []string{"send", "--from", "0x1234", "--to", addr1, "--value", "1"}, []string{"--from", "invalid address"}},
		{"amount 1.2.3", append(send()[:8], "1.2.3"), []string{"--value", `"1.2.3"`}},
		{"negative amount", append(send()[:8], "-1"), []string{"--value", "negative"}},
		{"negative decimal amount", append(send()[:8], "-0.5"), []string{"--value", "negative"}},
		{"too many decimals", append(send()[:8], "0.0000000000000000001"), []string{"--value", "decimal places"}},
		{"fractional wei", append(send()[:8], "1.5wei"), []string{"--value", "decimal places"}},
		{"empty amount", append(send()[:8], ""), []string{"--value is required"}},
		{"amount with unit", append(send()[:8], "1.5 CNY"), []string{"--value"}},
		{"bad rpc", send("--rpc", "ftp://x"), []string{"--rpc"}},
		{"bad rpc in a list", send("--rpc", closed+",ftp://x"), []string{"--rpc entry 2", `"ftp://x"`}},
		{"empty rpc in a list", send("--rpc", closed+","), []string{"--rpc entry 2: empty URL"}},
		{"rpc listed twice", send("--rpc", closed+","+closed), []string{"--rpc entry 2", "listed twice"}},
		{"zero timeout", send("--timeout", "0s"), []string{"--timeout"}},
		{"extra send argument", send("extra"), []string{`unexpected argument "extra"`}},
		{"balance without address", []string{"balance"}, []string{"missing ADDR"}},
		{"balance bad address", []string{"balance", "0xzz"}, []string{"ADDR", "invalid address"}},
		{"balance bad checksum", []string{"balance", badSum}, []string{"ADDR", "checksum"}},
		{"balance two addresses", []string{"balance", addr0, addr1}, []string{"unexpected argument"}},
		{"tx without hash", []string{"tx"}, []string{"missing HASH"}},
		{"tx short hash", []string{"tx", "0x1234"}, []string{"HASH", "64 hex digits"}},
		{"tx not hex", []string{"tx", "0x" + strings.Repeat("zz", 32)}, []string{"HASH"}},
		{"block not a number", []string{"block", "abc"}, []string{"N", `"abc"`}},
		{"block negative", []string{"block", "--", "-1"}, []string{"N", `"-1"`}},
		{"wallet new words", []string{"wallet", "new", "--words", "13"}, []string{"--words"}},
		{"wallet new words not a number", []string{"wallet", "new", "--words", "x"}, []string{"words"}},
		{"import without source", []string{"wallet", "import"}, []string{"--mnemonic-file or --private-key-file"}},
		{"import two sources", []string{"wallet", "import", "--mnemonic-file", mn, "--private-key-file", pk}, []string{"not both"}},
		{"import key with index", []string{"wallet", "import", "--private-key-file", pk, "--index", "1"}, []string{"--index"}},
		{"import hardened index", []string{"wallet", "import", "--mnemonic-file", mn, "--index", "2147483648"}, []string{"--index"}},
		{"import negative index", []string{"wallet", "import", "--mnemonic-file", mn, "--index", "-1"}, []string{"index"}},
		{"import bad mnemonic", []string{"wallet", "import", "--mnemonic-file", writeFile(t, "bad", "test test test test test test test test test test test test\n")}, []string{"--mnemonic-file", "not a valid BIP39 mnemonic"}},
		{"import empty mnemonic", []string{"wallet", "import", "--mnemonic-file", writeFile(t, "empty", "\n")}, []string{"--mnemonic-file", "empty"}},
		{"import bad key", []string{"wallet", "import", "--private-key-file", writeFile(t, "badkey", "0x1234")}, []string{"--private-key-file", "invalid private key"}},
		{"import both from stdin", []string{"wallet", "import", "--mnemonic-file", "-", "--password-file", "-"}, []string{"stdin"}},
		{"address index without mnemonic", []string{"wallet", "address", "--index", "1"}, []string{"--index needs --mnemonic-file"}},
		{"list extra argument", []string{"wallet", "list", "x"}, []string{"unexpected argument"}},
		{"bench zero txs", []string{"bench", "--txs", "0"}, []string{"--txs"}},
		{"bench bad accounts", []string{"bench", "--accounts", "0"}, []string{"--accounts"}},
		{"bench rate not a number", []string{"bench", "--rate", "fast"}, []string{"--rate", `"fast"`, "0.4R"}},
		{"bench negative rate", []string{"bench", "--rate", "-5"}, []string{"--rate", `"-5"`}},
		{"bench bare R", []string{"bench", "--rate", "R"}, []string{"--rate", `"R"`}},
		{"bench rate of R without R", []string{"bench", "--rate", "0.4R", "--ceiling-txs", "0"}, []string{"--rate 0.4R", "--ceiling-txs"}},
		{"bench negative ceiling txs", []string{"bench", "--ceiling-txs", "-1"}, []string{"--ceiling-txs"}},
		{"testnet without dir", []string{"testnet", "--nodes", "3"}, []string{"--dir is required"}},
		{"testnet too many nodes", []string{"testnet", "--nodes", "99", "--dir", t.TempDir()}, []string{"nodes"}},
		{"testnet bad port", []string{"testnet", "--dir", t.TempDir(), "--base-port", "70000"}, []string{"base-port"}},
		{"admin without subcommand", []string{"admin"}, []string{"admin: missing subcommand"}},
		{"admin unknown subcommand", []string{"admin", "reboot"}, []string{`unknown subcommand "reboot"`}},
		{"admin without token", []string{"admin", "raft-status"}, []string{"--token-file is required"}},
		{"admin checkpoint without out", []string{"admin", "checkpoint", "--token-file", "x"}, []string{"--out is required"}},
		{"admin add-observer without addr", []string{"admin", "add-observer", "--token-file", "x"}, []string{"missing MULTIADDR"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tally(t, "", tc.args...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want 2; stderr:\n%s", r.code, r.stderr)
			}
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "tally: ") {
				t.Fatalf("error line %q does not start with \"tally: \"", last)
			}
			for _, w := range tc.want {
				if !strings.Contains(last, w) {
					t.Errorf("error %q does not mention %q", last, w)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout on a usage error: %q", r.stdout)
			}
			if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine") {
				t.Fatalf("panic: %s", r.stderr)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	setup(t)
	tests := []struct {
		args []string
		leaf bool // a command with flags
	}{
		{[]string{"--help"}, false}, {[]string{"-h"}, false}, {[]string{"help"}, false},
		{[]string{"wallet", "--help"}, false},
		{[]string{"wallet", "new", "--help"}, true}, {[]string{"wallet", "import", "-h"}, true},
		{[]string{"wallet", "address", "--help"}, true}, {[]string{"wallet", "list", "--help"}, true},
		{[]string{"send", "--help"}, true}, {[]string{"balance", "--help"}, true},
		{[]string{"tx", "--help"}, true}, {[]string{"block", "-help"}, true},
		{[]string{"bench", "--help"}, true}, {[]string{"testnet", "--help"}, true},
		{[]string{"admin", "checkpoint", "--help"}, true}, {[]string{"admin", "isolate-peer", "--help"}, true},
	}
	for _, tc := range tests {
		r := tally(t, "", tc.args...)
		if r.code != exitOK {
			t.Errorf("%v: exit %d, want 0", tc.args, r.code)
		}
		if !strings.HasPrefix(r.stderr, "Usage: tally") {
			t.Errorf("%v: stderr does not start with the usage:\n%s", tc.args, r.stderr)
		}
		if r.stdout != "" {
			t.Errorf("%v: usage on stdout", tc.args)
		}
		if tc.leaf && !strings.Contains(r.stderr, "\nFlags:\n  --") {
			t.Errorf("%v: no --flags in the usage:\n%s", tc.args, r.stderr)
		}
	}
}

func TestWalletImportAndList(t *testing.T) {
	setup(t)
	mn := writeFile(t, "mnemonic", "  "+strings.ReplaceAll(crypto.TestMnemonic, " ", "  \n")+"\n")

	r := tally(t, "", "wallet", "list")
	if r.code != exitOK || r.stdout != "" || !strings.Contains(r.stderr, "no accounts") {
		t.Fatalf("empty list: %+v", r)
	}

	r = tally(t, "", "wallet", "import", "--mnemonic-file", mn)
	if r.code != exitOK || r.stdout != addr0+"\n" {
		t.Fatalf("import: %+v, want %s", r, addr0)
	}
	if r = tally(t, "", "wallet", "list"); r.code != exitOK || r.stdout != addr0+"\n" {
		t.Fatalf("list: %+v, want %s", r, addr0)
	}

	// A duplicate is refused (failure, not usage) and the keystore is unchanged.
	r = tally(t, "", "wallet", "import", "--mnemonic-file", mn)
	if r.code != exitFailure || !strings.Contains(r.stderr, "already in keystore") {
		t.Fatalf("duplicate import: %+v", r)
	}

	// Index 1 from stdin, a private key from a file with the password from a file.
	if r = tally(t, crypto.TestMnemonic, "wallet", "import", "--mnemonic-file", "-", "--index", "1"); r.code != exitOK || r.stdout != addr1+"\n" {
		t.Fatalf("import index 1 from stdin: %+v", r)
	}
	pk := writeFile(t, "key", "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a\n")
	pw := writeFile(t, "pw", "other password\nsecond line ignored\n")
	if r = tally(t, "", "wallet", "import", "--private-key-file", pk, "--password-file", pw); r.code != exitOK || r.stdout != addr2+"\n" {
		t.Fatalf("import private key: %+v", r)
	}
	// Sorted by address: 0x3C44 < 0x7099 < 0xf39F.
	if r = tally(t, "", "wallet", "list"); r.stdout != addr2+"\n"+addr1+"\n"+addr0+"\n" {
		t.Fatalf("list: %q", r.stdout)
	}
	// "wallet address" without a mnemonic lists the keystore too.
	if r2 := tally(t, "", "wallet", "address"); r2.stdout != r.stdout {
		t.Fatalf("wallet address: %q, want the list %q", r2.stdout, r.stdout)
	}

	// The keystore opens with the password from the file, not the env one.
	ks, err := wallet.OpenKeystore(os.Getenv(envKeystore))
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := crypto.ParseAddress(addr2)
	if _, err := ks.Unlock(a2, "other password"); err != nil {
		t.Fatalf("unlock with the file's password: %v", err)
	}
	a0, _ := crypto.ParseAddress(addr0)
	if _, err := ks.Unlock(a0, "correct horse"); err != nil {
		t.Fatalf("unlock with TALLY_PASSWORD: %v", err)
	}
}

func TestWalletAddress(t *testing.T) {
	setup(t)
	mn := writeFile(t, "mnemonic", crypto.TestMnemonic)
	for _, tc := range []struct{ index, want string }{{"0", addr0}, {"1", addr1}, {"2", addr2}} {
		r := tally(t, "", "wallet", "address", "--mnemonic-file", mn, "--index", tc.index)
		if r.code != exitOK || r.stdout != tc.want+"\n" {
			t.Errorf("index %s: %+v, want %s", tc.index, r, tc.want)
		}
	}
	// Nothing was stored.
	if r := tally(t, "", "wallet", "list"); r.stdout != "" {
		t.Fatalf("wallet address stored a key: %q", r.stdout)
	}
}

func TestWalletNew(t *testing.T) {
	setup(t)
	for _, words := range []int{12, 24} {
		r := tally(t, "", "wallet", "new", "--words", map[int]string{12: "12", 24: "24"}[words])
		if r.code != exitOK {
			t.Fatalf("wallet new: %+v", r)
		}
		if !strings.Contains(r.stdout, "Write it down") {
			t.Errorf("no warning in %q", r.stdout)
		}
		var mnemonic, addr string
		for _, line := range strings.Split(r.stdout, "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) == words:
				mnemonic = strings.Join(f, " ")
			case len(f) == 2 && f[0] == "Address:":
				addr = f[1]
			}
		}
		if mnemonic == "" || addr == "" {
			t.Fatalf("no %d-word mnemonic or address in:\n%s", words, r.stdout)
		}
		key, err := crypto.KeyFromMnemonic(mnemonic, "", 0)
		if err != nil {
			t.Fatalf("printed mnemonic: %v", err)
		}
		if key.Address().Hex() != addr {
			t.Fatalf("address %s, but the mnemonic gives %s", addr, key.Address().Hex())
		}
		if l := tally(t, "", "wallet", "list"); !strings.Contains(l.stdout, addr+"\n") {
			t.Fatalf("new account %s not listed: %q", addr, l.stdout)
		}
	}
}

func TestPasswordSources(t *testing.T) {
	dir := setup(t)
	t.Setenv(envPassword, "")
	mn := writeFile(t, "mnemonic", crypto.TestMnemonic)

	// No password source and no terminal: a clear error, not a hang.
	var out, errOut bytes.Buffer
	c := &cli{
		stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, getenv: os.Getenv,
		openTTY: func() (*os.File, error) { return nil, errors.New("no tty") },
	}
	if code := c.main([]string{"wallet", "import", "--mnemonic-file", mn}); code != exitUsage {
		t.Fatalf("exit %d, want 2: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "--password-file") || !strings.Contains(errOut.String(), envPassword) {
		t.Fatalf("error does not say how to give a password: %q", errOut.String())
	}

	// An empty password is refused for a new key.
	empty := writeFile(t, "empty", "\n")
	if r := tally(t, "", "wallet", "import", "--mnemonic-file", mn, "--password-file", empty); r.code != exitUsage || !strings.Contains(r.stderr, "empty") {
		t.Fatalf("empty password: %+v", r)
	}
	// A missing password file is a failure naming the flag.
	if r := tally(t, "", "wallet", "import", "--mnemonic-file", mn, "--password-file", filepath.Join(dir, "nope")); r.code != exitFailure || !strings.Contains(r.stderr, "--password-file") {
		t.Fatalf("missing password file: %+v", r)
	}
	// Password from stdin.
	if r := tally(t, "pw from stdin\n", "wallet", "import", "--mnemonic-file", mn, "--password-file", "-"); r.code != exitOK {
		t.Fatalf("password from stdin: %+v", r)
	}

	// send: a wrong password and an unknown sender fail before any network call.
	wrong := writeFile(t, "wrong", "wrong\n")
	r := tally(t, "", "send", "--rpc", "http://127.0.0.1:1", "--from", addr0, "--to", addr1, "--value", "1", "--password-file", wrong)
	if r.code != exitFailure || !strings.Contains(r.stderr, "wrong password") {
		t.Fatalf("wrong password: %+v", r)
	}
	r = tally(t, "", "send", "--rpc", "http://127.0.0.1:1", "--from", addr1, "--to", addr0, "--value", "1", "--password-file", wrong)
	if r.code != exitFailure || !strings.Contains(r.stderr, "not in keystore") || !strings.Contains(r.stderr, addr1) {
		t.Fatalf("unknown sender: %+v", r)
	}
}

func TestParseValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"1.5", "1500000000000000000"},
		{"2.5", "2500000000000000000"},
		{"0.000000000000000001", "1"},
		{"1wei", "1"},
		{"1500000000000000000wei", "1500000000000000000"},
		{"0", "0"},
	}
	for _, tc := range tests {
		v, err := parseValue(tc.in)
		if err != nil || v.String() != tc.want {
			t.Errorf("parseValue(%q) = %v, %v; want %s", tc.in, v, err, tc.want)
		}
	}
	for _, bad := range []string{"wei", "1.5wei", "-1wei", "1 wei", "1.2.3", "-1", "1e3", "0x10"} {
		if _, err := parseValue(bad); err == nil {
			t.Errorf("parseValue(%q) accepted", bad)
		}
	}
}

func TestTestnetCommand(t *testing.T) {
	dir := t.TempDir()
	r := tally(t, "", "testnet", "--nodes", "2", "--dir", dir, "--base-port", "23000")
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"node0  rpc http://127.0.0.1:23000", "node1  rpc http://127.0.0.1:23001", "tallyd --config " + filepath.Join(dir, "node1", "config.toml")} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := tally(t, "", "testnet", "--nodes", "2", "--dir", dir); r.code != exitUsage || !strings.Contains(r.stderr, "already holds a testnet") {
		t.Fatalf("second testnet in the same dir: exit %d: %s", r.code, r.stderr)
	}
}
