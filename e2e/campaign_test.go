package e2e

import (
	"context"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/bridge"
	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
)

// The seeded bridge campaign (issue 13): CNY issued by banks A and B,
// each with its bank core simulator in random bank mode (lost acks and
// reports, late and duplicated messages, rejections after ACCP, returns
// of settled payouts) and two bridge instances (the simulator posts to
// the first; both order payouts), a 3-node cluster, holders linked at
// both banks depositing and withdrawing, and bridges and the leader
// SIGKILLed at points drawn from the seed. Every run ends with the
// invariants checked: no payout paid twice or both paid and refunded,
// every deposit minted once, the on-chain supply equal to the omnibus
// balances, `tally bridge reconcile` clean for each bridge and `tally
// audit` clean.
//
// `make test` runs one seed (campaignDefaultSeed). TALLY_CAMPAIGN_SEED=N
// replays seed N; TALLY_CAMPAIGN_SEEDS=N runs seeds 1..N (`make campaign
// SEEDS=N`), TALLY_CAMPAIGN_FIRST=F starting at F.

const (
	campaignDefaultSeed = 1
	campaignHolders     = 4
	campaignRounds      = 3
	campaignDeposits    = 4 // per bank and round
	campaignWithdrawals = 5 // per round
	cnyAsset            = 0 // CNY's asset id in the dev genesis
)

// cnyCent is one fen (0.01 CNY, the currency's minor unit) in CNY's 18
// on-chain decimals.
var cnyCent = new(big.Int).Exp(big.NewInt(10), big.NewInt(16), nil)

// campaignSeeds reads the seeds to run from the environment.
func campaignSeeds(t *testing.T) []uint64 {
	t.Helper()
	num := func(key string, def uint64) uint64 {
		v := os.Getenv(key)
		if v == "" {
			return def
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			t.Fatalf("%s=%q: want a positive integer", key, v)
		}
		return n
	}
	if s := num("TALLY_CAMPAIGN_SEED", 0); s != 0 {
		return []uint64{s}
	}
	n, first := num("TALLY_CAMPAIGN_SEEDS", 1), num("TALLY_CAMPAIGN_FIRST", campaignDefaultSeed)
	var out []uint64
	for s := first; s < first+n; s++ {
		out = append(out, s)
	}
	return out
}

// campaignStats are one run's figures.
type campaignStats struct {
	deposits, withdrawals            int
	bridgeKills, leaderKills         int
	settled, refunded, returned      int
	claimedA, claimedB, orderReSends int
}

func TestBridgeCampaign(t *testing.T) {
	skipShort(t)
	buildTally(t)
	var total campaignStats
	seeds := campaignSeeds(t)
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			st := runCampaign(t, seed)
			total.add(st)
		})
	}
	if len(seeds) > 1 {
		t.Logf("campaign: %d seeds: %s", len(seeds), total)
	}
}

func (s *campaignStats) add(o campaignStats) {
	s.deposits += o.deposits
	s.withdrawals += o.withdrawals
	s.bridgeKills += o.bridgeKills
	s.leaderKills += o.leaderKills
	s.settled += o.settled
	s.refunded += o.refunded
	s.returned += o.returned
	s.claimedA += o.claimedA
	s.claimedB += o.claimedB
	s.orderReSends += o.orderReSends
}

func (s campaignStats) String() string {
	return fmt.Sprintf("%d deposits, %d withdrawals (claimed by A %d, B %d; settled %d, of which returned %d; refunded %d), faults: %d bridge SIGKILLs, %d leader SIGKILLs, %d order re-sends",
		s.deposits, s.withdrawals, s.claimedA, s.claimedB, s.settled, s.returned, s.refunded, s.bridgeKills, s.leaderKills, s.orderReSends)
}

// randomSim is the simulator's [random] section for seed.
func randomSim(seed uint64) string {
	return fmt.Sprintf(`[random]
seed = %d
lose-ack = 0.15
lose-report = 0.15
delay-report = 0.2
max-delay = "300ms"
duplicate = 0.15
reject = 0.15
return = 0.15
`, seed)
}

