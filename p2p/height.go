package p2p

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// HeightProtocol lets the leader ask a peer for its applied height, so the
// builder can slow down when the slowest voter trails: a follower whose FSM
// falls behind backs up into Raft, which then calls elections.
const HeightProtocol = protocol.ID("/tally/height/1.0.0")

// heightTimeout bounds one height query.
const heightTimeout = 2 * time.Second

// ServeHeight makes h answer height queries with height(): the applied
// height, then one flags byte (heightVoting: this node grants votes; a
// fresh member does not until it caught up). A reader of the previous
// release reads the height alone and ignores the rest.
func ServeHeight(h host.Host, height func() (uint64, bool)) {
	h.SetStreamHandler(HeightProtocol, func(s network.Stream) {
		defer s.Close()
		s.SetDeadline(time.Now().Add(heightTimeout))
		applied, voting := height()
		var buf [9]byte
		binary.BigEndian.PutUint64(buf[:8], applied)
		if voting {
			buf[8] = heightVoting
		}
		s.Write(buf[:])
	})
}

// heightVoting is the height answer's flag for a node that grants votes.
const heightVoting = 1

// QueryHeight asks peer p for its applied height and whether it grants
// votes. A peer of the previous release answers the height alone; it is
// taken to grant votes, as every node of that release did.
func QueryHeight(ctx context.Context, h host.Host, p peer.ID) (height uint64, voting bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, heightTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, p, HeightProtocol)
	if err != nil {
		return 0, false, fmt.Errorf("p2p: height of %s: %w", p, err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(heightTimeout))
	var buf [9]byte
	if _, err := io.ReadFull(s, buf[:8]); err != nil {
		s.Reset()
		return 0, false, fmt.Errorf("p2p: height of %s: %w", p, err)
	}
	height = binary.BigEndian.Uint64(buf[:8])
	switch _, err := io.ReadFull(s, buf[8:]); {
	case err == io.EOF:
		return height, true, nil
	case err != nil:
		s.Reset()
		return 0, false, fmt.Errorf("p2p: height of %s: flags: %w", p, err)
	case buf[8]&^heightVoting != 0:
		s.Reset()
		return 0, false, fmt.Errorf("p2p: height of %s: unknown flags %#x", p, buf[8])
	}
	return height, buf[8]&heightVoting != 0, nil
}

// MemberProtocol lets a node that found its data directory empty ask a
// peer, before it starts Raft, for the peer's applied height, whether the
// peer's Raft ever saw it running (the asker is the stream's
// authenticated remote peer), whether the peer's Raft itself ran, whether
// the asker is a voter of the peer's Raft configuration, and who the
// voters of that configuration are, with the addresses the peer has for
// them: a node whose directory was lost with its nodekey restored must
// not bootstrap or join again (docs/cluster.md, consensus.DecideBootstrap),
// and a validator added by governance learns the current validators this
// way (its own state is at genesis).
//
// The answer is an RLP list [height, flags, [[peer id, [address, ...]],
// ...]]: flags holds memberKnows, memberRan and memberVoter (other bits
// are refused); at most MaxMemberVoters voters of at most MaxMemberAddrs
// addresses of at most MaxMemberAddrLen bytes each, MaxMemberAnswer bytes
// in all.
const MemberProtocol = protocol.ID("/tally/member/2.0.0")

// MemberProtocolV1 is the member protocol of the releases before the
// voter set: its answer is 9 bytes, the height (big-endian uint64) and
// the flags byte. A node serves both and asks in the newest its peer
// speaks (libp2p's multistream negotiation), so that nodes of either
// build answer each other during a rolling upgrade.
const MemberProtocolV1 = protocol.ID("/tally/member/1.0.0")

// Bounds of a member answer (MemberProtocol). A consortium is tens of
// nodes; an answer at every bound (100 voters of 4 addresses of 128
// bytes) still fits MaxMemberAnswer.
const (
	// MaxMemberVoters caps the voters one answer lists.
	MaxMemberVoters = 100
	// MaxMemberAddrs caps the addresses given for one voter; an answerer
	// sends its first MaxMemberAddrs.
	MaxMemberAddrs = 4
	// MaxMemberAddrLen caps one address (binary multiaddr); an answerer
	// leaves longer ones out.
	MaxMemberAddrLen = 128
	// MaxMemberAnswer caps one answer's bytes; the asker reads no more.
	MaxMemberAnswer = 64 << 10
	// maxPeerIDLen caps a peer id in an answer (a secp256k1 key's is 39
	// bytes).
	maxPeerIDLen = 64
)

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
	// HasVoters: the answer lists the voters (MemberProtocol); a peer
	// that speaks only MemberProtocolV1 does not.
	HasVoters bool
	// Voters are the voters of the peer's latest Raft configuration
	// (none while its Raft has none), each with the addresses the peer
	// has for it.
	Voters []peer.AddrInfo
}

