package sim

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing/synctest"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/ethereum/go-ethereum/common"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/consensus"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
)

// Config is one simulated run.
type Config struct {
	// Seed drives every choice of the scheduler, the clients and the faults.
	Seed uint64
	// Nodes is how many validators the genesis has (3 when 0).
	Nodes int
	// Standby is how many more nodes run without being validators, for
	// governance to add (1 when 0 and the faults include add-validator).
	Standby int
	// Steps is how many scheduler steps run before the cluster is healed
	// and left to converge.
	Steps int
	// Faults are the weights of the fault events (DefaultFaults when nil).
	Faults map[Fault]int
	// Log, if set, receives the nodes' logs (warnings and above).
	Log io.Writer
	// Trace, if set, receives every scheduler event as it happens.
	Trace io.Writer
}

// Result is what a run did.
type Result struct {
	Seed  uint64
	Steps int
	// SimTime is the simulated time the run covered.
	SimTime time.Duration
	// Height is the canonical chain's height at the end.
	Height uint64
	// Txs counts the client transactions the chain receipted.
	Txs int
	// Faults counts the faults injected, by kind.
	Faults map[Fault]int
	// Delivered counts the messages delivered.
	Delivered int
	// Checks counts the invariant checks made.
	Checks int
	// SlowSyncs counts the syncs a slow disk delayed, and DiskStall the
	// simulated time they were held back.
	SlowSyncs int
	DiskStall time.Duration
	// DiskHalts counts the halts of nodes on their failing disk (each
	// followed by a restart on the repaired disk).
	DiskHalts int
	// DiskDeaths counts the ends of a node's process on a fatal disk
	// error of Pebble (a metadata disk error), at a flush or at a start.
	DiskDeaths int
	// Refused counts the attackers' transactions refused as a real node
	// refuses them, each checked (attack.go, clients_batch.go).
	Refused int
	// RaftLostRefused counts the starts refused on a lost Raft directory,
	// and FreshStarts the starts as a fresh member that followed.
	RaftLostRefused, FreshStarts int
	// DataDirLostRefused counts the starts refused on a lost data
	// directory (among them the fresh starts follow too): a peer knew the
	// node; DataDirLostWaited those of genesis validators that too few
	// peers answered, refused after raft.peer-check-timeout; and
	// DataDirLostAdded those of validators added by governance (in
	// DataDirLostRefused), DataDirLostVoterSet those among them that no
	// peer it reached knew (refused on the voter set alone),
	// DataDirLostAlone those of nodes that reached no other node (in
	// DataDirLostWaited), DataDirLostGated the starts of added validators
	// that reached no running node and joined granting no vote until
	// caught up.
	DataDirLostRefused, DataDirLostWaited, DataDirLostAdded, DataDirLostVoterSet, DataDirLostAlone, DataDirLostGated int
	// DiskRefusals counts the starts that failed with the error of the
	// node's failing disk (a failed read).
	DiskRefusals int
	// SlowTableSyncs counts the sstable syncs a slow disk delayed (among
	// SlowSyncs).
	SlowTableSyncs int
	// DirSyncsFailed counts the directory syncs a dir-sync-error or a
	// store-parent-sync-error fault failed with an error (not those that ended a process: DiskDeaths),
	// ParentSyncsFailed those of a data directory's parent a
	// datadir-sync-error fault failed.
	DirSyncsFailed, ParentSyncsFailed int
	// ManifestSyncs counts the MANIFEST syncs a slow-manifest-sync fault
	// held back, ManifestStall the simulated time it held them;
	// ManifestBlocks the canonical blocks made while one was held back,
	// and ManifestMaxGap the longest wait for such a block (fs.go).
	ManifestSyncs                 int
	ManifestStall, ManifestMaxGap time.Duration
	ManifestBlocks                int
	// DiskStalls counts the disk-stall faults a node's own watch ended
	// (store.max-sync-duration: its process ended), StalledLeadsMoved
	// those of a leader whose lead another node took (stall.go).
	DiskStalls, StalledLeadsMoved int
	// StalledStarts counts the starts on a disk that still stalled that
	// the node's watch ended again; StallRecoveries the starts after the
	// watch ended a process whose instance ran on past the stall's end,
	// StallRecoveriesStalled those of them started while the disk still
	// stalled (stall.go).
	StalledStarts, StallRecoveries, StallRecoveriesStalled int
	// Certs counts the commit certificates the canonical chain carries
	// (the vote collection at work).
	Certs int
	// Snapshots counts the Raft snapshots nodes took, Installs those a
	// leader sent that a node installed (FSM.Restore), Rejoins those of
	// Installs that brought back a node restarted behind the leader's
	// trailing logs.
	Snapshots, Installs, Rejoins int
	// JournalRewrites counts the pool journals' rewrites (compactJournal).
	JournalRewrites int
	// TraceHash summarises the run: every scheduler event and the
	// canonical chain. Two runs of one seed that agree on it took the same
	// path.
	TraceHash [32]byte
}

