package e2e

// Validator set changes through governance on a running cluster of tallyd
// processes: Raft membership follows the chain (DESIGN.md decision 8).

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	tnode "github.com/tally-ledger/tally/node"
	"github.com/tally-ledger/tally/p2p"
	"github.com/tally-ledger/tally/wallet"
)

// addJoiningNode adds, in node slot slot, a node that is not in the
// genesis: node0's config with its own empty data dir (it generates its key
// on first start), its own ports, and the testnet's validators as its
// p2p.peers. It never bootstraps Raft: it waits to be added.
func (c *testCluster) addJoiningNode(slot int) int {
	c.t.Helper()
	dir := filepath.Join(c.dir, fmt.Sprintf("node%d", slot))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	cfg, err := tnode.LoadConfig(c.specs[0].Config)
	if err != nil {
		c.t.Fatal(err)
	}
	p2pPort := c.base + clusterP2POffset + slot
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.HTTP.Port = c.base + slot
	cfg.P2P.Listen = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p2pPort), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", p2pPort)}
	cfg.P2P.Peers = nil
	for _, s := range c.specs {
		cfg.P2P.Peers = append(cfg.P2P.Peers, s.P2P)
	}
	cfg.Admin.Port = c.base + clusterAdminOffset + slot
	cfg.Admin.TokenFile = filepath.Join(dir, "admin.token")
	spec := tnode.TestnetNode{
		Dir:       dir,
		Config:    filepath.Join(dir, "config.toml"),
		RPC:       fmt.Sprintf("http://127.0.0.1:%d", c.base+slot),
		Admin:     fmt.Sprintf("http://127.0.0.1:%d", c.base+clusterAdminOffset+slot),
		TokenFile: cfg.Admin.TokenFile,
	}
	writeNodeConfig(c.t, spec.Config, cfg)
	return c.addSpec(spec)
}

// governance sends a governance operation from key through node i and
// waits for its receipt (status 1) there.
func (c *testCluster) governance(ctx context.Context, i int, key *crypto.PrivateKey, method string, args ...any) *types.Receipt {
	c.t.Helper()
	op, err := wallet.GovernanceOp(method, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	tx, err := wallet.SignOp(key, c.chainID, c.nonceOf(ctx, i, key.Address()), op)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mustSend(ctx, i, []*types.Transaction{tx})
	return c.mustReceipts(ctx, []int{i}, []common.Hash{tx.Hash()}, 30*time.Second)[tx.Hash()]
}

// proposeAndApprove has member 0 propose (method, args) and member 1
// approve it; it returns the proposal id, the height of the approving block
// and the height the change takes effect at.
func (c *testCluster) proposeAndApprove(ctx context.Context, i int, members []*crypto.PrivateKey, method string, args ...any) (id, approvedAt, effective uint64) {
	c.t.Helper()
	r := c.governance(ctx, i, members[0], method, args...)
	proposed := chain.GovernanceABI.Events["Proposed"].ID
	for _, l := range r.Logs {
		if l.Address == chain.GovernanceAddress && len(l.Topics) > 1 && l.Topics[0] == proposed {
			id = l.Topics[1].Big().Uint64()
		}
	}
	if id == 0 {
		c.t.Fatalf("%s: no Proposed event in the receipt (%d logs)", method, len(r.Logs))
	}
	r = c.governance(ctx, i, members[1], "vote", new(big.Int).SetUint64(id), true)
	approved := chain.GovernanceABI.Events["Approved"]
	for _, l := range r.Logs {
		if l.Address == chain.GovernanceAddress && len(l.Topics) > 1 && l.Topics[0] == approved.ID {
			vals, err := approved.Inputs.NonIndexed().Unpack(l.Data)
			if err != nil {
				c.t.Fatal(err)
			}
			effective = vals[0].(uint64)
		}
	}
	if effective == 0 {
		c.t.Fatalf("vote on proposal %d: no Approved event", id)
	}
	return id, r.BlockNumber.Uint64(), effective
}

// suffrages is node i's view of the Raft configuration: peer ID → suffrage.
func (c *testCluster) suffrages(ctx context.Context, i int) (map[string]string, error) {
	var st tnode.RaftStatus
	if err := c.admin(ctx, i, &st, "admin_raftStatus"); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(st.Servers))
	for _, s := range st.Servers {
		out[s.ID] = s.Suffrage
	}
	return out, nil
}