// ServeMember makes h answer member queries, in both versions of the
// protocol, with answer(asker); when its ok is false (the node cannot
// tell yet), the stream is reset unanswered. An answer over a bound
// (more than MaxMemberVoters voters) is not sent either: the asker would
// refuse it.
func ServeMember(h host.Host, answer func(asker peer.ID) (a MemberAnswer, ok bool)) {
	serve := func(encode func(MemberAnswer) ([]byte, error)) network.StreamHandler {
		return func(s network.Stream) {
			defer s.Close()
			s.SetDeadline(time.Now().Add(heightTimeout))
			a, ok := answer(s.Conn().RemotePeer())
			if !ok {
				s.Reset()
				return
			}
			b, err := encode(a)
			if err != nil {
				s.Reset()
				return
			}
			s.Write(b)
		}
	}
	h.SetStreamHandler(MemberProtocol, serve(encodeMember))
	h.SetStreamHandler(MemberProtocolV1, serve(func(a MemberAnswer) ([]byte, error) { return encodeMemberV1(a), nil }))
}

// QueryMember asks peer p the member question, within ctx's deadline
// (heightTimeout if it has none), in MemberProtocol if p speaks it and
// in MemberProtocolV1 otherwise (then the answer has no voters).
func QueryMember(ctx context.Context, h host.Host, p peer.ID) (MemberAnswer, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, heightTimeout)
		defer cancel()
	}
	s, err := h.NewStream(ctx, p, MemberProtocol, MemberProtocolV1)
	if err != nil {
		return MemberAnswer{}, fmt.Errorf("p2p: member query to %s: %w", p, err)
	}
	defer s.Close()
	deadline, _ := ctx.Deadline()
	s.SetDeadline(deadline)
	var a MemberAnswer
	if s.Protocol() == MemberProtocolV1 {
		var buf [9]byte
		if _, err = io.ReadFull(s, buf[:]); err == nil {
			a, err = decodeMemberV1(buf)
		}
	} else {
		var b []byte
		if b, err = io.ReadAll(io.LimitReader(s, MaxMemberAnswer+1)); err == nil {
			a, err = DecodeMember(b)
		}
	}
	if err != nil {
		s.Reset()
		return MemberAnswer{}, fmt.Errorf("p2p: member query to %s: %w", p, err)
	}
	return a, nil
}

// memberFlagsOf is a's flags byte.
func memberFlagsOf(a MemberAnswer) byte {
	var f byte
	for _, b := range []struct {
		set  bool
		flag byte
	}{{a.Knows, memberKnows}, {a.Ran, memberRan}, {a.Voter, memberVoter}} {
		if b.set {
			f |= b.flag
		}
	}
	return f
}

// memberWire is a member answer on the wire (MemberProtocol).
type memberWire struct {
	Height uint64
	Flags  uint8
	Voters []memberWireVoter
}

type memberWireVoter struct {
	ID    []byte
	Addrs [][]byte
}

// encodeMember encodes a for MemberProtocol: its first MaxMemberAddrs
// addresses of at most MaxMemberAddrLen bytes per voter; more than
// MaxMemberVoters voters is an error.
func encodeMember(a MemberAnswer) ([]byte, error) {
	if len(a.Voters) > MaxMemberVoters {
		return nil, fmt.Errorf("p2p: member answer: %d voters, at most %d", len(a.Voters), MaxMemberVoters)
	}
	w := memberWire{Height: a.Height, Flags: memberFlagsOf(a), Voters: make([]memberWireVoter, 0, len(a.Voters))}
	for _, v := range a.Voters {
		wv := memberWireVoter{ID: []byte(v.ID)}
		for _, addr := range v.Addrs {
			if b := addr.Bytes(); len(b) <= MaxMemberAddrLen && len(wv.Addrs) < MaxMemberAddrs {
				wv.Addrs = append(wv.Addrs, b)
			}
		}
		w.Voters = append(w.Voters, wv)
	}
	return rlp.EncodeToBytes(&w)
}