// Fault is a kind of fault the scheduler injects.
type Fault string

// The faults.
const (
	FaultDrop      Fault = "drop"       // a queued message is lost
	FaultDelay     Fault = "delay"      // a queued message is held back
	FaultReorder   Fault = "reorder"    // a message overtakes an older one on its link
	FaultCrash     Fault = "crash"      // a node loses power (unsynced writes may be lost)
	FaultRestart   Fault = "restart"    // a crashed node starts again
	FaultPartition Fault = "partition"  // the nodes split in two groups
	FaultHeal      Fault = "heal"       // every link works again
	FaultChurn     Fault = "churn"      // the leader hands over its lead
	FaultDiskError Fault = "disk-error" // a node's state database fails its writes: the node halts, and restarts once the disk is replaced
	FaultSlowDisk  Fault = "slow-disk"  // a node's syncs take longer for a while (fs.go)
	// FaultRaftDiskError: a node's Raft log fails its writes: the node
	// halts and leaves Raft, and restarts once the disk is replaced.
	FaultRaftDiskError Fault = "raft-disk-error"
	// FaultMetaDiskError: a node's state database or Raft log fails the
	// writes of its MANIFEST and marker files: Pebble cannot go
	// on, the node's process ends at the next one (a flush, or its next
	// start, which fails), and it restarts once the disk is replaced
	// (fs.go).
	FaultMetaDiskError Fault = "meta-disk-error"
	// FaultRaftDirLost: a node's Raft directory is wiped while its state
	// survives: its start is refused (it forgot its votes), and it comes
	// back as a fresh member once that is safe (fs.go).
	FaultRaftDirLost Fault = "raft-dir-lost"
	// FaultTableDiskError: a node's state database or Raft log fails its
	// sstable writes (flushes, compactions): the node halts once 8 in a
	// row failed, or its process ends if Pebble was opening the database
	// (fs.go).
	FaultTableDiskError Fault = "table-disk-error"
	// FaultReadError: a node's state database fails its sstable reads
	// (EIO): a block applied or built on a failed read halts the node
	// (fs.go).
	FaultReadError Fault = "read-error"
	// FaultOptionsDiskError: a node's state database or Raft log fails
	// its OPTIONS writes, and the node is started again on that disk: it
	// does not start (fs.go).
	FaultOptionsDiskError Fault = "options-disk-error"
	// FaultDirSyncError: a node's disk fails the syncs of its state
	// database's directory, its Raft log's or its snapshot store's: the
	// node halts, its process ends or its snapshot fails, and it does not
	// start on that disk (fs.go).
	FaultDirSyncError Fault = "dir-sync-error"
	// FaultSlowManifest: a node's MANIFEST syncs take seconds for a while
	// (fs.go).
	FaultSlowManifest Fault = "slow-manifest-sync"
	// FaultDataDirSyncError: a node's disk fails the syncs of its data
	// directory's parent, which holds the directory's entry: its start
	// fails on it, and its snapshot installs (fs.go).
	FaultDataDirSyncError Fault = "datadir-sync-error"
	// FaultStoreParentSyncError: a node's disk fails the syncs of its data
	// directory or of its Raft directory, which hold the stores'
	// directories (and the pool journal): its start fails, and its
	// snapshots (fs.go).
	FaultStoreParentSyncError Fault = "store-parent-sync-error"
	// FaultDataDirLost: a validator's whole data directory is lost and
	// only its nodekey restored: its start is refused (its peers know it
	// ran), and it comes back as a fresh member once that is safe
	// (datadir.go).
	FaultDataDirLost Fault = "datadir-lost"
	// FaultRaftReadError: a node's Raft log fails its sstable reads
	// (EIO): the node halts and leaves Raft on the first read that fails,
	// before hashicorp/raft sees it, or does not start (fs.go).
	FaultRaftReadError Fault = "raft-read-error"
)

// DefaultFaults are the fault weights of a run that sets none, relative
// to each other; faultPermille of steps inject one.
var DefaultFaults = map[Fault]int{
	FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1,
	FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1, FaultMetaDiskError: 1,
	FaultRaftDirLost: 1, FaultTableDiskError: 1, FaultReadError: 1, FaultOptionsDiskError: 1,
	FaultDataDirLost: 1, FaultDirSyncError: 1, FaultSlowManifest: 1, FaultDataDirSyncError: 1,
	FaultRaftReadError: 1, FaultStoreParentSyncError: 1, FaultDiskStall: 1,
}

