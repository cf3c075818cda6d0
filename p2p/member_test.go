package p2p

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestMemberQuery: a peer answers a member query with its height and
// whether it knows the asker, judged on the stream's authenticated remote
// peer (the asker cannot ask about another node); a peer that does not
// serve the protocol gives no answer, within the caller's deadline.
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
	ServeMember(a.Libp2p(), func(asker peer.ID) (uint64, bool) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, asker)
		return 42, asker == idb
	})
	addPeers(t, b, a)
	addPeers(t, c, a)
	addPeers(t, a, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, knows, err := QueryMember(ctx, b.Libp2p(), ida)
	if err != nil || h != 42 || !knows {
		t.Fatalf("b's query: %d, %v, %v; want 42, known", h, knows, err)
	}
	h, knows, err = QueryMember(ctx, c.Libp2p(), ida)
	if err != nil || h != 42 || knows {
		t.Fatalf("c's query: %d, %v, %v; want 42, not known", h, knows, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 2 || asked[0] != idb || asked[1] != idc {
		t.Fatalf("askers %v, want b then c", asked)
	}
	// c does not serve the protocol: no answer.
	short, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if _, _, err := QueryMember(short, a.Libp2p(), idc); err == nil {
		t.Fatal("a peer that does not serve the member protocol answered")
	}
}
