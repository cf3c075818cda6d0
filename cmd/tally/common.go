package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"golang.org/x/term"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/wallet"
)

// Defaults and environment variables.
const (
	defaultRPC     = "http://127.0.0.1:8545"
	defaultTimeout = time.Minute
	envKeystore    = "TALLY_KEYSTORE"
	envPassword    = "TALLY_PASSWORD"
	// maxSecretFile bounds a mnemonic, key or password file: they are a
	// few hundred bytes, so a larger one is a wrong file.
	maxSecretFile = 64 << 10
)

// keystoreOpts is a test hook: tests set light scrypt parameters here so that
// creating a key takes milliseconds. It is never set outside tests, so keys
// made by the command always use the standard (slow, safe) parameters.
var keystoreOpts []wallet.KeystoreOption

// cli is one invocation's environment, injectable for tests.
type cli struct {
	stdin     io.Reader
	stdout    io.Writer
	stderr    io.Writer
	getenv    func(string) string
	openTTY   func() (*os.File, error)
	stdinUsed string // the flag that consumed stdin, so two cannot share it
}

// errHelp means --help was asked for and the usage was printed.
var errHelp = errors.New("help requested")

// usageError is a mistake in the command line or in what it points at: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// command is one subcommand's flag set and help text.
type command struct {
	name     string // "send", "wallet import"
	synopsis string // arguments after the name
	help     string
	fs       *flag.FlagSet
}

func newCommand(name, synopsis, help string) *command {
	fs := flag.NewFlagSet("tally "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, as "tally: ..."
	fs.Usage = func() {}
	return &command{name: name, synopsis: synopsis, help: help, fs: fs}
}

// printUsage writes the command's help and flags to w, flags spelt with
// two dashes as this help and the errors spell them.
func (cmd *command) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", strings.TrimSpace("tally "+cmd.name+" "+cmd.synopsis), strings.TrimSpace(cmd.help))
	first := true
	cmd.fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintf(w, "\nFlags:\n")
			first = false
		}
		name, text := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			text += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n    \t%s\n", line, text)
	})
}

// parse parses flags, which may come before, between or after the
// positional arguments ("tally balance ADDR --rpc URL" works); "--" ends the
// flags. It returns the positional arguments. --help prints the usage on
// stderr and returns errHelp.
func (c *cli) parse(cmd *command, args []string) ([]string, error) {
	var pos []string
	for {
		if err := cmd.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				cmd.printUsage(c.stderr)
				return nil, errHelp
			}
			return nil, usageErrorf("%s: %v", cmd.name, err)
		}
		rest := cmd.fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if i := len(args) - len(rest); i > 0 && args[i-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// wantArgs checks the number of positional arguments.
func wantArgs(cmd *command, args []string, names ...string) error {
	if len(args) < len(names) {
		return usageErrorf("%s: missing %s (usage: tally %s %s)", cmd.name, names[len(args)], cmd.name, cmd.synopsis)
	}
	if len(args) > len(names) {
		return usageErrorf("%s: unexpected argument %q", cmd.name, args[len(names)])
	}
	return nil
}

// isSet reports whether a flag was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// rpcFlags adds --rpc and --timeout.
func rpcFlags(fs *flag.FlagSet) (rpcURL *string, timeout *time.Duration) {
	rpcURL = fs.String("rpc", defaultRPC, "the node's JSON-RPC `URL` (http, https, ws or wss), or several nodes' URLs separated by commas (fail over between them)")
	timeout = fs.Duration("timeout", defaultTimeout, "give up after this long")
	return rpcURL, timeout
}

// keystoreFlag adds --keystore, defaulting to $TALLY_KEYSTORE, else
// $HOME/.tally/keystore.
func (c *cli) keystoreFlag(fs *flag.FlagSet) *string {
	def := c.getenv(envKeystore)
	if def == "" {
		if home, err := os.UserHomeDir(); err == nil {
			def = filepath.Join(home, ".tally", "keystore")
		}
	}
	return fs.String("keystore", def, "keystore `DIR` (env "+envKeystore+" sets the default)")
}

// passwordFileFlag adds --password-file.
func passwordFileFlag(fs *flag.FlagSet) *string {
	return fs.String("password-file", "", "read the keystore password from the first line of `FILE` (\"-\" for stdin); else env "+envPassword+", else a prompt")
}

// openKeystore opens the keystore directory named by --keystore.
func openKeystore(dir string) (*wallet.Keystore, error) {
	if dir == "" {
		return nil, usageErrorf("--keystore: no directory given and no home directory to default to")
	}
	return wallet.OpenKeystore(dir, keystoreOpts...)
}

// dial checks --rpc and connects (HTTP connects lazily, at the first call).
// --rpc is one URL or a comma-separated list of a cluster's nodes: with
// several, the client fails over between them (wallet.DialEndpoints) and
// keeps trying through an election until the command's --timeout.
func dial(ctx context.Context, rawURLs string) (*wallet.Client, error) {
	urls, err := parseRPCURLs(rawURLs)
	if err != nil {
		return nil, err
	}
	if len(urls) == 1 {
		return wallet.Dial(ctx, urls[0])
	}
	return wallet.DialEndpoints(ctx, urls, wallet.DefaultOptions())
}

// withScheme gives a node address written without a scheme (127.0.0.1:8545,
// as tallyd's log and the docs print addresses) the http:// scheme; a URL
// with a scheme is returned as it is. Every --rpc and --admin entry goes
// through it.
func withScheme(addr string) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	return "http://" + addr
}

