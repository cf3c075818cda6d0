package node

import (
	"context"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/p2p"
	"github.com/tally-ledger/tally/store"
)

// TestMemberAnswerBeforeRaft: before its engine runs, a node answers the
// member question only while it is itself asking its peers (it has no
// Raft state then: at genesis, knowing nobody); a node opening an
// existing Raft state gives no answer rather than pass for one at
// genesis, which could let a lost validator bootstrap.
func TestMemberAnswerBeforeRaft(t *testing.T) {
	n := &Node{db: genesisDB(t)}
	asker := peer.ID("asker")
	if a, ok := n.memberAnswer(asker); ok {
		t.Fatalf("a node starting Raft answered %+v", a)
	}
	n.asking.Store(true)
	if a, ok := n.memberAnswer(asker); !ok || !reflect.DeepEqual(a, p2p.MemberAnswer{}) {
		t.Fatalf("a node waiting to start Raft answered %+v, %v; want at genesis, knowing nobody", a, ok)
	}
}

// genesisDB is a state database at the dev chain's genesis.
func genesisDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.InitGenesis(genesis.Dev()); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestAskPeersAsksTheVotersNamed: a node that is not a genesis validator
// (its state at genesis: a validator added by governance that lost its
// data directory) asks the genesis validator, which names the current
// voters with their addresses, and then asks the voter added since,
// which neither its allow list (from its state) nor its p2p.peers held.
func TestAskPeersAsksTheVotersNamed(t *testing.T) {
	gkey, err := genesis.DevKey(genesis.DevValidatorIndex)
	if err != nil {
		t.Fatal(err)
	}
	key := func() *crypto.PrivateKey {
		k, err := crypto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	akey, dkey := key(), key()
	id := func(k *crypto.PrivateKey) peer.ID {
		i, err := p2p.PeerIDFromKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	gid, aid, did := id(gkey), id(akey), id(dkey)
	host := func(k *crypto.PrivateKey, allowed ...peer.ID) *p2p.Host {
		h, err := p2p.New(p2p.Config{Key: k, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Allowed: allowed, DialTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	g, d := host(gkey, aid, did), host(dkey, aid, gid)
	voters := []peer.AddrInfo{{ID: gid, Addrs: g.Addrs()}, {ID: did, Addrs: d.Addrs()}}
	for _, h := range []*p2p.Host{g, d} {
		p2p.ServeMember(h.Libp2p(), func(peer.ID) (p2p.MemberAnswer, bool) {
			return p2p.MemberAnswer{Height: 9, Ran: true, Voters: voters}, true
		})
	}
	db := genesisDB(t)
	allowed, err := (&Node{db: db}).allowedPeers()
	if err != nil {
		t.Fatal(err)
	}
	gaddr := g.Addrs()[0].String() + "/p2p/" + gid.String()
	a, err := p2p.New(p2p.Config{Key: akey, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Allowed: allowed, Peers: []string{gaddr}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Allowed(did) {
		t.Fatal("the asker's allow list holds the voter added since: the test shows nothing")
	}
	n := &Node{db: db, host: a, key: akey, log: slog.New(slog.DiscardHandler)}
	n.cfg.P2P.Peers = []string{gaddr}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := map[string]bool{}
	for _, ans := range n.askPeers(ctx) {
		if ans.Err != nil {
			t.Errorf("%s: %v", ans.Peer, ans.Err)
			continue
		}
		if !ans.HasVoters || !reflect.DeepEqual(ans.Voters, []string{gid.String(), did.String()}) {
			t.Errorf("%s told voters %v (%v), want g and d", ans.Peer, ans.Voters, ans.HasVoters)
		}
		got[ans.Peer] = true
	}
	if !got[gid.String()] || !got[did.String()] || len(got) != 2 {
		t.Fatalf("answers from %v; want the genesis validator and the voter it named", got)
	}
}

// TestMemberAnswerTellsVoters: a running node's member answer lists the
// voters of its Raft configuration, itself among them, each with the
// addresses the asker dials (its own listen addresses, its peerstore's
// for the others), and has the asker as a voter only when it is one.
func TestMemberAnswerTellsVoters(t *testing.T) {
	nodes := startTestnet(t, 3)
	n := nodes[0]
	want := map[peer.ID]bool{}
	for _, o := range nodes {
		want[o.host.ID()] = true
	}
	check := func(asker peer.ID, voter bool) {
		t.Helper()
		a, ok := n.memberAnswer(asker)
		if !ok || !a.Ran || a.Voter != voter || len(a.Voters) != len(nodes) {
			t.Fatalf("answer to %s: %+v, %v; want ran, voter %v, %d voters", asker, a, ok, voter, len(nodes))
		}
		for _, v := range a.Voters {
			if !want[v.ID] || len(v.Addrs) == 0 {
				t.Errorf("voter %s with addresses %v: want one of the testnet's, with an address", v.ID, v.Addrs)
			}
		}
	}
	check(nodes[1].host.ID(), true)
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := p2p.PeerIDFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	check(stranger, false)
}
