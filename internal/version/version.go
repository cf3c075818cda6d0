package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version is set at link time by `make build`:
//
//	-ldflags "-X github.com/tally-ledger/tally/internal/version.Version=$(git describe --tags --always --dirty)"
//
// A plain `go build` leaves it empty, and Get falls back to the module
// version Go derives from the checkout.
var Version string

// Commit is the commit `make build` built (git rev-parse HEAD), set at
// link time like Version. Go's own record (vcs.revision) wins when there
// is one; Go records none in a git worktree or with -buildvcs=false.
var Commit string

// Info is what a binary knows about its own build.
type Info struct {
	// Version is Version, else the main module's version, else "devel".
	Version string
	// Commit is the VCS revision built (vcs.revision), "" when Go recorded
	// none (go run, go test, a build outside a checkout, -buildvcs=false).
	Commit string
	// Modified is set when the checkout had uncommitted changes.
	Modified bool
	// Go is the toolchain and platform, e.g. "go1.26.0 linux/amd64".
	Go string
}

// Get returns this binary's build information.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return fromBuildInfo(Version, Commit, bi)
}

// fromBuildInfo builds the Info of a binary linked with Version=ld and
// Commit=commit whose embedded build information is bi (nil when there is
// none).
func fromBuildInfo(ld, commit string, bi *debug.BuildInfo) Info {
	info := Info{Version: ld, Commit: commit, Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		if info.Version == "" {
			info.Version = "devel"
		}
		return info
	}
	if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = bi.Main.Version
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	if bi.GoVersion != "" {
		info.Go = bi.GoVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if s.Value != "" {
				info.Commit = s.Value
			}
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// String is the one line `--version` prints after the program's name:
// "v0.2.0-3-g1a2b3c4 (commit 1a2b3c4…, modified; go1.26.0 linux/amd64)".
func (i Info) String() string {
	var b strings.Builder
	b.WriteString(i.Version)
	b.WriteString(" (")
	switch {
	case i.Commit == "":
		b.WriteString("commit unknown")
	default:
		fmt.Fprintf(&b, "commit %s", i.Commit)
	}
	if i.Modified {
		b.WriteString(", modified")
	}
	fmt.Fprintf(&b, "; %s)", i.Go)
	return b.String()
}
