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

// MemberProtocol lets a node that found its data directory empty ask a
// peer, before it starts Raft, for the peer's applied height, whether the
// peer's Raft ever saw it running (the asker is the stream's
// authenticated remote peer), whether the peer's Raft itself ran, and
// whether the asker is a voter of the peer's Raft configuration: a node
// whose directory was lost with its nodekey restored must not bootstrap
// or join again (docs/cluster.md, consensus.DecideBootstrap).
//
// The answer is 9 bytes: the height (big-endian uint64), then a flags
// byte (memberKnows, memberRan, memberVoter); other bits are refused.
const MemberProtocol = protocol.ID("/tally/member/1.0.0")

// The flags of a member answer.
const (
	memberKnows = 1 << iota
	memberRan
	memberVoter
	memberFlags = memberKnows | memberRan | memberVoter
)

// MemberAnswer is a peer's answer to a member query.
type MemberAnswer struct {
	// Height is the peer's applied height.
	Height uint64
	// Knows: the peer's Raft saw the asker's running.
	Knows bool
	// Ran: the peer's Raft has a term or a log.
	Ran bool
	// Voter: the asker is a voter of the peer's Raft configuration.
	Voter bool
}

// ServeMember makes h answer member queries with answer(asker); when its
// ok is false (the node cannot tell yet), the stream is reset unanswered.
func ServeMember(h host.Host, answer func(asker peer.ID) (a MemberAnswer, ok bool)) {
	h.SetStreamHandler(MemberProtocol, func(s network.Stream) {
		defer s.Close()
		s.SetDeadline(time.Now().Add(heightTimeout))
		a, ok := answer(s.Conn().RemotePeer())
		if !ok {
			s.Reset()
			return
		}
		var buf [9]byte
		binary.BigEndian.PutUint64(buf[:8], a.Height)
		for _, f := range []struct {
			set  bool
			flag byte
		}{{a.Knows, memberKnows}, {a.Ran, memberRan}, {a.Voter, memberVoter}} {
			if f.set {
				buf[8] |= f.flag
			}
		}
		s.Write(buf[:])
	})
}

// QueryMember asks peer p the member question, within ctx's deadline
// (heightTimeout if it has none).
func QueryMember(ctx context.Context, h host.Host, p peer.ID) (MemberAnswer, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, heightTimeout)
		defer cancel()
	}
	s, err := h.NewStream(ctx, p, MemberProtocol)
	if err != nil {
		return MemberAnswer{}, fmt.Errorf("p2p: member query to %s: %w", p, err)
	}
	defer s.Close()
	deadline, _ := ctx.Deadline()
	s.SetDeadline(deadline)
	var buf [9]byte
	if _, err := io.ReadFull(s, buf[:]); err != nil {
		s.Reset()
		return MemberAnswer{}, fmt.Errorf("p2p: member query to %s: %w", p, err)
	}
	return decodeMember(p, buf)
}

// decodeMember decodes a member answer from p.
func decodeMember(p peer.ID, buf [9]byte) (MemberAnswer, error) {
	if buf[8]&^memberFlags != 0 {
		return MemberAnswer{}, fmt.Errorf("p2p: member query to %s: bad answer flags %#x", p, buf[8])
	}
	return MemberAnswer{Height: binary.BigEndian.Uint64(buf[:8]), Knows: buf[8]&memberKnows != 0,
		Ran: buf[8]&memberRan != 0, Voter: buf[8]&memberVoter != 0}, nil
}
