//go:debug randseednop=0

package sim

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// configFlags are TestSim's flags that make a run's Config besides
// -seed and -steps, as the replay command of a failed run
// (replayCommand) writes them.
type configFlags struct {
	faults         *string
	nodes, standby *int
}

// defineConfigFlags defines the flags of a run's Config on fs.
func defineConfigFlags(fs *flag.FlagSet) (seed *uint64, steps *int, cf configFlags) {
	seed = fs.Uint64("seed", 0, "replay only this seed (0: run -seeds seeds from -first)")
	steps = fs.Int("steps", 2000, "scheduler steps per seed")
	cf.faults = fs.String("faults", "", "the runs' fault weights: kind:weight pairs joined by commas, or none (sim.FormatFaults; empty: DefaultFaults)")
	cf.nodes = fs.Int("nodes", 0, "genesis validators (0: 3)")
	cf.standby = fs.Int("standby", 0, "standby nodes (0: 1 if the faults add validators)")
	return seed, steps, cf
}

// config is the Config of a run of seed with steps scheduler steps and
// cf's flags.
func (cf configFlags) config(seed uint64, steps int) (Config, error) {
	cfg := Config{Seed: seed, Steps: steps, Nodes: *cf.nodes, Standby: *cf.standby}
	if *cf.faults != "" {
		var err error
		if cfg.Faults, err = ParseFaults(*cf.faults); err != nil {
			return Config{}, fmt.Errorf("-faults: %w", err)
		}
	}
	if cfg.Nodes < 0 || cfg.Standby < 0 {
		return Config{}, fmt.Errorf("-nodes=%d -standby=%d: a count of nodes is not negative", cfg.Nodes, cfg.Standby)
	}
	return cfg, nil
}

// args are cf's flags as set, for a replay process of the test binary.
func (cf configFlags) args() []string {
	var out []string
	if *cf.faults != "" {
		out = append(out, "-faults="+*cf.faults)
	}
	if *cf.nodes != 0 {
		out = append(out, fmt.Sprintf("-nodes=%d", *cf.nodes))
	}
	if *cf.standby != 0 {
		out = append(out, fmt.Sprintf("-standby=%d", *cf.standby))
	}
	return out
}

var seedFlag, stepsFlag, cfgFlags = defineConfigFlags(flag.CommandLine)

var (
	firstFlag = flag.Uint64("first", 1, "the first seed TestSim runs")
	seedsFlag = flag.Int("seeds", 200, "how many seeds TestSim runs")
	reproFlag = flag.Int("repro", 20, "how many of the seeds TestSim runs twice more, each time in a replay process of its own, to check that they replay")
	reproMin  = flag.Float64("repromin", 0.3, "the share of the -repro seeds that must replay exactly, or TestSim fails")
	traceFlag = flag.Bool("simtrace", false, "print every scheduler event and the nodes' warnings")
	stallFlag = flag.Duration("stall", 5*time.Minute, "real time without a scheduler step after which TestSim fails as deadlocked (watchdog.go)")
)

// TestSim runs the simulator over many seeds (or replays the one of
// -seed) and fails on the first broken invariant, printing how to replay
// it; then it shows that each fault kind is injected and measures how
// often a seed replays exactly.
//
// Everything runs in one synctest bubble: Pebble keeps objects holding
// channels in process-wide sync.Pools, and a channel made in one bubble
// must never be used in another (the runtime aborts), so every simulated
// run of this test binary shares the bubble.
func TestSim(t *testing.T) {
	if _, err := cfgFlags.config(*seedFlag, *stepsFlag); err != nil {
		t.Fatal(err)
	}
	if *seedFlag != 0 && !inReplayProcess() {
		// A seed replays in a process of its own (rtseed_test.go).
		replayInOwnProcess(t)
		return
	}
	// One P: goroutines woken at the same simulated instant then run one
	// at a time, which makes most seeds replay exactly (docs/architecture.md).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	stop := make(chan struct{})
	go Watchdog(*stallFlag, stop)
	synctest.Test(t, func(t *testing.T) {
		if *seedFlag != 0 {
			cfg, err := cfgFlags.config(*seedFlag, *stepsFlag)
			if err != nil {
				t.Fatal(err)
			}
			var trace bytes.Buffer
			if *replayOut != "" {
				cfg.Trace = &trace
			}
			res := runOne(t, cfg)
			t.Logf("seed %d: %s", res.Seed, res)
			if *replayOut != "" {
				if err := writeReplay(*replayOut, res, &trace); err != nil {
					t.Fatal(err)
				}
			}
			return
		}
		slowDiskTakesSimulatedTime(t)
		slowFollowerFallsBehind(t)
		snapshotOnSlowDisk(t)
		raftLogFlushOnStalledDisk(t)
		callsEnterInOrder(t)
		dataDirLostPaths(t)
		gatedStandbyDoesNotBlockLoss(t)
		for _, r := range regressionSeeds {
			res := runOne(t, Config{Seed: r.seed, Steps: r.steps, Faults: r.faults})
			t.Logf("regression seed %d (%s): %s", r.seed, r.found, res)
		}
		var sum summary
		for seed := *firstFlag; seed < *firstFlag+uint64(*seedsFlag); seed++ {
			cfg, err := cfgFlags.config(seed, *stepsFlag)
			if err != nil {
				t.Fatal(err)
			}
			res := runOne(t, cfg)
			sum.add(res)
			if testing.Verbose() {
				t.Logf("seed %d: %s", seed, res)
			}
		}
		t.Logf("%d seeds: %s", *seedsFlag, &sum)
		if *seedsFlag > 0 && sum.certs == 0 {
			t.Error("no block carried a commit certificate: the vote collection did not run")
		}
		faultKinds(t, sum.faults)
		snapshotKinds(t)
	})
	// The replay processes run outside the bubble, with their own
	// watchdogs: this process makes no step meanwhile.
	close(stop)
	if *seedFlag == 0 && !t.Failed() {
		reproducibility(t)
	}
}