// parseRPCURLs splits --rpc at commas and checks each URL, naming the one
// that is wrong.
func parseRPCURLs(raw string) ([]string, error) {
	parts := strings.Split(raw, ",")
	urls := make([]string, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		what := "--rpc"
		if len(parts) > 1 {
			what = fmt.Sprintf("--rpc entry %d", i+1)
		}
		if p == "" {
			return nil, usageErrorf("%s: empty URL", what)
		}
		p = withScheme(p)
		u, err := url.Parse(p)
		if err != nil {
			return nil, usageErrorf("%s: %v", what, err)
		}
		switch u.Scheme {
		case "http", "https", "ws", "wss":
		default:
			return nil, usageErrorf("%s: %q is not an http(s):// or ws(s):// URL", what, p)
		}
		if u.Host == "" {
			return nil, usageErrorf("%s: %q has no host", what, p)
		}
		if slices.Contains(urls, p) {
			return nil, usageErrorf("%s: %q is listed twice", what, p)
		}
		urls = append(urls, p)
	}
	return urls, nil
}

// parseAddress parses an address given as flag or argument what, refusing
// a bad EIP-55 checksum (a likely typo) and naming what in the error.
func parseAddress(what, s string) (common.Address, error) {
	if s == "" {
		return common.Address{}, usageErrorf("%s is required", what)
	}
	a, err := crypto.ParseAddress(s)
	if err != nil {
		return common.Address{}, usageErrorf("%s: %v", what, err)
	}
	return a, nil
}

// parseHash parses a 32-byte hash written as 0x and 64 hex digits.
func parseHash(what, s string) (common.Hash, error) {
	h := strings.TrimPrefix(s, "0x")
	if len(h) != 2*common.HashLength || !isHex(h) || !strings.HasPrefix(s, "0x") {
		return common.Hash{}, usageErrorf("%s: %q is not 0x and 64 hex digits", what, truncate(s))
	}
	return common.HexToHash(s), nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// truncate keeps echoed user input short in error messages.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// readSecret reads a secret from the file named by flag what ("-" reads
// stdin). The content never appears in errors.
func (c *cli) readSecret(what, path string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		if c.stdinUsed != "" {
			return nil, usageErrorf("%s: stdin is already read by %s", what, c.stdinUsed)
		}
		c.stdinUsed = what
		r = c.stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", what, err)
	}
	if len(data) > maxSecretFile {
		return nil, usageErrorf("%s: more than %d bytes: not a secret file", what, maxSecretFile)
	}
	return data, nil
}

// password returns the keystore password from --password-file, else
// $TALLY_PASSWORD, else a prompt on the terminal without echo. For a new key
// (confirm) the prompt asks twice and an empty password is refused.
func (c *cli) password(file string, confirm bool) (string, error) {
	var pw string
	switch {
	case file != "":
		data, err := c.readSecret("--password-file", file)
		if err != nil {
			return "", err
		}
		line, _, _ := bytes.Cut(data, []byte("\n"))
		pw = strings.TrimSuffix(string(line), "\r")
	case c.getenv(envPassword) != "":
		pw = c.getenv(envPassword)
	default:
		var err error
		if pw, err = c.promptPassword(confirm); err != nil {
			return "", err
		}
	}
	if confirm && pw == "" {
		return "", usageErrorf("the password is empty: a key needs a password")
	}
	return pw, nil
}

// promptPassword reads a password from the controlling terminal, which works
// even when stdin is a pipe (as for "--mnemonic-file -").
func (c *cli) promptPassword(confirm bool) (string, error) {
	tty, err := c.openTTY()
	if err != nil {
		return "", usageErrorf("no password: use --password-file FILE or set %s (no terminal to prompt on: %v)", envPassword, err)
	}
	defer tty.Close()
	// term.ReadPassword turns echo off; a Ctrl-C while it waits would leave
	// the terminal without echo, so restore it before dying.
	fd := int(tty.Fd())
	if st, err := term.GetState(fd); err == nil {
		sig := make(chan os.Signal, 1)
		done := make(chan struct{})
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		defer func() { signal.Stop(sig); close(done) }()
		go func() {
			select {
			case <-sig:
				term.Restore(fd, st)
				fmt.Fprintln(tty)
				os.Exit(130)
			case <-done:
			}
		}()
	}
	read := func(prompt string) (string, error) {
		fmt.Fprint(tty, prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(tty)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		return string(b), nil
	}
	pw, err := read("Password: ")
	if err != nil {
		return "", err
	}
	if confirm {
		again, err := read("Repeat password: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", errors.New("the passwords do not match")
		}
	}
	return pw, nil
}

// openTTY opens the controlling terminal, failing when there is none (CI,
// cron, a service) so the command never hangs waiting for input.
func openTTY() (*os.File, error) {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if !term.IsTerminal(int(f.Fd())) {
		f.Close()
		return nil, errors.New("/dev/tty is not a terminal")
	}
	return f, nil
}

// withTimeout is the context every network command runs in.
func withTimeout(d time.Duration) (context.Context, context.CancelFunc, error) {
	if d <= 0 {
		return nil, nil, usageErrorf("--timeout must be positive, got %v", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	return ctx, cancel, nil
}

// connect dials the node within the command's timeout; done closes the
// client and releases the timeout.
func connect(rpcURL string, timeout time.Duration) (context.Context, *wallet.Client, func(), error) {
	ctx, cancel, err := withTimeout(timeout)
	if err != nil {
		return nil, nil, nil, err
	}
	client, err := dial(ctx, rpcURL)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return ctx, client, func() { client.Close(); cancel() }, nil
}
