package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/tally-ledger/tally/chain"
)

// VoteProtocol carries commit votes (DESIGN.md decision 10) from a
// validator to the leader: one request (an RLP list of chain.Vote) and a
// one-byte acknowledgement per stream. The leader assembles certificates
// from them; a vote that is lost is sent again by its validator.
const VoteProtocol = protocol.ID("/tally/vote/1.0.0")

// Bounds of the vote protocol.
const (
	// MaxVotesPerMessage caps the votes in one message.
	MaxVotesPerMessage = 256
	// MaxVoteBytes caps one message: a vote encodes to about 145 bytes,
	// so 256 of them fit with room to spare.
	MaxVoteBytes = 64 << 10
	// voteTimeout bounds one message's round trip.
	voteTimeout = 5 * time.Second
	// voteAck is the acknowledgement byte.
	voteAck = 1
)

// Vote protocol errors.
var (
	// ErrVoteMessage: a vote message is malformed or over a bound.
	ErrVoteMessage = errors.New("bad vote message")
)

// VoteHandler receives the votes of one message from peer from. It runs
// in the stream's goroutine: it should not block for long.
type VoteHandler func(from peer.ID, votes []*chain.Vote)

// ServeVotes makes h accept vote messages and hand them to handle. A
// malformed or oversized message resets the stream (logged at debug); it
// never reaches handle. Only peers the connection gater admits (the
// consortium) can open a stream at all.
func ServeVotes(h host.Host, handle VoteHandler, log *slog.Logger) {
	h.SetStreamHandler(VoteProtocol, func(s network.Stream) {
		defer s.Close()
		s.SetDeadline(time.Now().Add(voteTimeout))
		from := s.Conn().RemotePeer()
		votes, err := readVotes(s)
		if err != nil {
			log.Debug("bad vote message", "peer", from, "err", err)
			s.Reset()
			return
		}
		handle(from, votes)
		if _, err := s.Write([]byte{voteAck}); err != nil {
			log.Debug("write vote ack", "peer", from, "err", err)
		}
	})
}

// SendVotes sends votes to peer p in one message and waits for its
// acknowledgement. At most MaxVotesPerMessage votes fit in one message.
func SendVotes(ctx context.Context, h host.Host, p peer.ID, votes []*chain.Vote) error {
	enc, err := EncodeVotes(votes)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, voteTimeout)
	defer cancel()
	s, err := h.NewStream(ctx, p, VoteProtocol)
	if err != nil {
		return fmt.Errorf("send votes to %s: %w", p, err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(voteTimeout))
	bw := bufio.NewWriter(s)
	var n [binary.MaxVarintLen64]byte
	bw.Write(n[:binary.PutUvarint(n[:], uint64(len(enc)))])
	bw.Write(enc)
	if err := bw.Flush(); err != nil {
		s.Reset()
		return fmt.Errorf("send votes to %s: %w", p, err)
	}
	if err := s.CloseWrite(); err != nil {
		s.Reset()
		return fmt.Errorf("send votes to %s: %w", p, err)
	}
	var ack [1]byte
	if _, err := io.ReadFull(s, ack[:]); err != nil || ack[0] != voteAck {
		s.Reset()
		return fmt.Errorf("send votes to %s: no acknowledgement: %v", p, err)
	}
	return nil
}

// EncodeVotes encodes one vote message body, refusing one over the bounds.
func EncodeVotes(votes []*chain.Vote) ([]byte, error) {
	if len(votes) > MaxVotesPerMessage {
		return nil, fmt.Errorf("%w: %d votes, at most %d", ErrVoteMessage, len(votes), MaxVotesPerMessage)
	}
	if votes == nil {
		votes = []*chain.Vote{}
	}
	enc, err := rlp.EncodeToBytes(votes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrVoteMessage, err)
	}
	if len(enc) > MaxVoteBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrVoteMessage, len(enc), MaxVoteBytes)
	}
	return enc, nil
}

// DecodeVotes decodes one vote message body: an RLP list of at most
// MaxVotesPerMessage votes, each with a 65-byte signature, in at most
// MaxVoteBytes. Whether the votes are valid is the receiver's question.
func DecodeVotes(b []byte) ([]*chain.Vote, error) {
	if len(b) > MaxVoteBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrVoteMessage, len(b), MaxVoteBytes)
	}
	var votes []*chain.Vote
	if err := rlp.DecodeBytes(b, &votes); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrVoteMessage, err)
	}
	if len(votes) > MaxVotesPerMessage {
		return nil, fmt.Errorf("%w: %d votes, at most %d", ErrVoteMessage, len(votes), MaxVotesPerMessage)
	}
	for i, v := range votes {
		if v == nil || len(v.Sig) != 65 {
			return nil, fmt.Errorf("%w: vote %d: signature is not 65 bytes", ErrVoteMessage, i)
		}
	}
	return votes, nil
}

// readVotes reads one length-prefixed vote message.
func readVotes(r io.Reader) ([]*chain.Vote, error) {
	br := bufio.NewReader(io.LimitReader(r, MaxVoteBytes+binary.MaxVarintLen64))
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("%w: length: %v", ErrVoteMessage, err)
	}
	if n > MaxVoteBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrVoteMessage, n, MaxVoteBytes)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return nil, fmt.Errorf("%w: body: %v", ErrVoteMessage, err)
	}
	return DecodeVotes(b)
}
