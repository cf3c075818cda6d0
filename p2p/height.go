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

// MemberProtocol lets a validator that found its data directory empty ask
// a peer, before it bootstraps Raft, for the peer's applied height and
// whether the peer's Raft ever had an answer from it (the asker is the
// stream's authenticated remote peer): a node whose directory was lost
// with its nodekey restored must not bootstrap again (docs/cluster.md,
// consensus.DecideBootstrap).
const MemberProtocol = protocol.ID("/tally/member/1.0.0")

// ServeMember makes h answer member queries with answer(asker).
func ServeMember(h host.Host, answer func(asker peer.ID) (height uint64, knows bool)) {
	h.SetStreamHandler(MemberProtocol, func(s network.Stream) {
		defer s.Close()
		s.SetDeadline(time.Now().Add(heightTimeout))
		height, knows := answer(s.Conn().RemotePeer())
		var buf [9]byte
		binary.BigEndian.PutUint64(buf[:8], height)
		if knows {
			buf[8] = 1
		}
		s.Write(buf[:])
	})
}

// QueryMember asks peer p for its applied height and whether its Raft
// knows this node, within ctx's deadline (heightTimeout if it has none).
func QueryMember(ctx context.Context, h host.Host, p peer.ID) (height uint64, knows bool, err error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, heightTimeout)
		defer cancel()
	}
	s, err := h.NewStream(ctx, p, MemberProtocol)
	if err != nil {
		return 0, false, fmt.Errorf("p2p: member query to %s: %w", p, err)
	}
	defer s.Close()
	deadline, _ := ctx.Deadline()
	s.SetDeadline(deadline)
	var buf [9]byte
	if _, err := io.ReadFull(s, buf[:]); err != nil {
		s.Reset()
		return 0, false, fmt.Errorf("p2p: member query to %s: %w", p, err)
	}
	if buf[8] > 1 {
		return 0, false, fmt.Errorf("p2p: member query to %s: bad answer byte %d", p, buf[8])
	}
	return binary.BigEndian.Uint64(buf[:8]), buf[8] == 1, nil
}