// Scheduler probabilities, per step.
const (
	faultPermille   = 4   // a fault event
	clientPermille  = 60  // a client operation
	advancePermille = 150 // time advances although messages are queued
	dropPermille    = 15  // of deliveries: the message is dropped instead
	delayPermille   = 30  // of deliveries: the message is delayed instead
	maxDelay        = 300 * time.Millisecond
	maxQuantum      = 10 * time.Millisecond
	// livenessBound is how long a connected quorum may go without a new
	// block: the builder proposes an empty block every second when idle,
	// an election takes a few election timeouts.
	livenessBound = 30 * time.Second
	// settleTime bounds the quiet phase at the end, in which the healed
	// cluster must converge.
	settleTime = 60 * time.Second
	// lossPercent is the share of unsynced writes a crash loses.
	lossPercent = 50
)

// Sim is a running simulation. It must run inside a testing/synctest
// bubble: the bubble's clock is the simulated time, and synctest.Wait is
// how the scheduler knows every node is idle before it picks an event.
type Sim struct {
	cfg     Config
	rng     *rand.Rand
	net     *network
	nodes   []*simNode
	servers []raft.Server
	g       *genesis.Genesis
	start   time.Time
	res     Result
	trace   hash.Hash
	recent  []string // the last trace lines, shown when a run fails
	// recentMu guards recent, which the watchdog reads from outside the
	// bubble.
	recentMu sync.Mutex
	// given is the run's Config as given to Run, before its defaults
	// (replay).
	given   Config
	step    int
	faults  []Fault
	crashes int // crashes injected, for crashRNG
	steps   int // steps ended, settling included (seedRaft)
	gc      *gcBetweenSteps
	mw      manifestWatch

	inv *invariants
	cl  *clients
	ids *simIDs
	gov *governance
	// observing is set while the invariants read the nodes' databases:
	// their read faults do not fail an observer's reads (fs.go).
	observing atomic.Bool
}

// Run runs cfg inside the current synctest bubble and returns what it
// did, or the first broken invariant (the error says how to replay it).
func Run(cfg Config) (res *Result, err error) {
	gc := newGCBetweenSteps()
	defer gc.stop()
	s, err := newSim(cfg)
	if err != nil {
		return nil, err
	}
	s.gc = gc
	defer watch.sim.CompareAndSwap(s, nil)
	defer func() {
		if err != nil {
			s.dumpNodes()
		}
		if cerr := s.close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			err = fmt.Errorf("seed %d, step %d, t=%s: %w\nlast events:\n  %s\nreplay: %s",
				cfg.Seed, s.step, s.now(), err, strings.Join(s.recent, "\n  "), s.replay())
		}
	}()
	if err := s.run(); err != nil {
		return &s.res, err
	}
	return &s.res, nil
}

// replay is the command that replays this run.
func (s *Sim) replay() string { return replayCommand(s.given) }

// replayCommand is the command that replays a run of cfg, as given to
// Run (before its defaults): TestSim's flags -seed, -steps and, when cfg
// sets them, -faults (FormatFaults), -nodes and -standby; and the make
// target's variables when they express it.
func replayCommand(cfg Config) string {
	flags := fmt.Sprintf("-seed=%d -steps=%d", cfg.Seed, cfg.Steps)
	vars := fmt.Sprintf("SEED=%d STEPS=%d", cfg.Seed, cfg.Steps)
	if cfg.Faults != nil {
		flags += " -faults=" + FormatFaults(cfg.Faults)
		vars += " FAULTS=" + FormatFaults(cfg.Faults)
	}
	gotest := "go test ./internal/sim -run '^TestSim$' " + flags
	if cfg.Nodes != 0 || cfg.Standby != 0 {
		return fmt.Sprintf("%s -nodes=%d -standby=%d", gotest, cfg.Nodes, cfg.Standby)
	}
	return fmt.Sprintf("make sim %s (or %s)", vars, gotest)
}

// FormatFaults writes fault weights as TestSim's -faults flag and make
// sim's FAULTS take them (ParseFaults): kind:weight pairs sorted by kind,
// joined by commas; "none" for no fault at all.
func FormatFaults(faults map[Fault]int) string {
	if len(faults) == 0 {
		return "none"
	}
	pairs := make([]string, 0, len(faults))
	for _, f := range slices.Sorted(maps.Keys(faults)) {
		pairs = append(pairs, fmt.Sprintf("%s:%d", f, faults[f]))
	}
	return strings.Join(pairs, ",")
}

// ParseFaults reads fault weights written by FormatFaults: each kind one
// the scheduler injects (DefaultFaults has them all), each weight a
// number from 0; "none" is no fault at all (an empty, non-nil map).
func ParseFaults(text string) (map[Fault]int, error) {
	out := map[Fault]int{}
	if text == "none" {
		return out, nil
	}
	for pair := range strings.SplitSeq(text, ",") {
		name, weight, ok := strings.Cut(pair, ":")
		f := Fault(strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("fault weights %q: %q is not kind:weight", text, pair)
		}
		if _, known := DefaultFaults[f]; !known {
			return nil, fmt.Errorf("fault weights %q: %q is no fault kind the scheduler injects (%s)", text, f, FormatFaults(DefaultFaults))
		}
		if _, twice := out[f]; twice {
			return nil, fmt.Errorf("fault weights %q: %s given twice", text, f)
		}
		w, err := strconv.Atoi(strings.TrimSpace(weight))
		if err != nil || w < 0 {
			return nil, fmt.Errorf("fault weights %q: weight of %s: %q is not a number from 0", text, f, weight)
		}
		out[f] = w
	}
	return out, nil
}