func runCampaign(t *testing.T, seed uint64) campaignStats {
	began := time.Now()
	replay := fmt.Sprintf("TALLY_CAMPAIGN_SEED=%d go test -count=1 -run 'TestBridgeCampaign' ./e2e (or: make campaign SEED=%d)", seed, seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("campaign seed %d failed; replay it with: %s", seed, replay)
		}
	})
	rng := rand.New(rand.NewPCG(seed, 0x7a11))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var st campaignStats

	c := newTestCluster(t, 3, nil)
	c.startAll()
	c.waitLeader(ctx, []int{0, 1, 2}, "", 30*time.Second)
	wc0, err := wallet.Dial(ctx, c.specs[0].RPC)
	if err != nil {
		t.Fatal(err)
	}
	sup0, err := wc0.Supply(ctx, "CNY")
	wc0.Close()
	if err != nil {
		t.Fatal(err)
	}

	acctA := func(i int) string { return fmt.Sprintf("CN-A-%02d", i) }
	acctB := func(i int) string { return fmt.Sprintf("CN-B-%02d", i) }
	sideA := bankSide{keyIndex: genesis.DevBankAIndex, asset: cnyAsset, symbol: "CNY", omnibus: "SIM-OMNIBUS-A", simExtra: randomSim(seed*2 + 1)}
	sideB := bankSide{keyIndex: genesis.DevBankBIndex, asset: cnyAsset, symbol: "CNY", omnibus: "SIM-OMNIBUS-B", simExtra: randomSim(seed*2 + 2)}
	a1, bankA, keys, _ := setupBank(t, ctx, c, sideA, "campaign-bank-a-hmac-secret-0123456", campaignHolders, acctA)
	b1, bankB, _, _ := setupBank(t, ctx, c, sideB, "campaign-bank-b-hmac-secret-0123456", campaignHolders, acctB)
	a2 := a1.addInstance("bridge2", keys, acctA)
	b2 := b1.addInstance("bridge2", keys, acctB)
	bridges := []*bridgeEnv{a1, a2, b1, b2}
	banks := []*bridgeEnv{a1, b1} // one per bank: its simulator
	t.Logf("campaign seed %d: setup done after %v", seed, time.Since(began).Round(time.Millisecond))

	// readAll points every env's reads at a node that is up.
	readAll := func() {
		for i := range c.specs {
			if !c.down[i] {
				for _, e := range bridges {
					e.readFrom = i
				}
				return
			}
		}
	}
	readAll()

	// The faults: a bridge instance is SIGKILLed and restarted after the
	// next action; the leader is SIGKILLed, a new one awaited, and the old
	// one restarted two actions later (one node down at a time).
	var downBridge *bridgeEnv
	downNode, nodeBackIn := -1, 0
	restoreBridge := func() {
		if downBridge != nil {
			downBridge.startBridge()
			downBridge = nil
		}
	}
	restoreNode := func() {
		if downNode >= 0 {
			c.start(downNode)
			t.Logf("node %d restarted", downNode)
			downNode = -1
		}
	}
	fault := func() {
		restoreBridge()
		if rng.IntN(3) == 0 && downNode < 0 {
			leader, _ := c.waitLeader(ctx, []int{0, 1, 2}, "", 30*time.Second)
			c.kill(leader)
			st.leaderKills++
			readAll()
			c.waitLeader(ctx, others([]int{0, 1, 2}, leader), c.specs[leader].PeerID, 30*time.Second)
			t.Logf("leader node %d SIGKILLed", leader)
			downNode, nodeBackIn = leader, 2
			return
		}
		downBridge = bridges[rng.IntN(len(bridges))]
		downBridge.bridge.kill()
		st.bridgeKills++
	}
	// after runs after each action: brings back what is due.
	after := func() {
		if downBridge != nil && rng.IntN(2) == 0 {
			restoreBridge()
		}
		if downNode >= 0 {
			if nodeBackIn--; nodeBackIn <= 0 {
				restoreNode()
			}
		}
	}

	// One action is a batch of deposits at one bank or one withdrawal.
	type action struct {
		bank   int // deposits at banks[bank]; -1: a withdrawal
		deps   []depReq
		holder int
		cents  int64
	}
	wids := map[uint64]int64{} // withdrawal id → cents
	depCount := 0
	for round := range campaignRounds {
		var acts []action
		for b := range banks {
			var deps []depReq
			for i := range campaignDeposits {
				h := rng.IntN(campaignHolders)
				acct := acctA(h)
				if b == 1 {
					acct = acctB(h)
				}
				deps = append(deps, depReq{Account: acct, Amount: cents(1000 + rng.Int64N(49000)), Reference: fmt.Sprintf("CAMP-%d-%c-%d-%d", seed, 'A'+b, round, i)})
			}
			acts = append(acts, action{bank: b, deps: deps})
		}
		for range campaignWithdrawals {
			acts = append(acts, action{bank: -1, holder: rng.IntN(campaignHolders), cents: 100 + rng.Int64N(20000)})
		}
		rng.Shuffle(len(acts), func(i, j int) { acts[i], acts[j] = acts[j], acts[i] })
		faultAt := map[int]bool{rng.IntN(len(acts)): true, rng.IntN(len(acts)): true}
		for i, a := range acts {
			if faultAt[i] {
				fault()
			}
			if a.bank >= 0 {
				banks[a.bank].deposit(a.deps)
				depCount += len(a.deps)
			} else {
				id := campaignWithdraw(t, ctx, c, keys[a.holder], a.cents)
				wids[id] = a.cents
			}
			after()
		}
	}
	restoreBridge()
	restoreNode()
	st.deposits, st.withdrawals = depCount, len(wids)
	c.waitConverged(ctx, []int{0, 1, 2}, 60*time.Second)
	readAll()
	t.Logf("campaign seed %d: %d deposits and %d withdrawals sent after %v", seed, depCount, len(wids), time.Since(began).Round(time.Millisecond))

	// Quiet: every deposit minted, every withdrawal closed on chain, every
	// return the simulators booked returned on chain, every bridge with
	// nothing in flight; twice, a simulator's late return apart.
	quiet := func() string {
		for _, e := range banks {
			minted := e.mintedRefs()
			for _, en := range e.ledger().Entries {
				if en.Credit && en.Return == "" && !en.Reversal && minted[e.depositBankRef(e.bank.Address(), en.Ref)] == 0 {
					return fmt.Sprintf("deposit %s at %s not minted", en.Ref, e.side.omnibus)
				}
			}
		}
		closed := map[uint64]bool{}
		for _, ev := range []string{"WithdrawalSettled", "WithdrawalRefunded"} {
			for _, l := range a1.logs(ev) {
				closed[topicID(l)] = true
			}
		}
		for id := range wids {
			if !closed[id] {
				return fmt.Sprintf("withdrawal %d not settled or refunded on chain", id)
			}
		}
		// A return gives the money back on chain: returnWithdrawal after
		// the settlement, or a refund when the return came first.
		returned := map[string]bool{}
		for _, ev := range []string{"WithdrawalReturned", "WithdrawalRefunded"} {
			for _, l := range a1.logs(ev) {
				returned[payoutE2E(topicID(l))] = true
			}
		}
		for _, e := range banks {
			for _, o := range e.ledger().Orders {
				if o.Returned && !returned[o.EndToEndID] {
					return fmt.Sprintf("payout %s returned at %s, neither returned nor refunded on chain", o.EndToEndID, e.side.omnibus)
				}
			}
		}
		for _, e := range bridges {
			s := e.status()
			for k, n := range s.Payouts {
				if k != string(bridge.PayoutClosed) && n != 0 {
					return fmt.Sprintf("%s %s: %d payouts %s", e.side.omnibus, e.name, n, k)
				}
			}
			for k, n := range s.Deposits {
				if k != string(bridge.DepositMinted) && n != 0 {
					return fmt.Sprintf("%s %s: %d deposits %s", e.side.omnibus, e.name, n, k)
				}
			}
		}
		return ""
	}
	var why string
	for range 2 {
		pollUntil(t, 90*time.Second, func() string { return "the campaign to settle: " + why }, func() bool {
			why = quiet()
			return why == ""
		})
		time.Sleep(time.Second) // max-delay + status-delay + retry-interval: a late return shows
	}
	t.Logf("campaign seed %d: quiet after %v", seed, time.Since(began).Round(time.Millisecond))

	// ---- the invariants ----
	bankName := map[common.Hash]string{addrHash(bankA.Address()): "A", addrHash(bankB.Address()): "B"}
	settledBy, refunded, returnedN, claims := map[uint64]string{}, map[uint64]int{}, map[uint64]int{}, map[uint64]string{}
	settledN := map[uint64]int{}
	for _, l := range a1.logs("WithdrawalSettled") {
		settledBy[topicID(l)] = bankName[l.Topics[2]]
		settledN[topicID(l)]++
	}
	for _, l := range a1.logs("WithdrawalRefunded") {
		refunded[topicID(l)]++
	}
	for _, l := range a1.logs("WithdrawalReturned") {
		returnedN[topicID(l)]++
		if by := bankName[l.Topics[2]]; by != settledBy[topicID(l)] {
			t.Errorf("withdrawal %d returned by bank %q, settled by %q", topicID(l), by, settledBy[topicID(l)])
		}
	}
	for _, l := range a1.logs("WithdrawalClaimed") {
		if claims[topicID(l)] != "" {
			t.Errorf("withdrawal %d claimed twice (by %s and %s)", topicID(l), claims[topicID(l)], bankName[l.Topics[2]])
		}
		claims[topicID(l)] = bankName[l.Topics[2]]
	}
	// Each simulator's payments (debits) and orders per withdrawal.
	paid := map[string]map[string]int{} // EndToEndId → bank → debits
	ordersAt := map[string]map[string]int{}
	returnedAt := map[string]int{}
	var omnibus int64
	for bi, e := range banks {
		name := string(rune('A' + bi))
		led := e.ledger()
		for _, en := range led.Entries {
			if !en.Credit && !en.Reversal {
				if paid[en.EndToEndID] == nil {
					paid[en.EndToEndID] = map[string]int{}
				}
				paid[en.EndToEndID][name]++
			}
		}
		for _, o := range led.Orders {
			if ordersAt[o.EndToEndID] == nil {
				ordersAt[o.EndToEndID] = map[string]int{}
			}
			ordersAt[o.EndToEndID][name]++
			st.orderReSends += o.Sends - 1
			if o.Returned {
				returnedAt[o.EndToEndID]++
			}
		}
		omnibus += parseCents(t, led.Balances[e.side.omnibus])
	}
	for id := range wids {
		e2e := payoutE2E(id)
		var debits int
		for _, n := range paid[e2e] {
			debits += n
		}
		// What the holder was paid in the end: the bank's debits less the
		// payments that came back (returns).
		kept := debits - returnedAt[e2e]
		switch {
		case debits > 1:
			t.Errorf("withdrawal %d paid %d times: %v", id, debits, paid[e2e])
		case settledN[id] > 1 || refunded[id] > 1 || returnedN[id] > 1:
			t.Errorf("withdrawal %d closed more than once: settled %d, refunded %d, returned %d", id, settledN[id], refunded[id], returnedN[id])
		case refunded[id] == 1 && kept != 0:
			t.Errorf("withdrawal %d paid by the bank (%v, returned %d) and refunded on chain", id, paid[e2e], returnedAt[e2e])
		case settledN[id] == 1 && paid[e2e][settledBy[id]] != 1:
			t.Errorf("withdrawal %d settled by bank %s on chain, paid %v at the simulators", id, settledBy[id], paid[e2e])
		case settledN[id] == 1 && returnedN[id] != returnedAt[e2e]:
			t.Errorf("withdrawal %d settled, returned %d times on chain, %d at the bank", id, returnedN[id], returnedAt[e2e])
		}
		if claims[id] == "" && settledN[id] != 0 {
			t.Errorf("withdrawal %d settled without a claim", id)
		}
		for b := range ordersAt[e2e] {
			if b != claims[id] {
				t.Errorf("withdrawal %d claimed by bank %q, ordered at bank %s", id, claims[id], b)
			}
		}
		for b, n := range ordersAt[e2e] {
			if n != 1 {
				t.Errorf("withdrawal %d: %d payment orders at bank %s (a re-send keeps its MsgId)", id, n, b)
			}
		}
		switch {
		case settledN[id] == 1:
			st.settled++
		case refunded[id] == 1:
			st.refunded++
		}
		st.returned += returnedN[id]
		switch claims[id] {
		case "A":
			st.claimedA++
		case "B":
			st.claimedB++
		}
	}
	// Every deposit minted once, under its deposit key, by its bank.
	for _, e := range banks {
		want := map[common.Hash]string{}
		for _, en := range e.ledger().Entries {
			if en.Credit && en.Return == "" && !en.Reversal {
				want[e.depositBankRef(e.bank.Address(), en.Ref)] = en.Ref
			}
		}
		minted := e.mintedRefs()
		for ref, n := range minted {
			if n != 1 || want[ref] == "" {
				t.Errorf("bank %s: bankRef %s (deposit %q) minted %d times", e.side.omnibus, ref, want[ref], n)
			}
		}
		if len(minted) != len(want) {
			t.Errorf("bank %s: %d deposits minted, %d booked", e.side.omnibus, len(minted), len(want))
		}
	}
	// On-chain supply: what the banks minted less what they burned is what
	// their omnibus accounts hold.
	wc, err := wallet.Dial(ctx, c.specs[a1.readFrom].RPC)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close()
	sup, err := wc.Supply(ctx, "CNY")
	if err != nil {
		t.Fatal(err)
	}
	net := new(big.Int).Sub(sup.TotalSupply.ToInt(), sup0.TotalSupply.ToInt())
	if want := new(big.Int).Mul(big.NewInt(omnibus), cnyCent); net.Cmp(want) != 0 {
		t.Errorf("CNY supply grew by %s base units; the omnibus accounts hold %s CNY (%s)", net, cents(omnibus), want)
	}
	if d := new(big.Int).Sub(sup.Escrow.ToInt(), sup0.Escrow.ToInt()); d.Sign() != 0 {
		t.Errorf("CNY escrow grew by %s with every withdrawal closed", d)
	}
	// Reconcile each bridge against its bank's statement.
	for _, e := range bridges {
		campaignReconcile(t, e)
	}
	rep := c.mustAudit(fmt.Sprintf("campaign-%d", seed), "--rpc", c.specs[a1.readFrom].RPC)
	c.checkSupply(ctx, a1.readFrom, rep)
	t.Logf("campaign seed %d done in %v: %s", seed, time.Since(began).Round(time.Millisecond), st)
	return st
}

