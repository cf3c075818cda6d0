package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// TestFromBuildInfo: the linked version wins over the module's, Go's own
// vcs.revision over the linked commit; without either a build says
// "devel" and "commit unknown".
func TestFromBuildInfo(t *testing.T) {
	goVer := "go1.26.0 " + runtime.GOOS + "/" + runtime.GOARCH
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}
	}
	for _, c := range []struct {
		name, ld, commit string
		bi               *debug.BuildInfo
		want             string
	}{
		{"make build in a checkout", "v0.2.0-3-g1a2b3c4", "1a2b3c4d", vcs("1a2b3c4d", "false"), "v0.2.0-3-g1a2b3c4 (commit 1a2b3c4d; " + goVer + ")"},
		{"make build with changes", "v0.2.0-dirty", "1a2b3c4d", vcs("1a2b3c4d", "true"), "v0.2.0-dirty (commit 1a2b3c4d, modified; " + goVer + ")"},
		{"make build in a worktree", "1a2b3c4", "1a2b3c4d", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}}, "1a2b3c4 (commit 1a2b3c4d; " + goVer + ")"},
		{"go's record wins", "v1", "stale", vcs("fresh", "false"), "v1 (commit fresh; " + goVer + ")"},
		{"go build", "", "", vcs("1a2b3c4d", "false"), "devel (commit 1a2b3c4d; " + goVer + ")"},
		{"go install module@version", "", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.2.0"}}, "v0.2.0 (commit unknown; " + goVer + ")"},
		{"pseudo-version", "", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-20261206055557-f0ee4365a6a4+dirty"}},
			"v0.0.0-20261206055557-f0ee4365a6a4+dirty (commit unknown; " + goVer + ")"},
	} {
		if got := fromBuildInfo(c.ld, c.commit, c.bi).String(); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
	if got := fromBuildInfo("", "", nil); got.Version != "devel" || got.Commit != "" {
		t.Errorf("no build info: %+v", got)
	}
}