func runOne(t *testing.T, cfg Config) *Result {
	t.Helper()
	if *traceFlag {
		cfg.Log = os.Stderr
		if cfg.Trace != nil {
			cfg.Trace = io.MultiWriter(cfg.Trace, os.Stderr)
		} else {
			cfg.Trace = os.Stderr
		}
	}
	res, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// faultsBeforeTables are DefaultFaults before the sstable, read and
// OPTIONS faults joined them: the seeds pinned with the default weights
// until then keep the paths they were pinned for.
var faultsBeforeTables = map[Fault]int{
	FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1,
	FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1, FaultMetaDiskError: 1,
	FaultRaftDirLost: 1,
}

// regressionSeeds are seeds that found a bug, kept with the steps they
// ran and the fault weights of the time (faultsBeforeTables for those
// found with the defaults then), so that a new fault kind does not send
// them down another path; each fix also has its own unit test, since a seed may take
// another path once the code changes (or by residual nondeterminism).
var regressionSeeds = []struct {
	seed   uint64
	steps  int
	faults map[Fault]int
	found  string
}{
	{5, 3000, faultsBeforeTables, "builder spun proposing during a leadership transfer, so simulated time never passed (consensus.TestBuilderWaitsWhileRaftRefuses); later, with forwarding simulated, a re-send acknowledged as \"already known\" by the leader's copy alone after the node first reached crashed (node.TestAlreadyKnownMeansHeldByTwo)"},
	{2, 3000, faultsBeforeTables, "Raft directory lost in a crash after the first start: two blocks at one height (consensus.TestRaftStateSurvivesCrashAfterFirstStart)"},
	{12, 3000, faultsBeforeTables, "the same, found as a restarted node whose Raft log ended below its applied index"},
	{13, 3000, faultsBeforeTables, "the same, as two blocks at height 22"},
	{22, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultSlowDisk: 2},
		"a leader elected again while its own leadership transfer was timing out failed its Barrier and never built: no block for 30 s (consensus.TestAwaitBarrierRetriesWhileLeading)"},
	{1, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1},
		"a follower's forward, admitted by its own forwarder once it had become the leader, was acknowledged while it alone held the transaction (node.TestForwardAdmittedHereIsReplicated)"},
	{7, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1},
		"a removed validator, its view of the leader stale, forwarded to a follower, which admitted and acknowledged the transaction and never passed it on: never included (node.TestFollowerRefusesForwards)"},
	{101, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1},
		"a re-send forwarded by a node that had become the leader, cut off, met its own pool's copy: \"already known\" acknowledged with no other holder (node.TestAlreadyKnownMeansHeldByTwo, forwarded to itself)"},
	{102, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultSlowDisk: 2},
		"with a slow disk the leader re-proposed on a stale head; its proposal replaced at its height kept a mint in flight for ever (consensus.TestBuilderReturnsTxsOfReplacedProposal)"},
	{9, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2},
		"an installed snapshot whose restore failed (disk error) was taken as applied after a restart: the state stayed behind it and the node halted (consensus.TestCatchUpSnapshotInstallCutShort)"},
	{109, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2},
		"a disk error while taking a snapshot: Pebble panicked in raft's snapshot goroutine and ended the process (consensus.TestPersistOnFailingDiskHalts)"},
	{157, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2},
		"a snapshot behind the node's state was installed: the node went back from height 20 to 16 (consensus.TestRestoreKeepsStateAheadOfSnapshot)"},
	{123, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1},
		"a leader of term 2, cut off with two uncommitted blocks, applied them as committed when the next leader's first request checked an earlier entry with commit index 50: hashicorp/raft's follower commits up to its own last index (consensus.TestFollowerAppliesOnlyTheLeadersEntries)"},
	{18, 3000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1, FaultMetaDiskError: 1, FaultRaftDirLost: 1},
		"a validator removed whose log trailed its removal forwarded a transfer, kept its copy and acknowledged it as the second holder: only the leader, a validator, held it (node.TestForwardFromNonVoterIsReplicated; seed 12 found it first)"},
	{9, 3000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1, FaultMetaDiskError: 1, FaultRaftDirLost: 1},
		"a replay sent to a follower behind the leader, which had applied it, was answered admitted: the leader said \"already known\" for applied and pooled alike, and the forwarder reads a retried forward's \"already known\" as admitted (seed 103: the follower pooled it again; node.TestForwardOfAppliedTx)"},
	{284, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1, FaultMetaDiskError: 1, FaultRaftDirLost: 1, FaultTableDiskError: 1, FaultReadError: 1, FaultOptionsDiskError: 1},
		"a follower whose disk failed a read forwarded a transfer, could not keep its own copy (its pool's read failed) and acknowledged it: only the leader held it, having counted the follower as the second holder (node.forwardedCopy: copyNotReplicated; node.TestUnkeptCopyOfForward)"},
	{390, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1, FaultMetaDiskError: 1, FaultRaftDirLost: 1, FaultTableDiskError: 1, FaultReadError: 1, FaultOptionsDiskError: 1},
		"the same, once such a copy was replicated instead: the leader's own answer counted as the other validator's (node.forwardedCopy: copyNotReplicated answers the client that no second validator holds it; node.TestUnkeptCopyOfForward)"},
	{434, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1, FaultMetaDiskError: 1, FaultRaftDirLost: 1, FaultTableDiskError: 1, FaultReadError: 1, FaultOptionsDiskError: 1},
		"a follower passed on the leader's failed disk read as a refusal of an honest transaction (-32000 \"state storage failed\"): no verdict, answered -32603 as the node's own (node.fromLeader; node.TestLeaderStorageFailureIs32603)"},
	{369, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1, FaultMetaDiskError: 1, FaultRaftDirLost: 1, FaultTableDiskError: 1, FaultReadError: 1, FaultOptionsDiskError: 1, FaultDataDirLost: 1},
		"the conflict attacker drew the pending transfer's own recipient and amount: with deterministic signing that is the pending transaction itself, rightly answered \"already known\" by the one node still holding it, and taken for a conflicting transaction refused but pooled (attacker.conflict now sends another amount; a simulator fault, not the node's)"},
	{83, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1, FaultMetaDiskError: 1, FaultRaftDirLost: 1, FaultTableDiskError: 1, FaultReadError: 1, FaultOptionsDiskError: 1, FaultDataDirLost: 1, FaultDirSyncError: 1, FaultSlowManifest: 1},
		"a batch's twin (a second transfer for one element's nonce) drew that element's recipient and amount: the element itself, acknowledged twice, and taken for two transactions of one nonce acknowledged (attacker.conflicting, shared with the conflict attacker of seed 369, sends one unit more; TestConflictingIsAnotherTransaction; a simulator fault, not the node's)"},
	{105, 2000, map[Fault]int{FaultDataDirSyncError: 1, FaultRestart: 1},
		"a data directory made before the node's first start (systemd's StateDirectory=, a plain mkdir) was never synced into its parent: durable.MkdirAll synced only the parents of the directories it made itself, and Pebble only the data directory; a power cut took the whole directory away, and the node, rightly refused as a lost data directory, had lost its votes and log (durable.TestMkdirAllAfterFailedSync: every start syncs every ancestor; seeds 101-109 with the datadir-sync-error fault, 8 of 12 failed)"},
	{288, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1, FaultMetaDiskError: 1, FaultRaftDirLost: 1, FaultTableDiskError: 1, FaultReadError: 1, FaultOptionsDiskError: 1, FaultDataDirLost: 1, FaultDirSyncError: 1, FaultSlowManifest: 1, FaultDataDirSyncError: 1},
		"a fresh member (n2, back with --raft-fresh after its data directory was lost) voted with an empty log and no configuration, as hashicorp/raft v1.8.0 lets it, for n1, whose log ended before block 9, which n2 had committed with n0's acknowledgement: n1 led and n0 took its entries over block 9 (consensus.voteGate: a fresh member votes once it caught up; consensus.TestFreshMemberVotesOnceCaughtUp)"},
	{482, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1, FaultMetaDiskError: 1, FaultRaftDirLost: 1, FaultTableDiskError: 1, FaultReadError: 1, FaultOptionsDiskError: 1, FaultDataDirLost: 1, FaultDirSyncError: 1, FaultSlowManifest: 1, FaultDataDirSyncError: 1, FaultRaftReadError: 1},
		"the bubble deadlocked: raft's observer wrote a candidate's record to the Raft store inside raft's observer lock, the write failed (raft-disk-error) into a halt whose state write waited on a slow sync, and a goroutine deregistering another observer waited on that lock, not durably blocked, so the clock never moved (consensus.knownMembers.record writes outside raft's goroutine)"},
	{7, 2000, map[Fault]int{FaultAddValidator: 3, FaultDataDirLost: 1, FaultRestart: 1, FaultPartition: 3, FaultHeal: 1},
		"no leader for good with three of four voters connected: the leader n0 promoted n3 while n1 was cut off and lost its data directory (its fresh restart grants no vote); n1, its configuration stale, refused n3 as a non-voter (hashicorp/raft v1.8.0, raft.go:1703, 1807), and n2 and n3 refused each other's rivals by the log (consensus.promotionVotes: a non-voter's candidacy is judged as standard Raft judges it; consensus.TestPromotedVoterElected)"},
	{684, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1, FaultMetaDiskError: 1, FaultRaftDirLost: 1, FaultTableDiskError: 1, FaultReadError: 1, FaultOptionsDiskError: 1, FaultDataDirLost: 1, FaultDirSyncError: 1, FaultSlowManifest: 1, FaultDataDirSyncError: 1, FaultRaftReadError: 1, FaultStoreParentSyncError: 1, FaultDiskStall: 1},
		"the bubble deadlocked (make sim SEEDS=1000 at 5a856aa): the raft-read-error fault flushed a node's Raft log while its disk stalled; the rotation waited for the stalled sync of the old write-ahead log under Pebble's commit mutex, and the store's stall probe waited on that mutex, not durably blocked, so the clock never reached the stall's end nor the node's stall watch (a simulator fault: the fault no longer flushes a stalled disk, as fillMemtable already did not)"},
	{305, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1, FaultMetaDiskError: 1, FaultRaftDirLost: 1, FaultTableDiskError: 1, FaultReadError: 1, FaultOptionsDiskError: 1, FaultDataDirLost: 1, FaultDirSyncError: 1, FaultSlowManifest: 1, FaultDataDirSyncError: 1, FaultRaftReadError: 1, FaultStoreParentSyncError: 1, FaultDiskStall: 1},
		"durable-log taken for a lost log (make sim SEEDS=1000 at 113ef12): n0 lost its Raft directory while its disk stalled, started as a fresh member, was ended by its stall watch before it caught up, and started again with the empty log a fresh member has; the check exempted only the fresh start itself (a simulator fault: a member whose vote gate is still closed is exempt)"},
	{278, 2000, map[Fault]int{FaultAddValidator: 3, FaultDataDirLost: 1, FaultRestart: 1, FaultPartition: 3, FaultHeal: 1},
		"seed 7's deadlock with the stale voter cut off before the promoted node was even added: its configuration had no n3, and hashicorp/raft refused n3 as outside the configuration (consensus.promotionVotes judges any candidate that is no voter by terms and logs; TestPromotedVoterElected, d unknown to c; seeds 351 and 1364 too)"},
	{839, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1, FaultMetaDiskError: 1, FaultRaftDirLost: 1, FaultTableDiskError: 1, FaultReadError: 1, FaultOptionsDiskError: 1, FaultDataDirLost: 1, FaultDirSyncError: 1, FaultSlowManifest: 1, FaultDataDirSyncError: 1, FaultRaftReadError: 1, FaultStoreParentSyncError: 1, FaultDiskStall: 1},
		"no block for 30 s (make sim SEEDS=1000 at ebe0d44): n3, being added, installed a snapshot ending at 16, stored 17 and lost its answer; hashicorp/raft's follower rejected the retransmit (previous entry 16, inside its snapshot, raft.go:1498-1507), the leader sent the snapshot again, and so on without pause, while n3's promotion was appended and n2, a fresh member on a disk still stalled, granted no vote (consensus.skipHeldEntries; TestFollowerAcceptsRetransmitAfterInstalledSnapshot, by the seed839 helper)"},
	{387, 2000, map[Fault]int{FaultCrash: 3, FaultRestart: 6, FaultPartition: 2, FaultHeal: 4, FaultChurn: 2, FaultDiskError: 1, FaultAddValidator: 2, FaultRemoveValidator: 2, FaultSlowDisk: 2, FaultRaftDiskError: 1},
		"the bubble deadlocked in settle: a node installing the leader's snapshot (store.DB.ReplaceWith) waited on the state database's sync.RWMutex, held by its own snapshot's checkpoint across a WAL sync on a slow disk; a goroutine waiting on a mutex is not durably blocked, so the clock never reached the sync's end (store.TestSwapLockWaitsDurably, snapshotOnSlowDisk)"},
	{651, 2000, map[Fault]int{FaultAddValidator: 3, FaultDataDirLost: 1, FaultRestart: 1, FaultPartition: 3, FaultHeal: 1},
		"acked-held failed with no fault of the node's (campaign helper, membership weights): the leader n0 replicated n3's forwarded mint to n1 and answered; the network held the answer 21 ms, n1 lost its data directory meanwhile, and n3 acknowledged with n0 alone holding it. A holder lost after the confirming answer was produced is the one failure the promise covers: the check counts the validators that held it then and were lost since (checkHeld, TestAckedHeldCountsHoldersAtConfirmation)"},
	{69, 2000, map[Fault]int{FaultSlowDisk: 3, FaultDataDirLost: 2, FaultRaftDirLost: 1, FaultCrash: 2, FaultRestart: 3},
		"acked-held failed with no fault of the node's (make sim SEEDS=400 FAULTS=slow-disk:3,datadir-lost:2,raft-dir-lost:1,crash:2,restart:3, eleventh session): the leader n1 answered n0's forward holding the transaction alone, as the leader does for a forwarding validator, whose own copy, kept once the answer arrives, is the second holder; n1 lost its data directory and n0 acknowledged holding it alone. The check counts the holders at the acknowledgement with those of the answer lost since (ackedHeld)"},
	{362, 2000, map[Fault]int{FaultAddValidator: 2, FaultRemoveValidator: 2, FaultDataDirLost: 2, FaultRaftDirLost: 1, FaultSlowDisk: 2, FaultPartition: 2, FaultHeal: 2, FaultCrash: 2, FaultRestart: 3, FaultDiskStall: 1},
		"restart refused as raft state lost (eleventh session's campaign): n0, its Raft directory lost while its disk stalled, started fresh; the stall ended its process before anything in raft/ reached the disk, and the service manager's restart without --raft-fresh was refused as the first one was, rightly (a simulator fault: its operator starts it fresh again, Sim.restart; docs/cluster.md)"},
}