// campaignWithdraw requests a withdrawal of cents fen of CNY by key
// through the leader (a node just restarted may still be catching up and
// offer a stale nonce) and returns its id.
func campaignWithdraw(t *testing.T, ctx context.Context, c *testCluster, key *crypto.PrivateKey, fen int64) uint64 {
	t.Helper()
	var up []int
	for i := range c.specs {
		if !c.down[i] {
			up = append(up, i)
		}
	}
	node, _ := c.waitLeader(ctx, up, "", 30*time.Second)
	cl, err := wallet.Dial(ctx, c.specs[node].RPC)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	op, err := wallet.AssetOp(cnyAsset, "requestWithdrawal", new(big.Int).Mul(big.NewInt(fen), cnyCent), [32]byte{})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := cl.Send(ctx, key, op)
	if err != nil {
		t.Fatalf("requestWithdrawal via node %d: %v", node, err)
	}
	r, err := cl.WaitReceipt(ctx, tx.Hash())
	if err != nil || r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("requestWithdrawal receipt %v: %v", r, err)
	}
	for _, l := range r.Logs {
		if l.Topics[0] == chain.AssetABI.Events["WithdrawalRequested"].ID {
			return topicID(*l)
		}
	}
	t.Fatalf("requestWithdrawal %s: no WithdrawalRequested log", tx.Hash())
	return 0
}

