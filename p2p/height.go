package p2p

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// HeightProtocol lets the leader ask a peer for its applied height, so the
// builder can slow down when the slowest voter trails: a follower whose FSM
// falls behind backs up into Raft, which then calls elections.
const HeightProtocol = protocol.ID("/tally/height/1.0.0")

// heightTimeout bounds one height query.
const heightTimeout = 2 * time.Second

// ServeHeight makes h answer height queries with height().
func ServeHeight(h host.Host, height func() uint64) {
	h.SetStreamHandler(HeightProtocol, func(s network.Stream) {
		defer s.Close()
		s.SetDeadline(time.Now().Add(heightTimeout))
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], height())
		s.Write(buf[:])
	})
}

// QueryHeight asks peer p for its applied height.
func QueryHeight(ctx context.Context, h host.Host, p peer.ID) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, heightTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, p, HeightProtocol)
	if err != nil {
		return 0, fmt.Errorf("p2p: height of %s: %w", p, err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(heightTimeout))
	var buf [8]byte
	if _, err := io.ReadFull(s, buf[:]); err != nil {
		s.Reset()
		return 0, fmt.Errorf("p2p: height of %s: %w", p, err)
	}
	return binary.BigEndian.Uint64(buf[:]), nil
}
