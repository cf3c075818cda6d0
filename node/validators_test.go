package node

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/hashicorp/raft"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/p2p"
	"github.com/tally-ledger/tally/state"
	"github.com/tally-ledger/tally/store"
)

// testValidator is a key with its validator record and Raft server ID.
type testValidator struct {
	key  *crypto.PrivateKey
	info state.ValidatorInfo
	id   raft.ServerID
}

func newTestValidators(t *testing.T, n int) []testValidator {
	t.Helper()
	out := make([]testValidator, n)
	for i := range out {
		k, err := crypto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		pub := ethcrypto.CompressPubkey(&k.ECDSA().PublicKey)
		id, err := p2p.PeerIDFromPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = testValidator{key: k, info: state.ValidatorInfo{Address: k.Address(), Name: fmt.Sprint("v", i), PublicKey: pub}, id: raft.ServerID(id.String())}
	}
	return out
}

func TestPeerAddress(t *testing.T) {
	v := newTestValidators(t, 1)[0]
	a, err := peerAddress(v.id)
	if err != nil || a != v.key.Address() {
		t.Fatalf("peerAddress(%s) = %s, %v; want %s", v.id, a, err, v.key.Address())
	}
	if _, err := peerAddress("not a peer id"); err == nil {
		t.Fatal("peerAddress accepted garbage")
	}
}

func TestChangesApply(t *testing.T) {
	a, b, c := common.Address{1}, common.Address{2}, common.Address{3}
	for _, tc := range []struct {
		set     []common.Address
		changes []valChange
		want    []bool
	}{
		{[]common.Address{a, b}, []valChange{{add: true, addr: c}, {addr: a}}, []bool{true, true}},
		{[]common.Address{a, b}, []valChange{{add: true, addr: a}}, []bool{false}},       // already a validator
		{[]common.Address{a, b}, []valChange{{addr: c}}, []bool{false}},                  // not a validator
		{[]common.Address{a, b}, []valChange{{addr: a}, {addr: b}}, []bool{true, false}}, // never the last one
		{[]common.Address{a}, []valChange{{addr: a}, {add: true, addr: b}}, []bool{false, true}},
		{[]common.Address{a, b}, []valChange{{addr: a}, {add: true, addr: a}}, []bool{true, true}}, // leaves and returns
	} {
		if got := changesApply(tc.set, tc.changes); !slices.Equal(got, tc.want) {
			t.Errorf("set %v changes %+v: %v, want %v", tc.set, tc.changes, got, tc.want)
		}
	}
	full := make([]common.Address, genesis.MaxValidators)
	for i := range full {
		full[i] = common.BigToAddress(big.NewInt(int64(i + 10)))
	}
	if got := changesApply(full, []valChange{{add: true, addr: a}}); got[0] {
		t.Error("an addition to a full set applies")
	}
}