// campaignReconcile runs `tally bridge reconcile` for bridge e against
// its simulator's camt.053, which must be clean.
func campaignReconcile(t *testing.T, e *bridgeEnv) {
	t.Helper()
	if out, err := e.reconcile(t); err != nil {
		t.Errorf("tally bridge reconcile (%s %s): %v\n%s", e.side.omnibus, e.name, err, out)
	}
}

// topicID is the withdrawal id in a log's first indexed topic.
func topicID(l types.Log) uint64 { return new(big.Int).SetBytes(l.Topics[1][:]).Uint64() }

func addrHash(a common.Address) common.Hash { return common.BytesToHash(a.Bytes()) }

// payoutE2E is withdrawal id's EndToEndId (the same at every bank).
func payoutE2E(id uint64) string { return fmt.Sprintf("TALLY-%d-CNY-W%d", devChainID, id) }

// parseCents reads a simulator balance ("-12.30") in fen.
func parseCents(t *testing.T, s string) int64 {
	t.Helper()
	neg := strings.HasPrefix(s, "-")
	whole, frac, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	for len(frac) < 2 {
		frac += "0"
	}
	v, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil || len(frac) != 2 {
		t.Fatalf("simulator balance %q: not an amount in fen", s)
	}
	if neg {
		v = -v
	}
	return v
}
