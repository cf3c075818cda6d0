package node

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

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
	db, err := store.Open(t.TempDir(), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.InitGenesis(genesis.Dev()); err != nil {
		t.Fatal(err)
	}
	n := &Node{db: db}
	asker := peer.ID("asker")
	if a, ok := n.memberAnswer(asker); ok {
		t.Fatalf("a node starting Raft answered %+v", a)
	}
	n.asking.Store(true)
	if a, ok := n.memberAnswer(asker); !ok || a != (p2p.MemberAnswer{}) {
		t.Fatalf("a node waiting to start Raft answered %+v, %v; want at genesis, knowing nobody", a, ok)
	}
}