// faultSeeds pins, for each fault kind, a seed and a weighting that
// inject it: every kind is shown to be exercised, with the invariants
// checked after every step as in any run.
var faultSeeds = []struct {
	fault  Fault
	seed   uint64
	faults map[Fault]int
}{
	{FaultDrop, 101, faultsBeforeTables},
	{FaultDelay, 102, faultsBeforeTables},
	{FaultReorder, 103, faultsBeforeTables},
	{FaultCrash, 115, map[Fault]int{FaultCrash: 5, FaultRestart: 5}},
	{FaultRestart, 115, map[Fault]int{FaultCrash: 5, FaultRestart: 5}},
	{FaultPartition, 106, map[Fault]int{FaultPartition: 5, FaultHeal: 3}},
	{FaultHeal, 107, map[Fault]int{FaultPartition: 5, FaultHeal: 3}},
	{FaultChurn, 108, map[Fault]int{FaultChurn: 1}},
	{FaultDiskError, 114, map[Fault]int{FaultDiskError: 1, FaultRestart: 1}},
	{FaultAddValidator, 115, map[Fault]int{FaultAddValidator: 1, FaultRemoveValidator: 1}},
	{FaultRemoveValidator, 118, map[Fault]int{FaultAddValidator: 1, FaultRemoveValidator: 1}},
	{FaultRemoveLeader, 122, map[Fault]int{FaultAddValidator: 1, FaultRemoveValidator: 1}},
	{FaultSlowDisk, 119, map[Fault]int{FaultSlowDisk: 1}},
	{FaultRaftDiskError, 121, map[Fault]int{FaultRaftDiskError: 1, FaultRestart: 1}},
	{FaultMetaDiskError, 122, map[Fault]int{FaultMetaDiskError: 1, FaultRestart: 1}},
	{FaultRaftDirLost, 123, map[Fault]int{FaultRaftDirLost: 1, FaultRestart: 1}},
	{FaultDataDirLost, 123, map[Fault]int{FaultDataDirLost: 1, FaultRestart: 1}},
	// Whether the failing flush is retried 8 times in a row before the
	// node stops or is restarted depends on the path: two seeds (each
	// halted a node in 4 of 4 runs on an idle machine), one must.
	{FaultTableDiskError, 101, map[Fault]int{FaultTableDiskError: 1, FaultRestart: 1}},
	{FaultTableDiskError, 105, map[Fault]int{FaultTableDiskError: 1, FaultRestart: 1}},
	{FaultReadError, 101, map[Fault]int{FaultReadError: 1, FaultRestart: 1}},
	{FaultOptionsDiskError, 101, map[Fault]int{FaultOptionsDiskError: 1, FaultRestart: 1}},
	{FaultDirSyncError, 108, map[Fault]int{FaultDirSyncError: 1, FaultRestart: 1}},
	{FaultSlowManifest, 101, map[Fault]int{FaultSlowManifest: 1}},
	{FaultDataDirSyncError, 101, map[Fault]int{FaultDataDirSyncError: 1, FaultRestart: 1}},
	// n2's snapshot install halts on its Raft directory's sync, n0's
	// start fails on it (3 of 3 runs).
	{FaultStoreParentSyncError, 107, map[Fault]int{FaultStoreParentSyncError: 1, FaultRestart: 1}},
	// A node halts on its Raft log's failed read, or on its compactions
	// failing them (seeds 103 and 108: 3 halts each in 3000 steps).
	{FaultRaftReadError, 103, map[Fault]int{FaultRaftReadError: 1, FaultRestart: 1}},
	{FaultRaftReadError, 108, map[Fault]int{FaultRaftReadError: 1, FaultRestart: 1}},
	// The leader's disk stalls (its Raft log's syncs in seed 101, its
	// state database's in 102): before store.max-sync-duration, both
	// broke liveness, the stalled leader holding its lead for minutes
	// ("a quorum has been connected for 30s without a new block").
	{FaultDiskStall, 101, map[Fault]int{FaultDiskStall: 1, FaultRestart: 1}},
	{FaultDiskStall, 102, map[Fault]int{FaultDiskStall: 1, FaultRestart: 1}},
	// The leader n0's state database and Raft log stall: its watch
	// ends it at 22 s, its service manager starts it again at 27 s on
	// the disk that still stalls, the watch ends that start at 49 s, the
	// stall ends, and the start at 54 s catches up (seeds 101 and 102
	// come back on an instance started while the disk still stalled,
	// which outlives the stall).
	{FaultDiskStall, 108, map[Fault]int{FaultDiskStall: 1, FaultRestart: 1}},
	{FaultForwardDrop, 109, faultsBeforeTables},
	{FaultForwardDup, 101, faultsBeforeTables},
	// Whether a client's forward is in flight when the leader crashes
	// depends on the order of goroutines woken at one instant: seed 115
	// missed it once in a loaded run. Three seeds that inject it (in 3 of
	// 3 runs each on an idle machine); one of them must.
	{FaultLeaderCrashForwarding, 115, map[Fault]int{FaultCrash: 5, FaultRestart: 5}},
	{FaultLeaderCrashForwarding, 102, map[Fault]int{FaultCrash: 5, FaultRestart: 5}},
	{FaultLeaderCrashForwarding, 114, map[Fault]int{FaultCrash: 5, FaultRestart: 5}},
	{FaultMintAgain, 113, faultsBeforeTables},
	// The attackers (attack.go) and the batch clients (clients_batch.go).
	{FaultReplay, 103, faultsBeforeTables},
	{FaultMalformed, 103, faultsBeforeTables},
	{FaultOversized, 111, faultsBeforeTables},
	{FaultConflict, 111, faultsBeforeTables},
	{FaultWrongChain, 101, faultsBeforeTables},
	{FaultBadSignature, 101, faultsBeforeTables},
	// Rarer than the others: pinned to several seeds' runs, one of
	// which must inject it.
	{FaultTxType, 101, faultsBeforeTables},
	{FaultTxType, 102, faultsBeforeTables},
	{FaultTxType, 110, faultsBeforeTables},
	{FaultTxType, 113, faultsBeforeTables},
	{FaultBatch, 110, faultsBeforeTables},
	{FaultBatchFollower, 110, faultsBeforeTables},
	{FaultBatchConflict, 110, faultsBeforeTables},
	{FaultBatchDup, 102, faultsBeforeTables},
}

