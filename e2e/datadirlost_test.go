package e2e

import (
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/core/types"
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
	data := c.procs[lost].datadir
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
	select {
	case <-refused.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("node %d started on a lost data directory; it must refuse", lost)
	}
	c.down[lost] = true
	log := c.log(lost)
	if refused.waitErr == nil || !strings.Contains(log, "data directory lost") || !strings.Contains(log, "--raft-fresh") {
		t.Fatalf("node %d on a lost data directory: exit %v, log:\n%s", lost, refused.waitErr, tail(refused.logPath, 20))
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "data directory lost") {
			t.Logf("node %d refused: %s", lost, line)
		}
	}
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