func newSim(cfg Config) (*Sim, error) {
	given := cfg
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Faults == nil {
		cfg.Faults = DefaultFaults
	}
	if cfg.Standby == 0 && cfg.Faults[FaultAddValidator] > 0 {
		cfg.Standby = 1
	}
	total := cfg.Nodes + cfg.Standby
	s := &Sim{cfg: cfg, given: given, rng: rand.New(rand.NewPCG(cfg.Seed, 0x7a11)), net: newNetwork(total), start: time.Now(), trace: sha256.New()}
	s.res = Result{Seed: cfg.Seed, Faults: map[Fault]int{}}
	s.mw = manifestWatch{at: s.start}
	seedRaft(cfg.Seed, 0)
	for f := range cfg.Faults {
		s.faults = append(s.faults, f)
	}
	slices.Sort(s.faults)
	var err error
	if s.g, err = simGenesis(cfg.Nodes); err != nil {
		return nil, err
	}
	logOut := cfg.Log
	if logOut == nil {
		logOut = io.Discard
	}
	for i := 0; i < cfg.Nodes; i++ {
		s.servers = append(s.servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(addr(i)), Address: addr(i)})
	}
	if s.ids, err = newSimIDs(total); err != nil {
		return nil, err
	}
	for i := 0; i < total; i++ {
		k, err := validatorKey(i)
		if err != nil {
			return nil, err
		}
		sn := &simNode{id: i, key: k, g: s.g, cfg: nodeConfig(), fs: provisionedDisk(), ids: s.ids, seed: cfg.Seed, observing: &s.observing,
			log: slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", i)}
		if i < cfg.Nodes {
			// A standby node starts with no configuration and waits for a
			// leader to add it, as a node whose key is not a validator does.
			sn.bootstrap = s.servers
		}
		s.nodes = append(s.nodes, sn)
	}
	// The genesis validators are launched together: while each asks the
	// others whether it may bootstrap, they all wait (datadir.go).
	for _, sn := range s.nodes {
		s.net.launching[sn.id].Store(len(sn.bootstrap) > 0)
	}
	for _, sn := range s.nodes {
		if len(sn.bootstrap) == 0 {
			// The genesis validators run: a standby node asking them
			// learns the voters from their engines (datadir.go).
			for _, o := range s.nodes {
				s.net.launching[o.id].Store(false)
			}
		}
		if err := sn.start(s.net); err != nil {
			s.close()
			return nil, err
		}
		// Nodes start a millisecond apart, as real ones never start at
		// the same instant: their periodic timers (vote resends) then
		// never fire at one simulated instant, whose order the Go
		// scheduler would pick.
		time.Sleep(time.Millisecond)
	}
	for _, sn := range s.nodes {
		s.net.launching[sn.id].Store(false)
	}
	s.inv = newInvariants(s)
	if s.cl, err = newClients(s); err != nil {
		s.close()
		return nil, err
	}
	if s.gov, err = newGovernance(s.cl); err != nil {
		s.close()
		return nil, err
	}
	s.cl.extra = []*account{s.gov.proposer, s.gov.approver}
	return s, nil
}

// validatorKey is simulated validator i's key, derived from the test
// mnemonic so that every run has the same validators.
func validatorKey(i int) (*crypto.PrivateKey, error) {
	return genesis.DevKey(uint32(genesis.DevValidatorIndex + 1 + i))
}

// simGenesis is the dev genesis with n simulated validators.
func simGenesis(n int) (*genesis.Genesis, error) {
	g := genesis.Dev()
	g.Validators = nil
	for i := 0; i < n; i++ {
		k, err := validatorKey(i)
		if err != nil {
			return nil, err
		}
		g.Validators = append(g.Validators, genesis.Validator{Name: fmt.Sprintf("n%d", i), PublicKey: ethcrypto.CompressPubkey(&k.ECDSA().PublicKey)})
	}
	return g, g.Validate()
}

func (s *Sim) now() time.Duration { return time.Since(s.start) }

// record adds one event to the trace.
func (s *Sim) record(format string, args ...any) {
	line := fmt.Sprintf("%d %s ", s.step, s.now()) + s.runTimes(fmt.Sprintf(format, args...))
	s.trace.Write([]byte(line))
	s.trace.Write([]byte{'\n'})
	if s.cfg.Trace != nil {
		fmt.Fprintln(s.cfg.Trace, line)
	}
	s.recentMu.Lock()
	s.recent = append(s.recent, line)
	if len(s.recent) > 40 {
		s.recent = s.recent[1:]
	}
	s.recentMu.Unlock()
}