// DecodeMember decodes a MemberProtocol answer: every bound is checked,
// each peer id and address must parse, and a voter listed twice is
// refused.
func DecodeMember(b []byte) (MemberAnswer, error) {
	if len(b) > MaxMemberAnswer {
		return MemberAnswer{}, fmt.Errorf("bad answer: over %d bytes", MaxMemberAnswer)
	}
	var w memberWire
	if err := rlp.DecodeBytes(b, &w); err != nil {
		return MemberAnswer{}, fmt.Errorf("bad answer: %w", err)
	}
	if w.Flags&^memberFlags != 0 {
		return MemberAnswer{}, fmt.Errorf("bad answer flags %#x", w.Flags)
	}
	if len(w.Voters) > MaxMemberVoters {
		return MemberAnswer{}, fmt.Errorf("bad answer: %d voters, at most %d", len(w.Voters), MaxMemberVoters)
	}
	a := MemberAnswer{Height: w.Height, Knows: w.Flags&memberKnows != 0, Ran: w.Flags&memberRan != 0,
		Voter: w.Flags&memberVoter != 0, HasVoters: true, Voters: make([]peer.AddrInfo, 0, len(w.Voters))}
	seen := make(map[peer.ID]bool, len(w.Voters))
	for i, v := range w.Voters {
		if len(v.ID) > maxPeerIDLen {
			return MemberAnswer{}, fmt.Errorf("bad answer: voter %d: peer id of %d bytes, at most %d", i, len(v.ID), maxPeerIDLen)
		}
		id, err := peer.IDFromBytes(v.ID)
		if err != nil {
			return MemberAnswer{}, fmt.Errorf("bad answer: voter %d: %w", i, err)
		}
		if seen[id] {
			return MemberAnswer{}, fmt.Errorf("bad answer: voter %s listed twice", id)
		}
		seen[id] = true
		if len(v.Addrs) > MaxMemberAddrs {
			return MemberAnswer{}, fmt.Errorf("bad answer: voter %s: %d addresses, at most %d", id, len(v.Addrs), MaxMemberAddrs)
		}
		ai := peer.AddrInfo{ID: id}
		for _, ab := range v.Addrs {
			if len(ab) > MaxMemberAddrLen {
				return MemberAnswer{}, fmt.Errorf("bad answer: voter %s: address of %d bytes, at most %d", id, len(ab), MaxMemberAddrLen)
			}
			addr, err := ma.NewMultiaddrBytes(ab)
			if err != nil {
				return MemberAnswer{}, fmt.Errorf("bad answer: voter %s: %w", id, err)
			}
			ai.Addrs = append(ai.Addrs, addr)
		}
		a.Voters = append(a.Voters, ai)
	}
	return a, nil
}

// encodeMemberV1 encodes a for MemberProtocolV1 (no voters).
func encodeMemberV1(a MemberAnswer) []byte {
	var buf [9]byte
	binary.BigEndian.PutUint64(buf[:8], a.Height)
	buf[8] = memberFlagsOf(a)
	return buf[:]
}

// decodeMemberV1 decodes a MemberProtocolV1 answer.
func decodeMemberV1(buf [9]byte) (MemberAnswer, error) {
	if buf[8]&^memberFlags != 0 {
		return MemberAnswer{}, fmt.Errorf("bad answer flags %#x", buf[8])
	}
	return MemberAnswer{Height: binary.BigEndian.Uint64(buf[:8]), Knows: buf[8]&memberKnows != 0,
		Ran: buf[8]&memberRan != 0, Voter: buf[8]&memberVoter != 0}, nil
}

// AllowAsked lets this host reach the voters a member answer named
// (ais), while the node waits to start Raft: each is added to the allow
// list (the node's state is at genesis, so its list does not hold a
// validator added since) and its first MaxMemberAddrs addresses to the
// peerstore for libp2p's TempAddrTTL (the asker dials them within its
// round). The allow list grows this way to MaxDialTargets peers at most,
// whatever the answers say; the list the node sets once Raft runs
// (SetAllowed) replaces it.
func (h *Host) AllowAsked(ais []peer.AddrInfo) {
	var took []peer.AddrInfo
	h.pol.mu.Lock()
	for _, ai := range ais {
		if ai.ID == h.ID() {
			continue
		}
		if _, ok := h.pol.allowed[ai.ID]; !ok {
			if len(h.pol.allowed) >= MaxDialTargets {
				continue
			}
			h.pol.allowed[ai.ID] = struct{}{}
		}
		took = append(took, ai)
	}
	h.pol.mu.Unlock()
	for _, ai := range took {
		if len(ai.Addrs) > MaxMemberAddrs {
			ai.Addrs = ai.Addrs[:MaxMemberAddrs]
		}
		h.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
	}
}
