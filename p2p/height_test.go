package p2p

import (
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// TestHeightQuery: a node answers its applied height and whether it
// grants votes. The previous release's server answers 8 bytes (the height
// alone) and is taken to grant votes, as all of that release did; its
// reader takes the first 8 bytes of a new answer; an unknown flag is an
// error, not a guess.
func TestHeightQuery(t *testing.T) {
	a, b, _, idb := connectedPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, voting := range []bool{true, false} {
		ServeHeight(b.Libp2p(), func() (uint64, bool) { return 42, voting })
		h, v, err := QueryHeight(ctx, a.Libp2p(), idb)
		if err != nil || h != 42 || v != voting {
			t.Fatalf("new server (voting %v): %d, %v, %v; want 42, %v", voting, h, v, err, voting)
		}
	}

	// The previous release's reader, as it was: 8 bytes.
	s, err := a.Libp2p().NewStream(ctx, idb, HeightProtocol)
	if err != nil {
		t.Fatal(err)
	}
	var buf [8]byte
	if _, err := io.ReadFull(s, buf[:]); err != nil || binary.BigEndian.Uint64(buf[:]) != 42 {
		t.Fatalf("old reader: %x, %v; want height 42", buf, err)
	}
	s.Close()

	serveRaw := func(answer []byte) {
		b.Libp2p().SetStreamHandler(HeightProtocol, func(s network.Stream) {
			defer s.Close()
			s.Write(answer)
		})
	}
	old := binary.BigEndian.AppendUint64(nil, 7)
	serveRaw(old)
	if h, v, err := QueryHeight(ctx, a.Libp2p(), idb); err != nil || h != 7 || !v {
		t.Fatalf("old server: %d, %v, %v; want 7, voting", h, v, err)
	}
	for _, bad := range [][]byte{old[:5], append(old, 0x80)} {
		serveRaw(bad)
		if h, v, err := QueryHeight(ctx, a.Libp2p(), idb); err == nil {
			t.Fatalf("answer %x: %d, %v, no error", bad, h, v)
		}
	}
}