// faultSteps are the steps of the pinned seeds of fault kinds that take
// more than one fault event (a removal needs an addition first), so that
// the residual nondeterminism of a replay (docs/architecture.md) does not
// leave them out.
var faultSteps = map[Fault]int{FaultRemoveValidator: 6000, FaultRemoveLeader: 6000, FaultTableDiskError: 3000, FaultDirSyncError: 3000, FaultRaftReadError: 3000}

// faultKinds runs each pinned seed and asserts that its fault was
// injected and did what it is for (by one of its seeds, for a kind
// pinned to several), and that
// every kind the default weights or the seeds' runs (seen) inject has a
// pinned seed. Kinds pinned to one seed with the same weights share its
// run.
func faultKinds(t *testing.T, seen map[Fault]int) {
	pinned := map[Fault]bool{}
	for _, fs := range faultSeeds {
		pinned[fs.fault] = true
	}
	for _, f := range slices.Sorted(maps.Keys(seen)) {
		if !pinned[f] {
			t.Errorf("fault kind %s, injected by the seeds' runs, has no pinned seed in faultSeeds", f)
		}
	}
	for _, f := range slices.Sorted(maps.Keys(DefaultFaults)) {
		if !pinned[f] {
			t.Errorf("fault kind %s (DefaultFaults) has no pinned seed in faultSeeds", f)
		}
	}
	runs := map[string]*Result{}
	// A kind pinned to several seeds needs one of them to inject it and
	// to show what it is for.
	shown, missed := map[Fault]bool{}, map[Fault][]string{}
	defer func() {
		for _, f := range slices.Sorted(maps.Keys(missed)) {
			if !shown[f] {
				for _, m := range missed[f] {
					t.Error(m)
				}
			}
		}
	}()
	for _, fs := range faultSeeds {
		steps := *stepsFlag
		if n, ok := faultSteps[fs.fault]; ok {
			steps = n
		}
		key := fmt.Sprint(fs.seed, steps, fs.faults)
		res := runs[key]
		if res == nil {
			res = runOne(t, Config{Seed: fs.seed, Steps: steps, Faults: fs.faults})
			runs[key] = res
		}
		if res.Faults[fs.fault] == 0 {
			missed[fs.fault] = append(missed[fs.fault], fmt.Sprintf("seed %d (faults %v) injected no %s: %v", fs.seed, fs.faults, fs.fault, res.Faults))
			continue
		}
		var problem string
		switch fs.fault {
		case FaultDiskError, FaultRaftDiskError:
			if res.DiskHalts == 0 {
				problem = fmt.Sprintf("seed %d: %s injected but no node halted on it: %s", fs.seed, fs.fault, res)
			}
		case FaultTableDiskError:
			// The state database's flush failing 8 times in a row takes
			// 3.5 s of backed-off retries: the node halts.
			if res.DiskHalts == 0 {
				problem = fmt.Sprintf("seed %d: %s injected but no node halted on it: %s", fs.seed, fs.fault, res)
			}
		case FaultReadError:
			if res.DiskHalts+res.DiskRefusals == 0 {
				problem = fmt.Sprintf("seed %d: %s injected but no node halted on it or failed to start: %s", fs.seed, fs.fault, res)
			}
		case FaultRaftReadError:
			// The halt on a failed read, not only a start refused.
			if res.DiskHalts == 0 {
				problem = fmt.Sprintf("seed %d: %s injected but no node halted on it: %s", fs.seed, fs.fault, res)
			}
		case FaultMetaDiskError, FaultOptionsDiskError:
			if res.DiskDeaths == 0 {
				problem = fmt.Sprintf("seed %d: %s injected but no node's process ended on it: %s", fs.seed, fs.fault, res)
			}
		case FaultRaftDirLost:
			if res.RaftLostRefused == 0 || res.FreshStarts == 0 {
				problem = fmt.Sprintf("seed %d: %s injected but no start was refused on it and followed by a fresh start: %s", fs.seed, fs.fault, res)
			}
		case FaultDirSyncError:
			// A failed flush halts the node; a new write-ahead log, a
			// marker's move or an Open on the failing directory ends its
			// process or fails its start.
			if res.DirSyncsFailed == 0 || res.DiskHalts == 0 || res.DiskDeaths+res.DiskRefusals == 0 {
				problem = fmt.Sprintf("seed %d: %s injected but no directory sync failed, or no node halted on one, or none ended or failed to start on one: %s", fs.seed, fs.fault, res)
			}
		case FaultSlowManifest:
			// Pebble holds the MANIFEST's log lock, not its commit path:
			// the chain goes on while a sync is held back, no node halts.
			if res.ManifestSyncs == 0 || res.ManifestBlocks == 0 || res.DiskHalts != 0 {
				problem = fmt.Sprintf("seed %d: %s injected but no MANIFEST sync was held back, no block was made meanwhile, or a node halted: %s", fs.seed, fs.fault, res)
			}
		case FaultDataDirSyncError:
			// Every start syncs the data directory's entry: one on the
			// failing disk fails.
			if res.ParentSyncsFailed == 0 || res.DiskRefusals == 0 {
				problem = fmt.Sprintf("seed %d: %s injected but no sync of the data directory's parent failed, or no start failed on one: %s", fs.seed, fs.fault, res)
			}
		case FaultStoreParentSyncError:
			// Every start syncs both directories, every snapshot taken
			// or installed too: a start on the failing disk fails, a
			// snapshot halts the node.
			if res.DirSyncsFailed == 0 || res.DiskHalts == 0 || res.DiskDeaths+res.DiskRefusals == 0 {
				problem = fmt.Sprintf("seed %d: %s injected but no directory sync failed, or no node halted on one, or none ended or failed to start on one: %s", fs.seed, fs.fault, res)
			}
		case FaultDataDirLost:
			if res.DataDirLostRefused == 0 || res.FreshStarts == 0 {
				problem = fmt.Sprintf("seed %d: %s injected but no start was refused on it and followed by a fresh start: %s", fs.seed, fs.fault, res)
			}
		case FaultDiskStall:
			// The node's watch ends its process; the others elect a
			// leader, which goes on building. The disk stalls on: the
			// watch ends a start of the node on it too, and the node
			// comes back once it answers.
			if res.DiskStalls == 0 || res.StalledLeadsMoved == 0 || res.StalledStarts == 0 || res.StallRecoveries == 0 {
				problem = fmt.Sprintf("seed %d: %s injected but no stall was detected on a leader whose lead then moved, no start on the stalled disk was ended by the watch, or the node did not come back: %s", fs.seed, fs.fault, res)
			}
		case FaultSlowDisk:
			if res.SlowSyncs == 0 || res.SlowTableSyncs == 0 {
				problem = fmt.Sprintf("seed %d: %s injected but no sync of a write-ahead log and of an sstable was slowed: %s", fs.seed, fs.fault, res)
			}
		}
		if problem != "" {
			missed[fs.fault] = append(missed[fs.fault], problem)
			continue
		}
		shown[fs.fault] = true
	}
}