// snapshotID matches a Raft snapshot's name in a path (raft's
// snapshotName: term, index and the clock's Unix milliseconds).
var snapshotID = regexp.MustCompile(`snapshots/(\d+)-(\d+)-\d+`)

// runTimes leaves the clock time out of the snapshot names an event names
// (the path of a failed sync): every run of a test binary shares one
// bubble, whose clock goes on from run to run, so the time would part the
// traces of two runs of one seed that took the same path; nor can it be
// written relative to the run's start, the name's milliseconds being
// truncated from an instant whose fraction of a millisecond differs from
// run to run. The term and index name the snapshot.
func (s *Sim) runTimes(event string) string {
	if !strings.Contains(event, "snapshots/") {
		return event
	}
	return snapshotID.ReplaceAllString(event, "snapshots/$1-$2-T")
}

func (s *Sim) run() error {
	for s.step = 0; s.step < s.cfg.Steps; s.step++ {
		synctest.Wait()
		s.noteAnswers()
		if err := s.observe(s.cl.calls.collect); err != nil {
			return err
		}
		if err := s.inv.check(false); err != nil {
			return err
		}
		if err := s.serviceRestarts(); err != nil {
			return err
		}
		s.watchManifest()
		if err := s.event(); err != nil {
			return err
		}
		s.endStep()
	}
	return s.settle()
}

