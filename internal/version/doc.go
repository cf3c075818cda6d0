// Package version says which build of Tally is running: the version the
// Makefile stamps from `git describe` and the commit Go records from the
// checkout it built (runtime/debug.ReadBuildInfo), for `tallyd --version`,
// `tally --version`, the node's startup line and web3_clientVersion.
package version