// reproducibility runs each of the first -repro seeds in two replay
// processes side by side (rtseed_test.go: what `make sim SEED=N` runs)
// and counts those whose two runs took exactly the same path (the same
// trace hash: every event and the canonical chain's hashes and roots);
// for each that did not it shows where the two runs parted. Some seeds
// still take another path now and then (docs/architecture.md, "How far a
// seed reproduces a run"); fewer than -repromin of them replaying means
// the runs depend on something the seed does not decide (the machine's
// clock, randomness not drawn from the seed), and fails. A seed failing
// in a replay process fails the test: it took a path the first run did
// not.
func reproducibility(t *testing.T) {
	n := min(*reproFlag, *seedsFlag)
	if n <= 0 {
		return
	}
	dir := t.TempDir()
	same := 0
	var unseeded error
	for seed := *firstFlag; seed < *firstFlag+uint64(n); seed++ {
		runs, why, err := replayTwice(dir, seed)
		if err != nil {
			t.Error(err)
			continue
		}
		if why != nil {
			unseeded = why
		}
		if runs[0].hash == runs[1].hash {
			same++
			continue
		}
		t.Logf("seed %d did not replay: %s", seed, firstDifference(runs[0].trace, runs[1].trace))
	}
	how := "with its runtime seed fixed"
	if unseeded != nil {
		how = fmt.Sprintf("without a fixed runtime seed (%v)", unseeded)
	}
	t.Logf("reproducibility: %d of %d seeds replayed with the same trace hash in two processes of their own, %s", same, n, how)
	if float64(same) < *reproMin*float64(n) {
		t.Errorf("only %d of %d seeds replayed exactly (at least %.0f%% must): a run depends on something its seed does not decide", same, n, 100**reproMin)
	}
}

