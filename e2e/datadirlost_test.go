package e2e

import (
	"context"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/genesis"
)

// TestDataDirLostRefused: a validator of a running 3-node cluster loses
// its whole data directory, and its operator restores only nodekey. The
// node must not bootstrap the genesis configuration again (it forgot the
// votes it cast and the entries it acknowledged). With the other two
// down it cannot tell a lost directory from a first start: it waits,
// saying for whom, and starts nothing. Once they are back their Raft
// knows it, so it exits naming the fix. Started with --raft-fresh it
// joins as a fresh member, catches up, and the chain goes on with
// identical blocks on every node (docs/cluster.md, "A lost data
// directory").
func TestDataDirLostRefused(t *testing.T) {
	skipShort(t)
	ctx, c, leader := startThree(t, 3*time.Minute)
	sender := clusterDevKeys(t, 0, 1)[0]
	to := randomAddrs(1)[0]
	nonce := c.nonceOf(ctx, leader, sender.Address())
	send := func(i, n int) {
		t.Helper()
		txs := make([]*types.Transaction, 0, n)
		for range n {
			tx, err := makeTransfer(0, c.chainID, sender, nonce, to, big.NewInt(1))
			if err != nil {
				t.Fatal(err)
			}
			nonce++
			txs = append(txs, tx)
		}
		c.mustSend(ctx, i, txs)
		c.mustReceipts(ctx, []int{i}, hashesOf(txs), 30*time.Second)
	}
	send(leader, 3)
	before, _ := c.waitConverged(ctx, allThree, 30*time.Second)

	lost := (leader + 1) % 3
	peers := others(allThree, lost)
	for _, i := range allThree {
		c.stop(i)
	}
	loseDataDir(t, c.procs[lost].datadir)

	// Its peers down: it waits for them, and bootstraps nothing.
	c.runs[lost]++
	refused := c.launchNode(lost, "refused")
	const waiting = "waiting for the other genesis validators"
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(c.log(lost), waiting); time.Sleep(50 * time.Millisecond) {
		if refused.exited() || time.Now().After(deadline) {
			t.Fatalf("node %d on a lost data directory, its peers down: no %q (exited %v):\n%s", lost, waiting, refused.exited(), tail(refused.logPath, 20))
		}
	}
	if log := c.log(lost); strings.Contains(log, "bootstrapping") || !strings.Contains(log, "0 of the 2 other genesis validators answered, 2 needed") {
		t.Fatalf("node %d, its peers down, did not wait for 2 answers before bootstrapping:\n%s", lost, tail(refused.logPath, 20))
	}
	if _, err := c.height(ctx, lost); err == nil {
		t.Fatalf("node %d answers JSON-RPC while it waits for its peers", lost)
	}

	// They come back: it is refused, naming the cause and the fix.
	for _, i := range peers {
		c.start(i)
	}
	c.mustRefuse(lost, refused)
	leader, _ = c.waitLeader(ctx, peers, "", 30*time.Second)
	if h := c.mustHeight(ctx, leader); h < before {
		t.Fatalf("the leader went back to height %d from %d", h, before)
	}

	// --raft-fresh: a fresh member, caught up by the leader.
	c.runs[lost]++
	n := c.launchNode(lost, "fresh", "--raft-fresh")
	if err := n.waitReady(readyTimeout); err != nil {
		t.Fatalf("node %d with --raft-fresh: %v\n%s", lost, err, tail(n.logPath, 30))
	}
	send(lost, 3) // forwarded to the leader: the chain goes on
	after, _ := c.waitConverged(ctx, allThree, 60*time.Second)
	if after <= before {
		t.Fatalf("the chain did not go on: height %d, %d before", after, before)
	}
	c.compareChains(ctx, allThree, after)
}

// launchNode starts node i's tallyd with --config and args, as its run
// c.runs[i], without waiting for it to answer.
func (c *testCluster) launchNode(i int, what string, args ...string) *node {
	c.t.Helper()
	s := c.specs[i]
	port, _ := strconv.Atoi(s.RPC[strings.LastIndexByte(s.RPC, ':')+1:])
	n := &node{t: c.t, datadir: filepath.Join(s.Dir, "data"), port: port, url: s.RPC, done: make(chan struct{}),
		logPath: filepath.Join(c.dir, "node"+strconv.Itoa(i)+".run"+strconv.Itoa(c.runs[i])+"."+what+".log")}
	if err := n.launch("node"+strconv.Itoa(i)+" "+what, 40, append([]string{"--config", s.Config}, args...)...); err != nil {
		c.t.Fatal(err)
	}
	c.procs[i], c.down[i] = n, false
	return n
}

// TestDataDirLostAddedValidator: a validator added by governance after
// genesis, once a voter whose votes the chain carries, loses its whole
// data directory and its operator restores only nodekey. Its state at
// genesis does not list it, yet it must not join with an empty log: a
// peer has it as a voter and saw it run, so it exits naming the fix.
func TestDataDirLostAddedValidator(t *testing.T) {
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newTestCluster(t, 3, nil)
	d := c.addJoiningNode(3)
	c.startAll()
	leader, _ := c.waitLeader(ctx, allThree, "", 30*time.Second)
	ni := c.mustInfo(ctx, d)
	members := clusterDevKeys(t, genesis.DevGovernanceIndex, genesis.DevGovernanceIndex+genesis.DevGovernanceMembers)
	_, _, effective := c.proposeAndApprove(ctx, leader, members, "proposeAddValidator", "node3", []byte(ni.PublicKey))
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		sf, err := c.suffrages(ctx, leader)
		if err == nil && sf[ni.ID] == "Voter" && c.mustHeight(ctx, d) > effective+2 {
			break
		}
		if time.Now().After(deadline) {
			c.fatal("node %d is no voter past height %d 45 s after its addition took effect at %d (suffrages %v, %v)", d, effective+2, effective, sf, err)
		}
	}
	c.stop(d)
	loseDataDir(t, c.procs[d].datadir)
	c.runs[d]++
	c.mustRefuse(d, c.launchNode(d, "refused"))
}

// loseDataDir empties data but for its nodekey: an operator who lost a
// node's data directory and restored only its key.
func loseDataDir(t *testing.T, data string) {
	t.Helper()
	key, err := os.ReadFile(filepath.Join(data, "nodekey"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "nodekey"), key, 0o600); err != nil {
		t.Fatal(err)
	}
}

// mustRefuse waits for node i, launched as n on a lost data directory,
// to exit with the refusal naming the cause and the fix.
func (c *testCluster) mustRefuse(i int, n *node) {
	c.t.Helper()
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("node %d started on a lost data directory; it must refuse", i)
	}
	c.down[i] = true
	log := c.log(i)
	if n.waitErr == nil || !strings.Contains(log, "data directory lost") || !strings.Contains(log, "--raft-fresh") {
		c.t.Fatalf("node %d on a lost data directory: exit %v, log:\n%s", i, n.waitErr, tail(n.logPath, 20))
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "data directory lost") {
			c.t.Logf("node %d refused: %s", i, line)
		}
	}
}
