package p2p

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestMemberQuery: a peer answers a member query with its height, whether
// it knows the asker and whether the asker is a voter, judged on the
// stream's authenticated remote peer (the asker cannot ask about another
// node), and whether its own Raft ran; a peer that does not serve the
// protocol gives no answer, within the caller's deadline.
func TestMemberQuery(t *testing.T) {
	ka, kb, kc := newKey(t), newKey(t), newKey(t)
	ida, idb, idc := peerID(t, ka), peerID(t, kb), peerID(t, kc)
	a := newHost(t, ka, []string{"/ip4/127.0.0.1/tcp/0"}, idb, idc)
	b := newHost(t, kb, []string{"/ip4/127.0.0.1/tcp/0"}, ida)
	c := newHost(t, kc, []string{"/ip4/127.0.0.1/tcp/0"}, ida)
	var (
		mu    sync.Mutex
		asked []peer.ID
	)
	ServeMember(a.Libp2p(), func(asker peer.ID) (MemberAnswer, bool) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, asker)
		return MemberAnswer{Height: 42, Knows: asker == idb, Ran: true, Voter: asker == idc}, true
	})
	addPeers(t, b, a)
	addPeers(t, c, a)
	addPeers(t, a, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if got, err := QueryMember(ctx, b.Libp2p(), ida); err != nil || got != (MemberAnswer{Height: 42, Knows: true, Ran: true}) {
		t.Fatalf("b's query: %+v, %v; want 42, known, ran, not a voter", got, err)
	}
	if got, err := QueryMember(ctx, c.Libp2p(), ida); err != nil || got != (MemberAnswer{Height: 42, Ran: true, Voter: true}) {
		t.Fatalf("c's query: %+v, %v; want 42, not known, ran, a voter", got, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 2 || asked[0] != idb || asked[1] != idc {
		t.Fatalf("askers %v, want b then c", asked)
	}
	// c does not serve the protocol: no answer.
	short, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if _, err := QueryMember(short, a.Libp2p(), idc); err == nil {
		t.Fatal("a peer that does not serve the member protocol answered")
	}
}

// TestDecodeMember: every flag decodes on its own; an answer with a bit
// the protocol does not define is refused, not read as a known asker.
func TestDecodeMember(t *testing.T) {
	for _, tc := range []struct {
		flags byte
		want  MemberAnswer
		ok    bool
	}{
		{0, MemberAnswer{Height: 7}, true},
		{1, MemberAnswer{Height: 7, Knows: true}, true},
		{2, MemberAnswer{Height: 7, Ran: true}, true},
		{4, MemberAnswer{Height: 7, Voter: true}, true},
		{7, MemberAnswer{Height: 7, Knows: true, Ran: true, Voter: true}, true},
		{8, MemberAnswer{}, false},
		{0xff, MemberAnswer{}, false},
	} {
		buf := [9]byte{7: 7, 8: tc.flags}
		got, err := decodeMember("p", buf)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("flags %#x: %+v, %v; want %+v (ok %v)", tc.flags, got, err, tc.want, tc.ok)
		}
	}
	// Every flags byte: only the three defined bits pass.
	for f := range 256 {
		if _, err := decodeMember("p", [9]byte{8: byte(f)}); (err == nil) != (f < 8) {
			t.Errorf("flags %#x: err %v", f, err)
		}
	}
}
