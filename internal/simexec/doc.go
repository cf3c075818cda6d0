// Package simexec starts a process with the Go runtime's random seed
// chosen by its parent, so that the runtime's own randomness (map
// iteration order, which ready case a select takes, the order of
// synctest timers due at one instant) repeats from run to run. The
// cluster simulator's tests (internal/sim) replay a seed in such a
// process (docs/architecture.md, "How far a seed reproduces a run").
//
// On Linux the Go runtime seeds its global generator from the 16 bytes
// the kernel passes in the auxiliary vector (AT_RANDOM; runtime/rand.go
// randinit, runtime/os_linux.go sysauxv), and each M's generators from
// that one as the M is made. The kernel puts those bytes in the new
// process's memory at exec; a parent that traces the child finds it
// stopped there, before its first instruction, and overwrites them.
//
// A fixed seed makes the draws repeat only while the process makes them
// in the same order: the runtime also draws from an M's generator when a
// lock it shares with another thread was contended, when its P found no
// work, or when a collection walks stacks, and a P handed to another M
// draws from that M's generator; the run then goes on with other draws.
package simexec