// firstDifference says where two traces of one seed part.
func firstDifference(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < min(len(la), len(lb)); i++ {
		if la[i] != lb[i] {
			return fmt.Sprintf("event %d was %q, now %q", i+1, la[i], lb[i])
		}
	}
	if len(la) != len(lb) {
		return fmt.Sprintf("the same %d events, then %d against %d", min(len(la), len(lb)), len(la), len(lb))
	}
	return "the same events, a different chain at the end"
}

// summary adds up the results of many runs.
type summary struct {
	runs, steps, txs, delivered, checks, certs int
	snapshots, installs                        int
	blocks                                     uint64
	simTime                                    time.Duration
	faults                                     map[Fault]int
}

func (s *summary) add(r *Result) {
	if s.faults == nil {
		s.faults = map[Fault]int{}
	}
	s.runs++
	s.steps += r.Steps
	s.txs += r.Txs
	s.delivered += r.Delivered
	s.checks += r.Checks
	s.certs += r.Certs
	s.snapshots += r.Snapshots
	s.installs += r.Installs
	s.blocks += r.Height
	s.simTime += r.SimTime
	for f, n := range r.Faults {
		s.faults[f] += n
	}
}

func (s *summary) String() string {
	out := ""
	for _, f := range slices.Sorted(maps.Keys(s.faults)) {
		out += " " + string(f) + "=" + itoa(s.faults[f])
	}
	return "steps " + itoa(s.steps) + ", simulated " + s.simTime.Round(time.Second).String() + ", blocks " + itoa(int(s.blocks)) +
		", txs " + itoa(s.txs) + ", certificates " + itoa(s.certs) + ", messages " + itoa(s.delivered) + ", invariant checks " + itoa(s.checks) +
		", snapshots " + itoa(s.snapshots) + " (" + itoa(s.installs) + " installed), faults:" + out
}