// TestPlanMembership: what the leader does for each combination of the
// validator set, the approved changes and the Raft configuration.
func TestPlanMembership(t *testing.T) {
	vs := newTestValidators(t, 5)
	infos := func(idx ...int) []state.ValidatorInfo {
		var out []state.ValidatorInfo
		for _, i := range idx {
			out = append(out, vs[i].info)
		}
		return out
	}
	voter := func(i int) raft.Server {
		return raft.Server{ID: vs[i].id, Address: raft.ServerAddress(vs[i].id), Suffrage: raft.Voter}
	}
	nonvoter := func(i int) raft.Server {
		return raft.Server{ID: vs[i].id, Address: raft.ServerAddress(vs[i].id), Suffrage: raft.Nonvoter}
	}
	add := func(i int, eff uint64) store.ValidatorChange {
		return store.ValidatorChange{ProposalID: eff, Add: true, Validator: vs[i].info, EffectiveHeight: eff}
	}
	remove := func(i int, eff uint64) store.ValidatorChange {
		return store.ValidatorChange{ProposalID: eff, Validator: vs[i].info, EffectiveHeight: eff}
	}
	yes := func(raft.ServerID) bool { return true }
	no := func(raft.ServerID) bool { return false }
	caught := func(raft.ServerID) (bool, string) { return true, "caught up" }
	behind := func(raft.ServerID) (bool, string) { return false, "far behind" }
	notLive := func(i int) func(raft.ServerID) (bool, string) {
		return func(id raft.ServerID) (bool, string) { return id != vs[i].id, "grants no vote" }
	}
	type step struct {
		kind actionKind
		v    int
	}
	for _, tc := range []struct {
		name      string
		self      int
		vals      []state.ValidatorInfo
		pending   []store.ValidatorChange
		servers   []raft.Server
		connected func(raft.ServerID) bool
		caughtUp  func(raft.ServerID) (bool, string)
		live      func(raft.ServerID) (bool, string)
		want      []step
		waits     []int
	}{
		{name: "steady", vals: infos(0, 1, 2), servers: []raft.Server{voter(0), voter(1), voter(2)}},
		{name: "observer left alone", vals: infos(0, 1, 2), servers: []raft.Server{voter(0), voter(1), voter(2), nonvoter(4)}},
		{name: "approved addition, connected", vals: infos(0, 1, 2), pending: []store.ValidatorChange{add(3, 50)},
			servers: []raft.Server{voter(0), voter(1), voter(2)}, connected: yes, want: []step{{actAddNonvoter, 3}}},
		{name: "approved addition, not connected", vals: infos(0, 1, 2), pending: []store.ValidatorChange{add(3, 50)},
			servers: []raft.Server{voter(0), voter(1), voter(2)}, connected: no, waits: []int{3}},
		{name: "catching up", vals: infos(0, 1, 2), pending: []store.ValidatorChange{add(3, 50)},
			servers: []raft.Server{voter(0), voter(1), voter(2), nonvoter(3)}, caughtUp: behind, waits: []int{3}},
		{name: "caught up, addition not in effect yet: stays a non-voter", vals: infos(0, 1, 2), pending: []store.ValidatorChange{add(3, 50)},
			servers: []raft.Server{voter(0), voter(1), voter(2), nonvoter(3)}, caughtUp: caught, waits: []int{3}},
		{name: "in effect and caught up", vals: infos(0, 1, 2, 3),
			servers: []raft.Server{voter(0), voter(1), voter(2), nonvoter(3)}, caughtUp: caught, want: []step{{actPromote, 3}}},
		{name: "in effect, lagging", vals: infos(0, 1, 2, 3),
			servers: []raft.Server{voter(0), voter(1), voter(2), nonvoter(3)}, caughtUp: behind, waits: []int{3}},
		{name: "validator in effect, not in raft", vals: infos(0, 1, 2, 3),
			servers: []raft.Server{voter(0), voter(1), voter(2)}, connected: yes, want: []step{{actAddNonvoter, 3}}},
		{name: "removal first", vals: infos(0, 1, 2), pending: []store.ValidatorChange{add(3, 50), remove(1, 51)},
			servers: []raft.Server{voter(0), voter(1), voter(2)}, connected: yes, want: []step{{actRemove, 1}, {actAddNonvoter, 3}}},
		{name: "leader leaving", vals: infos(0, 1, 2), pending: []store.ValidatorChange{remove(0, 50)},
			servers: []raft.Server{voter(0), voter(1), voter(2)}, want: []step{{actTransfer, 0}}},
		{name: "leader not a validator yet", self: 3, vals: infos(0, 1, 2), pending: []store.ValidatorChange{add(3, 50)},
			servers: []raft.Server{voter(0), voter(1), voter(2), voter(3)}, want: []step{{actTransfer, 3}}},
		{name: "stray voter", vals: infos(0, 1, 2), servers: []raft.Server{voter(0), voter(1), voter(2), voter(4)}, want: []step{{actRemove, 4}}},
		{name: "removal of the last one does not apply", vals: infos(0, 1), pending: []store.ValidatorChange{remove(1, 50), remove(0, 51)},
			servers: []raft.Server{voter(0), voter(1)}, want: []step{{actRemove, 1}}},
		{name: "added then removed: never joins", vals: infos(0, 1, 2), pending: []store.ValidatorChange{add(3, 50), remove(3, 60)},
			servers: []raft.Server{voter(0), voter(1), voter(2)}, connected: yes},
		{name: "removed then added back: leaves first", vals: infos(0, 1, 2), pending: []store.ValidatorChange{remove(2, 50), add(2, 60)},
			servers: []raft.Server{voter(0), voter(1), voter(2)}, connected: yes, want: []step{{actRemove, 2}}},
		// Seed 84: a removal appended while the rest had no live quorum
		// could never commit, and no election could be won after it.
		{name: "removal waits while the others have no quorum up", vals: infos(0, 1, 2), pending: []store.ValidatorChange{remove(1, 51)},
			servers: []raft.Server{voter(0), voter(1), voter(2)}, connected: func(id raft.ServerID) bool { return id == vs[1].id }, waits: []int{1}},
		{name: "removal with one of the two others up", vals: infos(0, 1, 2), pending: []store.ValidatorChange{remove(1, 51)},
			servers: []raft.Server{voter(0), voter(1), voter(2)}, connected: func(id raft.ServerID) bool { return id == vs[2].id }, want: []step{{actRemove, 1}}},
		{name: "promotion with one of three voters down", vals: infos(0, 1, 2, 3),
			servers: []raft.Server{voter(0), voter(1), voter(2), nonvoter(3)}, caughtUp: caught,
			connected: func(id raft.ServerID) bool { return id != vs[2].id }, want: []step{{actPromote, 3}}},
		{name: "promotion waits while the voters up and voting, with it, are no majority", vals: infos(0, 1, 2, 3),
			servers: []raft.Server{voter(0), voter(1), voter(2), nonvoter(3)}, caughtUp: caught,
			connected: func(id raft.ServerID) bool { return id != vs[2].id }, live: notLive(1), waits: []int{3}},
		{name: "promotion with every voter up", vals: infos(0, 1, 2, 3),
			servers: []raft.Server{voter(0), voter(1), voter(2), nonvoter(3)}, caughtUp: caught,
			connected: yes, want: []step{{actPromote, 3}}},
		// Seed 53: the removal of the old leader appended while the only
		// other voter up was a fresh member (no vote until caught up).
		{name: "removal waits while the other voter up grants no vote", vals: infos(0, 1, 2), pending: []store.ValidatorChange{remove(1, 51)},
			servers: []raft.Server{voter(0), voter(1), voter(2)}, connected: yes, live: notLive(2), waits: []int{1}},
		{name: "the leader counts itself live", vals: infos(0, 1, 2), pending: []store.ValidatorChange{remove(1, 51)},
			servers: []raft.Server{voter(0), voter(1), voter(2)}, connected: yes, live: notLive(0), want: []step{{actRemove, 1}}},
		{name: "stray voter stays while the validators have no quorum up", vals: infos(0, 1, 2),
			servers: []raft.Server{voter(0), voter(1), voter(2), voter(4)}, connected: no, waits: []int{4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acts, waits, err := planMembership(memberInputs{self: vs[tc.self].id, validators: tc.vals, pending: tc.pending,
				servers: tc.servers, connected: tc.connected, caughtUp: tc.caughtUp, live: tc.live})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range acts {
				got = append(got, fmt.Sprintf("%s %s", a.kind, a.id))
			}
			var want []string
			for _, s := range tc.want {
				want = append(want, fmt.Sprintf("%s %s", s.kind, vs[s.v].id))
			}
			if !slices.Equal(got, want) {
				t.Errorf("actions\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
			}
			var gotWaits []raft.ServerID
			for _, w := range waits {
				gotWaits = append(gotWaits, w.id)
			}
			var wantWaits []raft.ServerID
			for _, i := range tc.waits {
				wantWaits = append(wantWaits, vs[i].id)
			}
			if !slices.Equal(gotWaits, wantWaits) {
				t.Errorf("waiting %v, want %v (%+v)", gotWaits, wantWaits, waits)
			}
		})
	}
}

// TestDueValidatorChanges: the builder's hold reads the changes a block
// applies from the speculative state it is built on.
func TestDueValidatorChanges(t *testing.T) {
	vs := newTestValidators(t, 2)
	g := genesis.Dev()
	g.Validators = []genesis.Validator{{Name: "a", PublicKey: vs[0].info.PublicKey}, {Name: "b", PublicKey: vs[1].info.PublicKey}}
	db, err := store.Open(t.TempDir(), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.InitGenesis(g); err != nil {
		t.Fatal(err)
	}
	id := big.NewInt(genesis.DevChainID)
	sign := func(member uint32, method string, args ...any) (*types.Transaction, common.Address) {
		k, _ := genesis.DevKey(genesis.DevGovernanceIndex + member)
		data, err := chain.GovernanceABI.Pack(method, args...)
		if err != nil {
			t.Fatal(err)
		}
		to := chain.GovernanceAddress
		tx, err := chain.SignTx(types.NewTx(&types.DynamicFeeTx{ChainID: id, To: &to, Gas: chain.GasPerSystemCall, GasTipCap: new(big.Int), GasFeeCap: new(big.Int), Value: new(big.Int), Data: data}), id, k)
		if err != nil {
			t.Fatal(err)
		}
		return tx, k.Address()
	}
	unstarted := NewMembership(MembershipConfig{DB: db, Net: nil, Log: slog.New(slog.DiscardHandler)})
	p, pFrom := sign(0, "proposeRemoveValidator", vs[1].key.Address())
	v, vFrom := sign(1, "vote", big.NewInt(1), true)
	par, base := db.Tip().Parent(), state.Reader(db)
	delay := g.Governance.ActivationDelay
	for h := uint64(1); h <= delay; h++ {
		due, err := dueValidatorChanges(base, h)
		if err != nil {
			t.Fatal(err)
		}
		if h < delay && len(due) != 0 {
			t.Fatalf("block %d applies %+v; the removal applies in block %d", h, due, delay)
		}
		if h == delay && (len(due) != 1 || due[0].add || due[0].addr != vs[1].key.Address() || due[0].height != delay+1) {
			t.Fatalf("block %d applies %+v; want the removal of %s in effect at %d", h, due, vs[1].key.Address(), delay+1)
		}
		// A reconciler that has not started (no Raft configuration to
		// read) holds the removal's block, and only that one.
		if why := unstarted.Hold(base, h); (why != "") != (h == delay) {
			t.Fatalf("block %d: Hold before Run = %q; want a hold only for block %d", h, why, delay)
		}
		var txs []*types.Transaction
		var froms []common.Address
		if h == 1 {
			txs, froms = []*types.Transaction{p, v}, []common.Address{pFrom, vFrom}
		}
		built, err := state.Build(base, par, txs, froms, nil, par.TimeMs+1, vs[0].key, genesis.DevChainID)
		if err != nil {
			t.Fatal(err)
		}
		if len(built.Included) != len(txs) {
			t.Fatalf("block %d: dropped %+v", h, built.Dropped)
		}
		par, base = built.AsParent(), built.Writes
	}
	if due, err := dueValidatorChanges(base, delay+1); err != nil || len(due) != 0 {
		t.Fatalf("after the removal applied: due %+v, %v", due, err)
	}
}

// namedIDs names validator i "v<i>", as the cluster simulator names its
// nodes: the plan must name servers through the MemberIDs it is given.
type namedIDs []testValidator

func (ids namedIDs) ServerID(pub []byte) (raft.ServerID, error) {
	for i, v := range ids {
		if bytes.Equal(v.info.PublicKey, pub) {
			return raft.ServerID(fmt.Sprint("v", i)), nil
		}
	}
	return "", errors.New("unknown key")
}

func (ids namedIDs) Address(id raft.ServerID) (common.Address, error) {
	for i, v := range ids {
		if id == raft.ServerID(fmt.Sprint("v", i)) {
			return v.key.Address(), nil
		}
	}
	return common.Address{}, fmt.Errorf("unknown server %s", id)
}

// TestPlanMembershipNamedIDs: with other server IDs than libp2p peer IDs
// (the simulator's), the plan adds, removes and hands over the same
// servers, named and addressed through MemberIDs; a validator whose key
// has no server ID is an error, not a silent skip.
func TestPlanMembershipNamedIDs(t *testing.T) {
	vs := newTestValidators(t, 5)
	ids := namedIDs(vs)
	srv := func(i int) raft.Server {
		id := raft.ServerID(fmt.Sprint("v", i))
		return raft.Server{ID: id, Address: raft.ServerAddress(id), Suffrage: raft.Voter}
	}
	infos := func(is ...int) []state.ValidatorInfo {
		var out []state.ValidatorInfo
		for _, i := range is {
			out = append(out, vs[i].info)
		}
		return out
	}
	yes := func(raft.ServerID) bool { return true }
	for _, tc := range []struct {
		name    string
		self    int
		vals    []state.ValidatorInfo
		pending []store.ValidatorChange
		servers []raft.Server
		want    string // kind id addr of the first action
	}{
		{"addition", 0, infos(0, 1, 2), []store.ValidatorChange{{ProposalID: 1, Add: true, Validator: vs[3].info, EffectiveHeight: 9}},
			[]raft.Server{srv(0), srv(1), srv(2)}, fmt.Sprint("add-nonvoter v3 ", vs[3].key.Address())},
		{"removal", 0, infos(0, 1, 2), []store.ValidatorChange{{ProposalID: 1, Validator: vs[1].info, EffectiveHeight: 9}},
			[]raft.Server{srv(0), srv(1), srv(2)}, fmt.Sprint("remove v1 ", vs[1].key.Address())},
		{"leader leaving", 2, infos(0, 1, 2), []store.ValidatorChange{{ProposalID: 1, Validator: vs[2].info, EffectiveHeight: 9}},
			[]raft.Server{srv(0), srv(1), srv(2)}, fmt.Sprint("transfer-leadership v2 ", vs[2].key.Address())},
		{"leader not a validator", 4, infos(0, 1, 2), nil,
			[]raft.Server{srv(0), srv(1), srv(2), srv(4)}, fmt.Sprint("transfer-leadership v4 ", vs[4].key.Address())},
		{"stray voter", 0, infos(0, 1, 2), nil,
			[]raft.Server{srv(0), srv(1), srv(2), srv(4)}, fmt.Sprint("remove v4 ", vs[4].key.Address())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			acts, _, err := planMembership(memberInputs{self: raft.ServerID(fmt.Sprint("v", tc.self)), validators: tc.vals, pending: tc.pending,
				servers: tc.servers, ids: ids, connected: yes})
			if err != nil {
				t.Fatal(err)
			}
			if len(acts) == 0 {
				t.Fatalf("no action; want %s", tc.want)
			}
			if got := fmt.Sprint(acts[0].kind, " ", acts[0].id, " ", acts[0].addr); got != tc.want {
				t.Fatalf("first action %s; want %s", got, tc.want)
			}
		})
	}
	stranger, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	alien := state.ValidatorInfo{Address: stranger.Address(), Name: "x", PublicKey: ethcrypto.CompressPubkey(&stranger.ECDSA().PublicKey)}
	if _, _, err := planMembership(memberInputs{self: "v0", validators: append(infos(0, 1), alien), servers: []raft.Server{srv(0), srv(1)}, ids: ids}); err == nil {
		t.Fatal("a validator without a server ID was planned around")
	}
}

// TestTransferLeadershipAlone: admin_transferLeadership on a node without
// peers (a dev chain, no p2p.listen) answers a clear error, with or without
// a target, and the node keeps leading.
func TestTransferLeadershipAlone(t *testing.T) {
	n := startDevNode(t, t.TempDir())
	api := &AdminAPI{n: n}
	for _, id := range []string{"", "16Uiu2HAmQ4bLpsjBQ6FVWvbYhWNGvBZZsYSGkPZQeT4j1cAZFQ4D"} {
		if _, err := api.TransferLeadership(id); err == nil || !strings.Contains(err.Error(), "no other voter") {
			t.Fatalf("TransferLeadership(%q) = %v; want an error saying there is no other voter", id, err)
		}
	}
	if !n.engine.IsLeader() {
		t.Fatal("the node stopped leading")
	}
}

// TestCaughtUpAt: a non-voter is caught up within the lag of the leader's
// head and once it applied a block; at height 0 it is not, however young
// the chain.
func TestCaughtUpAt(t *testing.T) {
	for _, tc := range []struct {
		h, head, lag uint64
		want         bool
	}{
		{0, 0, 64, true},
		{0, 11, 64, false},
		{1, 11, 64, true},
		{11, 11, 64, true},
		{100, 164, 64, true},
		{99, 164, 64, false},
		{0, 200, 64, false},
	} {
		if got, why := caughtUpAt(tc.h, tc.head, tc.lag); got != tc.want || why == "" {
			t.Errorf("caughtUpAt(%d, %d, %d) = %v (%q), want %v", tc.h, tc.head, tc.lag, got, why, tc.want)
		}
	}
}