// configSample is one look at a node: its applied height, then whether
// its Raft configuration listed a server.
type configSample struct {
	node   int
	height uint64
	listed bool
}

// watchConfig samples nodes every 20 ms until the returned function is
// called: height first, then whether id is in the node's Raft
// configuration. Once a node has applied a block it holds every earlier
// log entry, so a configuration change logged before that block shows in
// any later read of its configuration.
func (c *testCluster) watchConfig(ctx context.Context, nodes []int, id string) func() []configSample {
	stop := make(chan struct{})
	done := make(chan []configSample, 1)
	go func() {
		var out []configSample
		for {
			for _, i := range nodes {
				h, err := c.height(ctx, i)
				if err != nil {
					continue
				}
				var st tnode.RaftStatus
				if err := c.admin(ctx, i, &st, "admin_raftStatus"); err != nil {
					continue
				}
				listed := slices.ContainsFunc(st.Servers, func(s tnode.RaftServer) bool { return s.ID == id })
				out = append(out, configSample{node: i, height: h, listed: listed})
			}
			select {
			case <-stop:
				done <- out
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() []configSample {
		close(stop)
		return <-done
	}
}

// waitBlockBy waits until node i has a block at height from or later whose
// miner is a, and returns its height.
func (c *testCluster) waitBlockBy(ctx context.Context, i int, from uint64, a common.Address, timeout time.Duration) uint64 {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	next := from
	for {
		h := c.mustHeight(ctx, i)
		if h >= next {
			bs, err := c.blocks(ctx, i, next, h)
			if err != nil {
				c.t.Fatal(err)
			}
			for _, b := range bs {
				if b.Miner == a {
					return uint64(b.Number)
				}
			}
			next = h + 1
		}
		if time.Now().After(deadline) {
			c.fatal("node %d: no block by %s at heights %d..%d within %v", i, a, from, next-1, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var removedRe = regexp.MustCompile(`msg="membership: removed server from raft" peer_id=(\S+) .*?effective_height=(\d+) head=(\d+)`)

// TestGovernanceValidatorChanges: on a 3-validator cluster under a
// continuous transfer load,
//
//   - a fourth node started with an empty data dir, the same genesis, its
//     own key and the validators as its peers is refused until governance
//     (2 of the 3 members) approves proposeAddValidator with its public
//     key; the leader then adds it to Raft as a non-voter and promotes it
//     to voter once it has caught up;
//   - its vote is needed: the first leader (an original validator) is
//     SIGKILLed, leaving 3 of 4 voters; blocks go on being committed, the lead is
//     handed to the new validator (admin_transferLeadership) and it
//     proposes blocks that every node applies (miner = its address);
//   - the killed node restarts and catches up;
//   - governance removes the current leader: it leaves the Raft
//     configuration before the removal takes effect (no node that has
//     applied the block that applies the removal lists it; the leader that
//     removed it logged the removal at a lower height), it hands the lead
//     over, and no block at or after the effective height is its;
//   - every transfer a node acknowledged has a receipt with status 1 on
//     every member (the load goes to the two original validators that are
//     never killed), all members have identical blocks at every height, and
//     the removed node's chain is a prefix of theirs;
//   - a transfer included before the addition took effect and one after
//     the removal did each have a proof (`tally proof tx`) that `tally
//     verify-proof` accepts offline, following both validator changes, and
//     refuses once a signature is altered; `tally audit` passes by RPC and
//     on a `tally admin checkpoint` copy, and both audits agree on the
//     transactions, certificates and supply to the same height.
func TestGovernanceValidatorChanges(t *testing.T) {
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	testStart := time.Now()
	c := newTestCluster(t, 3, nil)
	d := c.addJoiningNode(3)
	all := []int{0, 1, 2, d}
	c.startAll()
	leader, took := c.waitLeader(ctx, allThree, "", 30*time.Second)
	t.Logf("leader: node %d (after %v)", leader, took.Round(time.Millisecond))

	// The new node's identity, from the key it generated.
	ni := c.mustInfo(ctx, d)
	pub, err := ethcrypto.DecompressPubkey(ni.PublicKey)
	if err != nil {
		t.Fatalf("node %d publicKey %x: %v", d, ni.PublicKey, err)
	}
	pid, err := p2p.PeerIDFromPublicKey(ni.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	dAddr := ethcrypto.PubkeyToAddress(*pub)
	if ni.ID != pid.String() || ni.Address != dAddr || ni.Role != "observer" {
		t.Fatalf("new node: id %s address %s role %q; its public key gives %s and %s; want role observer", ni.ID, ni.Address, ni.Role, pid, dAddr)
	}
	c.specs[d].PeerID = ni.ID
	c.specs[d].P2P = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", c.base+clusterP2POffset+d, ni.ID)

	// Continuous load on the two original validators that are never
	// killed (what only a killed leader had admitted may be lost, and with
	// it every later nonce of its sender): the first leader is the one the
	// test kills.
	victim := leader
	load := newCrashLoad(c, others(allThree, victim))
	recipients := randomAddrs(20)
	for _, k := range clusterDevKeys(t, 0, 6) {
		load.start(k, recipients)
	}
	stopLoad := sync.OnceFunc(func() { close(load.stop); load.wg.Wait() })
	defer stopLoad()

	// Not a validator, not approved: refused (its own side may see a
	// connection for the instant before the validator closes it), nothing
	// applied.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ni := c.mustInfo(ctx, d); ni.Height != 0 || ni.Leader != "" {
			t.Fatalf("new node before its approval: height %d, leader %q; want height 0, no leader", ni.Height, ni.Leader)
		}
		for _, v := range allThree {
			if vi := c.mustInfo(ctx, v); slices.Contains(vi.Peers, ni.ID) {
				t.Fatalf("validator node %d is connected to the new node before its approval", v)
			}
		}
	}

	// Governance adds it.
	members := clusterDevKeys(t, genesis.DevGovernanceIndex, genesis.DevGovernanceIndex+genesis.DevGovernanceMembers)
	addStart := time.Now()
	addID, addApproved, addEffective := c.proposeAndApprove(ctx, leader, members, "proposeAddValidator", "node3", []byte(ni.PublicKey))
	t.Logf("GOVERNANCE: proposal %d (add %s, peer %s) approved in block %d, in effect at height %d (%v after the proposal was sent)",
		addID, dAddr, ni.ID, addApproved, addEffective, time.Since(addStart).Round(time.Millisecond))

	// It joins Raft as a non-voter, catches up and is promoted.
	var nonvoterAt, voterAt time.Time
	var voterHeight uint64
	for deadline := time.Now().Add(45 * time.Second); voterAt.IsZero(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			st := c.raftStatus(ctx, leader)
			c.fatal("node %d is not a voter %v after its approval: leader's configuration %v, its height %d, the leader's %d",
				d, time.Since(addStart).Round(time.Millisecond), st.Servers, c.mustHeight(ctx, d), c.mustHeight(ctx, leader))
		}
		sf, err := c.suffrages(ctx, leader)
		if err != nil {
			c.fatal("admin_raftStatus on leader node %d: %v", leader, err)
		}
		switch sf[ni.ID] {
		case "Nonvoter":
			if nonvoterAt.IsZero() {
				nonvoterAt = time.Now()
			}
		case "Voter":
			voterAt = time.Now()
			voterHeight = c.mustHeight(ctx, leader)
		}
	}
	t.Logf("JOIN: node %d in the leader's configuration as non-voter after %v, voter after %v at the leader's height %d (addition in effect at %d)",
		d, durSince(nonvoterAt, addStart), voterAt.Sub(addStart).Round(time.Millisecond), voterHeight, addEffective)
	head, took := c.waitConverged(ctx, all, 30*time.Second)
	if ni := c.mustInfo(ctx, d); (ni.Role != "follower" && ni.Role != "leader") || ni.Leader == "" {
		t.Fatalf("new validator: role %q leader %q; want a validator (follower or leader) with a leader", ni.Role, ni.Leader)
	}
	t.Logf("new validator caught up: all four at height %d (%v)", head, took.Round(time.Millisecond))

	// Its vote is needed: kill the first leader (still the leader, unless
	// an election happened meanwhile), leaving 3 of 4 voters.
	hKill := c.mustHeight(ctx, victim)
	c.kill(victim)
	survivors := others(all, victim)
	leader, took = c.waitLeader(ctx, survivors, c.specs[victim].PeerID, 30*time.Second)
	t.Logf("KILL: SIGKILL of node %d at height %d; node %d leads the 3 of 4 voters left after %v", victim, hKill, leader, took.Round(time.Millisecond))
	hAfter := c.mustHeight(ctx, leader)
	if leader != d {
		var to string
		c.mustAdmin(ctx, leader, &to, "admin_transferLeadership", c.specs[d].PeerID)
		leader, took = c.waitLeader(ctx, survivors, "", 20*time.Second)
		if leader != d {
			c.fatal("admin_transferLeadership to node %d: node %d leads", d, leader)
		}
		t.Logf("TRANSFER: node %d leads after admin_transferLeadership (%v)", d, took.Round(time.Millisecond))
	}
	mined := c.waitBlockBy(ctx, d, hAfter, dAddr, 20*time.Second)
	// A transfer sent to the new validator, receipted on every survivor.
	extra := clusterDevKeys(t, 10, 11)[0]
	tx, err := makeTransfer(1, c.chainID, extra, 0, randomAddrs(1)[0], big.NewInt(777))
	if err != nil {
		t.Fatal(err)
	}
	c.mustSend(ctx, d, []*types.Transaction{tx})
	rs := c.mustReceipts(ctx, survivors, []common.Hash{tx.Hash()}, 30*time.Second)
	t.Logf("PROPOSER: node %d (%s) sealed block %d; a transfer sent to it is in block %v on every survivor", d, dAddr, mined, rs[tx.Hash()].BlockNumber)

	// The killed node returns and catches up.
	c.start(victim)
	head, took = c.waitConverged(ctx, all, 60*time.Second)
	t.Logf("RESTART: node %d caught up to height %d (%v)", victim, head, took.Round(time.Millisecond))

	// Governance removes the current leader.
	removed, _ := c.waitLeader(ctx, all, "", 20*time.Second)
	rmInfo := c.mustInfo(ctx, removed)
	remaining := others(all, removed)
	for _, i := range remaining {
		if _, err := c.suffrages(ctx, i); err != nil { // dials the admin clients before the watcher shares them
			c.fatal("admin_raftStatus on node %d: %v", i, err)
		}
	}
	watch := c.watchConfig(ctx, remaining, rmInfo.ID)
	rmStart := time.Now()
	rmID, rmApproved, rmEffective := c.proposeAndApprove(ctx, remaining[0], members, "proposeRemoveValidator", rmInfo.Address)
	t.Logf("GOVERNANCE: proposal %d (remove node %d, %s, the leader) approved in block %d, in effect at height %d", rmID, removed, rmInfo.Address, rmApproved, rmEffective)
	newLeader, took := c.waitLeader(ctx, remaining, rmInfo.ID, 30*time.Second)
	for deadline := time.Now().Add(30 * time.Second); c.mustHeight(ctx, newLeader) < rmEffective+3; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			c.fatal("height %d not reached within 30 s of the removal's approval (at %d)", rmEffective+3, c.mustHeight(ctx, newLeader))
		}
	}
	samples := watch()
	t.Logf("LEAVE: node %d leads after %v; height %d reached %v after the removal was proposed", newLeader, took.Round(time.Millisecond), rmEffective+3, time.Since(rmStart).Round(time.Millisecond))

	// It left Raft before the removal took effect.
	seen := 0
	for _, s := range samples {
		if s.height+1 >= rmEffective {
			seen++
			if s.listed {
				t.Fatalf("node %d had applied height %d (the removal applies at the end of block %d) and still listed node %d in its raft configuration", s.node, s.height, rmEffective-1, removed)
			}
		}
	}
	var logged []string
	for _, i := range all {
		for _, m := range removedRe.FindAllStringSubmatch(c.log(i), -1) {
			if m[1] != rmInfo.ID {
				continue
			}
			eff, _ := strconv.ParseUint(m[2], 10, 64)
			h, _ := strconv.ParseUint(m[3], 10, 64)
			if eff != rmEffective || h+1 >= rmEffective {
				t.Fatalf("node %d logged the removal of node %d at head %d for effective height %d; want effective height %d, head below %d", i, removed, h, eff, rmEffective, rmEffective-1)
			}
			logged = append(logged, fmt.Sprintf("by node %d at head %d", i, h))
		}
	}
	if len(logged) == 0 {
		t.Fatalf("no node logged the removal of node %d from raft", removed)
	}
	t.Logf("node %d left raft before height %d: removed %s; %d samples from the remaining nodes at heights ≥ %d never listed it", removed, rmEffective-1, strings.Join(logged, ", "), seen, rmEffective-1)
	for _, i := range remaining {
		sf, err := c.suffrages(ctx, i)
		if err != nil {
			c.fatal("admin_raftStatus on node %d: %v", i, err)
		}
		if _, ok := sf[rmInfo.ID]; ok || len(sf) != 3 {
			t.Fatalf("node %d: raft configuration %v after the removal", i, sf)
		}
		for _, j := range remaining {
			if sf[c.specs[j].PeerID] != "Voter" {
				t.Fatalf("node %d: raft configuration %v: node %d is not a voter", i, sf, j)
			}
		}
	}
	if removed != d && !strings.Contains(c.log(removed), "membership: transferring leadership") {
		t.Errorf("the removed leader node %d did not log a leadership transfer", removed)
	}

	stopLoad()
	// Every acknowledged transfer is on every member.
	load.mu.Lock()
	acked := make([]common.Hash, 0, len(load.acked))
	for h := range load.acked {
		acked = append(acked, h)
	}
	t.Logf("load: %d submitted, %d acknowledged, %d ambiguous, %d submission errors (sample %v)",
		len(load.submitted), len(load.acked), len(load.ambiguous), load.errCount, load.errSample)
	if len(load.gaveUp) > 0 {
		t.Errorf("senders gave up: %v", load.gaveUp)
	}
	load.mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("no transfer was acknowledged")
	}
	c.mustReceipts(ctx, remaining, acked, 30*time.Second)
	t.Logf("%d acknowledged transfers receipted with status 1 on nodes %v", len(acked), remaining)
	head, _ = c.waitConverged(ctx, remaining, 30*time.Second)
	blocks, where := c.compareChains(ctx, remaining, head)
	for _, b := range blocks[rmEffective:] {
		if b.Miner == rmInfo.Address {
			t.Fatalf("block %d (at or after the removal's effective height %d) was proposed by the removed validator %s", b.Number, rmEffective, rmInfo.Address)
		}
	}
	byMiner := map[common.Address]int{}
	for _, b := range blocks[1:] {
		byMiner[b.Miner]++
	}
	t.Logf("blocks by proposer: %v; none by %s from height %d (head %d)", byMiner, rmInfo.Address, rmEffective, head)
	// The removed node's chain is a prefix of the others'.
	hRm := c.mustHeight(ctx, removed)
	if hRm > head {
		t.Fatalf("removed node %d is at height %d, above the members' %d", removed, hRm, head)
	}
	rmBlocks, err := c.blocks(ctx, removed, 0, hRm)
	if err != nil {
		t.Fatal(err)
	}
	for h, b := range rmBlocks {
		if b.Hash != blocks[h].Hash {
			t.Fatalf("removed node %d has block %s at height %d, the members %s", removed, b.Hash, h, blocks[h].Hash)
		}
	}
	t.Logf("removed node %d stopped at height %d with the members' blocks (they reached %d)", removed, hRm, head)
	for _, h := range acked {
		if _, ok := where[h]; !ok {
			t.Fatalf("acknowledged tx %s has receipts but is in no block up to %d", h, head)
		}
	}
	// What each node did about membership, every run.
	for _, i := range all {
		logs, _ := filepath.Glob(filepath.Join(c.dir, fmt.Sprintf("node%d.run*.log", i)))
		for _, path := range logs {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "membership:") || strings.Contains(line, "holding the next block") || strings.Contains(line, "block production resumes") {
					t.Logf("%s: %s", filepath.Base(path), line[strings.Index(line, "level="):])
				}
			}
		}
	}

	// The audit and proofs across the validator changes (issue 8): a
	// transfer from before the addition took effect and one after the
	// removal did, each proven with both changes and their certificates.
	first := acked[0]
	for _, h := range acked {
		if where[h] < where[first] {
			first = h
		}
	}
	if where[first] >= addEffective {
		t.Fatalf("no acknowledged transfer below the addition's effective height %d (first at %d)", addEffective, where[first])
	}
	late, err := makeTransfer(0, c.chainID, extra, c.nonceOf(ctx, remaining[0], extra.Address()), randomAddrs(1)[0], big.NewInt(778))
	if err != nil {
		t.Fatal(err)
	}
	c.mustSend(ctx, remaining[0], []*types.Transaction{late})
	lateAt := c.mustReceipts(ctx, remaining, []common.Hash{late.Hash()}, 30*time.Second)[late.Hash()].BlockNumber.Uint64()
	if lateAt < rmEffective {
		t.Fatalf("transfer sent after the removal is in block %d, below its effective height %d", lateAt, rmEffective)
	}
	c.mustProve(remaining[0], "before-addition", first, where[first], 2)
	c.mustProve(remaining[0], "after-removal", late.Hash(), lateAt, 2)
	byRPC := c.mustAudit("rpc", "--rpc", c.specs[remaining[0]].RPC)
	if !byRPC.FinalStateChecked || byRPC.To < lateAt {
		t.Fatalf("audit by RPC: heights to %d (final state checked %v), want the head, at least %d", byRPC.To, byRPC.FinalStateChecked, lateAt)
	}
	c.waitConverged(ctx, remaining, 30*time.Second) // the copied node has byRPC.To too
	copyDir := c.checkpoint(remaining[1], "gov")
	if whole := c.mustAudit("datadir-head", "--datadir", copyDir); !whole.FinalStateChecked {
		t.Fatalf("audit of the data dir copy to its head %d: final state not checked", whole.To)
	}
	c.sameAudit(byRPC, c.mustAudit("datadir", append([]string{"--datadir", copyDir}, toFlag(byRPC.To)...)...))
	t.Logf("total %v", time.Since(testStart).Round(time.Millisecond))
}

func durSince(t, start time.Time) string {
	if t.IsZero() {
		return "(not seen)"
	}
	return t.Sub(start).Round(time.Millisecond).String()
}