// settle heals the network, restarts every crashed node and lets the
// cluster run without faults until every node has the whole canonical
// chain; then it checks everything once more.
func (s *Sim) settle() error {
	s.record("settle")
	s.net.healAll()
	for _, sn := range s.nodes {
		if sn.diskFailing() {
			// The disk is replaced; a node still up is stopped first. It
			// may have halted on the failing disk since the last check
			// (or while stopping), so its next start clears a halt the
			// injected error caused, as its operator would.
			if sn.up {
				if err := sn.stop(s.net); err != nil {
					s.record("stop n%d: %v", sn.id, err)
				}
			}
			sn.clearHalt = true
		}
		sn.repairDisk()
		sn.slow.clear()
		sn.dirs.slowManifest.clear()
		if sn.stall.active() {
			d := minSettleStall + time.Duration(s.rng.Int64N(int64(maxSettleStall-minSettleStall)))
			sn.stall.settle(d)
			s.record("n%d's disk stalls for %s more", sn.id, time.Until(time.Unix(0, sn.stall.until.Load())))
		}
	}
	for _, sn := range s.nodes {
		if !sn.up {
			if err := s.restart(sn); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(settleTime)
	if end := s.stallEnd(); !end.IsZero() {
		// A disk that still stalls ends the node's every start until it
		// answers (stall.go): the node catches up after that.
		deadline = end.Add(settleTime)
	}
	target := uint64(0)
	for time.Now().Before(deadline) {
		synctest.Wait()
		s.noteAnswers()
		if err := s.observe(s.cl.calls.collect); err != nil {
			return err
		}
		if err := s.inv.check(false); err != nil {
			return err
		}
		for _, sn := range s.nodes {
			// A node whose process ended meanwhile (a stalled disk's
			// watch ended it: stall.go) is started again by its service
			// manager (Restart=on-failure, RestartSec).
			if !sn.up && ((sn.lostAt.IsZero() && sn.restartDue()) || (!sn.lostAt.IsZero() && s.freshSafe(sn))) {
				if err := s.restart(sn); err != nil {
					return err
				}
			}
		}
		s.gov.progress()
		if target == 0 && s.cl.quiet() && s.gov.idle() {
			// Every client transaction is receipted: wait for one more
			// block so that the followers have something to catch up to.
			target = s.inv.height + 1
		}
		s.watchManifest()
		// A node on a disk that still stalls may have applied the whole
		// chain from its own log (its state database answers): the run
		// ends once it ran on past the stall.
		if target > 0 && s.inv.height >= target && s.inv.allAt(s.inv.height) && s.inv.setSettled() && s.stallEnd().IsZero() {
			break
		}
		if !s.cl.step() && !s.deliverOne(false) {
			s.advance()
		}
		s.endStep()
	}
	synctest.Wait()
	if err := s.inv.check(true); err != nil {
		return err
	}
	if s.net.dups > 0 {
		s.res.Faults[FaultForwardDup] = s.net.dups
	}
	s.res.Steps = s.step
	s.res.SimTime = s.now()
	s.res.Height = s.inv.height
	s.res.Txs = len(s.inv.txAt)
	s.res.Checks = s.inv.checks
	s.res.Certs = s.inv.certs
	for _, sn := range s.nodes {
		s.res.SlowSyncs += int(sn.slow.syncs.Load() + sn.slow.tableSyncs.Load())
		s.res.SlowTableSyncs += int(sn.slow.tableSyncs.Load())
		s.res.DiskStall += time.Duration(sn.slow.stalled.Load())
		s.res.DirSyncsFailed += int(sn.dirs.failed.Load())
		s.res.ParentSyncsFailed += int(sn.dirs.parentFailed.Load())
		s.res.ManifestSyncs += int(sn.dirs.slowManifest.syncs.Load())
		s.res.ManifestStall += time.Duration(sn.dirs.slowManifest.stalled.Load())
		s.res.JournalRewrites += int(sn.journalRewrites.Load())
	}
	s.countSnapshots()
	s.res.DiskStalls, s.res.StalledLeadsMoved, s.res.StalledStarts, s.res.StallRecoveries, s.res.StallRecoveriesStalled = s.stallResult()
	for h := uint64(1); h <= s.inv.height; h++ {
		c := s.inv.canon[h]
		s.trace.Write(c.hash[:])
		s.trace.Write(c.root[:])
	}
	copy(s.res.TraceHash[:], s.trace.Sum(nil))
	return nil
}

// event runs one scheduler step.
func (s *Sim) event() error {
	r := s.rng.IntN(1000)
	switch {
	case r < faultPermille:
		return s.fault()
	case r < faultPermille+clientPermille:
		s.cl.op()
		s.gov.progress()
		return nil
	case r < faultPermille+clientPermille+advancePermille:
		s.advance()
		return nil
	}
	if !s.deliverOne(true) {
		s.advance()
	}
	return nil
}

// deliverOne delivers (or, with faults, drops or delays) one ready
// message; false if none is ready.
func (s *Sim) deliverOne(faults bool) bool {
	ready := s.net.ready(time.Now())
	if len(ready) == 0 {
		return false
	}
	sortReady(ready)
	i := s.rng.IntN(len(ready))
	m := ready[i]
	if faults {
		switch r := s.rng.IntN(1000); {
		case r < dropPermille:
			s.net.drop(m)
			s.count(FaultDrop)
			s.countForwardDrop(m)
			s.record("drop %s n%d->n%d", m.kind, m.from, m.to)
			return true
		case r < dropPermille+delayPermille:
			d := time.Duration(1 + s.rng.Int64N(int64(maxDelay)))
			s.net.delay(m, time.Now().Add(d))
			s.count(FaultDelay)
			s.record("delay %s n%d->n%d %s", m.kind, m.from, m.to, d)
			return true
		}
		for _, o := range ready[:i] {
			if o.from == m.from && o.to == m.to {
				s.count(FaultReorder)
				break
			}
		}
	}
	ok := s.net.deliver(m)
	if ok && m.answers != nil {
		s.cl.calls.noteDelivered(m)
	}
	s.res.Delivered++
	s.record("deliver %s n%d->n%d %v", m.kind, m.from, m.to, ok)
	return true
}

// advance lets simulated time pass: a random quantum, or up to the next
// delayed message when nothing is ready.
func (s *Sim) advance() {
	d := time.Duration(1 + s.rng.Int64N(int64(maxQuantum)))
	if due := s.net.nextDue(); !due.IsZero() {
		if w := time.Until(due); w > 0 && w < d {
			d = w
		}
	}
	time.Sleep(d)
	s.record("advance %s", d)
}

func (s *Sim) count(f Fault) { s.res.Faults[f]++ }

// noteAnswers reads, for each answer to a forwarded batch produced since
// the last step, which validators hold each of its transactions: what
// the answer confirmed when it was produced (acked-held, checkHeld). It
// runs after synctest.Wait, when every node is idle, and reads the
// nodes' databases as an observer (observe).
func (s *Sim) noteAnswers() {
	ms := s.net.takeAnswers()
	if len(ms) == 0 {
		return
	}
	s.observing.Store(true)
	defer s.observing.Store(false)
	for _, m := range ms {
		m.held = map[common.Hash]confirmation{}
		for _, raw := range m.answers.raws {
			h := ethcrypto.Keccak256Hash(raw) // a transaction's hash is that of its encoding
			holders, applied := s.cl.calls.holders(h)
			m.held[h] = confirmation{holders: holders, applied: applied}
		}
	}
}

// observe runs check, which reads the nodes' databases as an observer
// does: past their read faults (fs.go).
func (s *Sim) observe(check func() error) error {
	s.observing.Store(true)
	defer s.observing.Store(false)
	return check()
}

// fault injects one fault, chosen by weight.
func (s *Sim) fault() error {
	total := 0
	for _, f := range s.faults {
		total += s.cfg.Faults[f]
	}
	if total == 0 {
		return nil
	}
	r := s.rng.IntN(total)
	var f Fault
	for _, f = range s.faults {
		if r < s.cfg.Faults[f] {
			break
		}
		r -= s.cfg.Faults[f]
	}
	switch f {
	case FaultCrash:
		up := s.upNodes()
		// Keep a majority up half of the time; otherwise anything goes.
		if len(up) == 0 || (len(up) <= len(s.nodes)/2+1 && s.rng.IntN(2) == 0) {
			return nil
		}
		sn := s.nodes[up[s.rng.IntN(len(up))]]
		st := sn.engine.Raft.Stats()
		head, _ := sn.db.Head()
		s.record("crash n%d: raft last log %s commit %s, state head %d at raft index %d", sn.id, st["last_log_index"], st["commit_index"], head.Number, head.RaftIndex)
		s.count(FaultCrash)
		s.countLeaderCrashForwarding(sn)
		s.powerCut(sn, s.crashRNG())
	case FaultRestart:
		var down []int
		for _, sn := range s.nodes {
			if !sn.up {
				down = append(down, sn.id)
			}
		}
		if len(down) == 0 {
			return nil
		}
		return s.restart(s.nodes[down[s.rng.IntN(len(down))]])
	case FaultPartition:
		perm := s.rng.Perm(len(s.nodes))
		k := 1 + s.rng.IntN(len(s.nodes)-1)
		a, b := perm[:k], perm[k:]
		slices.Sort(a)
		slices.Sort(b)
		s.net.setCut(a, b, true)
		s.count(FaultPartition)
		s.record("partition %v | %v", a, b)
	case FaultHeal:
		s.net.healAll()
		s.count(FaultHeal)
		s.record("heal")
	case FaultDiskError, FaultRaftDiskError:
		s.diskError(f)
	case FaultSlowDisk:
		s.slowDisk()
	case FaultMetaDiskError:
		return s.metaDiskError()
	case FaultRaftDirLost:
		return s.raftDirLost()
	case FaultDataDirLost:
		return s.dataDirLost()
	case FaultTableDiskError:
		s.tableDiskError()
	case FaultReadError:
		return s.readError()
	case FaultOptionsDiskError:
		return s.optionsDiskError()
	case FaultDirSyncError:
		return s.dirSyncError()
	case FaultDataDirSyncError:
		return s.dataDirSyncError()
	case FaultStoreParentSyncError:
		return s.storeParentSyncError()
	case FaultSlowManifest:
		s.slowManifest()
	case FaultDiskStall:
		s.diskStall()
	case FaultRaftReadError:
		return s.raftReadError()
	case FaultAddValidator, FaultRemoveValidator:
		// Counted once in force (governance.progress).
		s.gov.propose(f == FaultAddValidator)
	case FaultChurn:
		l := s.leader()
		if l == nil {
			return nil
		}
		s.count(FaultChurn)
		s.record("churn n%d", l.id)
		// Nobody waits for the transfer's future: it resolves once the
		// RPCs ran, which the scheduler delivers later, and never if the
		// leader stops first, when a goroutine waiting on it would be
		// left blocked at the end of the run (synctest's "blocked
		// goroutines remain" panic). Its error channel is buffered, so
		// raft's answer never blocks on a missing reader.
		l.engine.Raft.LeadershipTransfer()
	}
	return nil
}

func (s *Sim) restart(sn *simNode) error {
	fresh := !sn.lostAt.IsZero()
	if fresh {
		if !s.freshSafe(sn) {
			return nil // its operator waits (raftDirLost)
		}
		sn.freshRaft = true
	}
	s.record("restart n%d", sn.id)
	s.count(FaultRestart)
	if err := sn.start(s.net); err != nil {
		var died *diedError
		if errors.As(err, &died) {
			s.res.DiskDeaths++
			s.record("n%d did not start: %v; its disk is replaced", sn.id, err)
			return nil
		}
		if sn.diskFailing() && errors.Is(err, errorfs.ErrInjected) {
			// Its failing disk failed the start with an error, as it
			// should: the operator replaces the disk.
			s.res.DiskRefusals++
			s.record("n%d did not start on its failing disk: %v; its disk is replaced", sn.id, err)
			// A failed read of the Raft log once Raft's stores opened
			// halts the node as it fails the start: the operator clears
			// that halt with the disk replaced.
			sn.clearHalt = sn.clearHalt || sn.raftReadErr.Load()
			sn.repairDisk()
			return nil
		}
		if errors.Is(err, consensus.ErrRaftStateLost) && sn.endedGated && !fresh {
			// A fresh member ended before it caught up, on a disk that
			// never made its Raft directory durable (a stall: seed 362 of
			// {add-validator 2, remove-validator 2, datadir-lost 2,
			// raft-dir-lost 1, slow-disk 2, partition 2, heal 2, crash 2,
			// restart 3, disk-stall 1}): the service manager's restart,
			// without --raft-fresh, is refused as its first one was, and
			// its operator starts it fresh again once that is safe. It
			// granted no vote, so nothing it forgot was a vote.
			s.refusedLostRaft(sn, "n%d refused to start again after a fresh start that had not caught up: %v", err)
			return nil
		}
		if errors.Is(err, consensus.ErrPeersSilent) {
			// On an empty Raft directory and a state at genesis (a node
			// never added), too few of the current voters answered
			// within raft.peer-check-timeout (datadir.go): it stays down,
			// as its operator's start gave up, and is restarted later.
			s.record("n%d did not start: %v", sn.id, err)
			return nil
		}
		return fmt.Errorf("restart: %w", err)
	}
	s.inv.restarted(sn)
	last := raftLastIndex(sn.engine.Raft)
	head, _ := sn.db.Head()
	s.record("restarted n%d: raft last log %d, state head %d at raft index %d", sn.id, last, head.Number, head.RaftIndex)
	if fresh {
		s.res.FreshStarts++
		return nil // an empty Raft log: the leader sends it
	}
	if !sn.engine.Voting() {
		// A fresh member that ended before it caught up (its record
		// keeps the vote gate closed across starts: consensus.voteGate)
		// still holds only what the leader sent it since its fresh start,
		// not the log its state applied before the loss (seed 305: its
		// disk stalled, the watch ended it, and it started again).
		return nil
	}
	return durableLog(sn.id, last, head.RaftIndex, sn.restoredTo.Load())
}

func (s *Sim) upNodes() []int {
	var out []int
	for _, sn := range s.nodes {
		if sn.up {
			out = append(out, sn.id)
		}
	}
	return out
}

// leader returns an up node that believes it leads (the one of the
// highest term should two believe it), or nil.
func (s *Sim) leader() *simNode {
	var best *simNode
	var bestTerm uint64
	for _, sn := range s.nodes {
		if !sn.up || !sn.engine.IsLeader() {
			continue
		}
		term := currentTerm(sn.engine.Raft)
		if best == nil || term > bestTerm {
			best, bestTerm = sn, term
		}
	}
	return best
}

func currentTerm(r *raft.Raft) uint64 {
	var t uint64
	fmt.Sscan(r.Stats()["term"], &t)
	return t
}

// close stops every node and the network; every goroutine of the bubble
// must end for synctest.Test to return.
func (s *Sim) close() error {
	var errs []error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, sn := range s.nodes {
			if err := sn.stop(s.net); err != nil && !errors.Is(err, raft.ErrRaftShutdown) {
				errs = append(errs, fmt.Errorf("stop n%d: %w", sn.id, err))
			}
		}
	}()
	// Shutting down sends RPCs (a leader's last appends): keep failing
	// them until every node has stopped.
	for {
		select {
		case <-done:
			s.net.shutdown()
			return errors.Join(errs...)
		default:
		}
		synctest.Wait()
		for _, m := range s.net.ready(time.Now().Add(time.Hour)) {
			s.net.drop(m)
		}
		for s.net.failReset() {
		}
		select {
		case <-done:
		case <-time.After(time.Millisecond):
		}
	}
}

// dumpNodes records each up node's Raft and applied state (on a failure).
func (s *Sim) dumpNodes() {
	for _, sn := range s.nodes {
		if sn.up {
			st := sn.engine.Raft.Stats()
			head, _ := sn.db.Head()
			s.record("state n%d: %s term %s last log %s/%s commit %s applied %s; head %d raft index %d", sn.id, st["state"], st["term"], st["last_log_index"], st["last_log_term"], st["commit_index"], st["applied_index"], head.Number, head.RaftIndex)
		}
	}
}

// String summarises a result on one line.
func (r *Result) String() string {
	return fmt.Sprintf("%d steps, %s simulated, height %d, %d txs, %d certificates, %d messages, %d checks, %d attacks refused, %d snapshots (%d installed), %d journal rewrites, faults %v, %d slow syncs (%d of sstables, %s), %d directory syncs failed (%d of a data directory's parent), %d MANIFEST syncs slowed (%s; %d blocks meanwhile, longest wait %s), %d disk halts, %d disk deaths (%d stalls, %d leads moved, %d starts on a stalled disk, %d recoveries (%d started on it)), %d starts failed on a failing disk, %d starts refused on a lost Raft dir, %d on a lost data dir (%d of added validators, %d after waiting for peers), %d fresh starts, trace %x",
		r.Steps, r.SimTime.Round(time.Millisecond), r.Height, r.Txs, r.Certs, r.Delivered, r.Checks, r.Refused, r.Snapshots, r.Installs, r.JournalRewrites, r.Faults, r.SlowSyncs, r.SlowTableSyncs, r.DiskStall.Round(time.Millisecond), r.DirSyncsFailed, r.ParentSyncsFailed, r.ManifestSyncs, r.ManifestStall.Round(time.Millisecond), r.ManifestBlocks, r.ManifestMaxGap.Round(time.Millisecond), r.DiskHalts, r.DiskDeaths, r.DiskStalls, r.StalledLeadsMoved, r.StalledStarts, r.StallRecoveries, r.StallRecoveriesStalled, r.DiskRefusals, r.RaftLostRefused, r.DataDirLostRefused+r.DataDirLostWaited, r.DataDirLostAdded, r.DataDirLostWaited, r.FreshStarts, r.TraceHash[:8])
}

func itoa(n int) string { return strconv.Itoa(n) }
