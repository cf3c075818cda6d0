package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/rlp"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/crypto"
)

func testVotes(t testing.TB, n int) []*chain.Vote {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*chain.Vote, n)
	for i := range out {
		v, err := chain.SignVote(7, uint64(i+1), common.Hash{byte(i)}, common.Hash{2}, k)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = v
	}
	return out
}

// votePair is a receiver serving votes and a sender allowed to reach it.
func votePair(t *testing.T) (recv, send *Host, got func() (peer.ID, [][]*chain.Vote)) {
	rk, sk := newKey(t), newKey(t)
	rid, sid := peerID(t, rk), peerID(t, sk)
	recv = newHost(t, rk, []string{tcpLoopback}, sid)
	send = newHost(t, sk, []string{tcpLoopback}, rid)
	addPeers(t, send, recv)
	var (
		mu   sync.Mutex
		from peer.ID
		msgs [][]*chain.Vote
	)
	ServeVotes(recv.Libp2p(), func(p peer.ID, votes []*chain.Vote) {
		mu.Lock()
		defer mu.Unlock()
		from = p
		msgs = append(msgs, votes)
	}, testLogger())
	return recv, send, func() (peer.ID, [][]*chain.Vote) {
		mu.Lock()
		defer mu.Unlock()
		return from, append([][]*chain.Vote(nil), msgs...)
	}
}

func TestSendVotes(t *testing.T) {
	recv, send, got := votePair(t)
	votes := testVotes(t, 3)
	if err := SendVotes(context.Background(), send.Libp2p(), recv.ID(), votes); err != nil {
		t.Fatal(err)
	}
	from, msgs := got()
	if from != send.ID() || len(msgs) != 1 || len(msgs[0]) != 3 {
		t.Fatalf("from %s, %d messages", from, len(msgs))
	}
	for i, v := range msgs[0] {
		if v.Height != votes[i].Height || v.Hash != votes[i].Hash || !bytes.Equal(v.Sig, votes[i].Sig) {
			t.Fatalf("vote %d changed in transit", i)
		}
	}
	// Too many votes are refused before anything is sent.
	if err := SendVotes(context.Background(), send.Libp2p(), recv.ID(), testVotes(t, MaxVotesPerMessage+1)); !errors.Is(err, ErrVoteMessage) {
		t.Fatalf("oversized batch: %v", err)
	}
	if _, msgs := got(); len(msgs) != 1 {
		t.Fatal("an oversized batch reached the handler")
	}
}

// TestBadVoteMessages: malformed input from an admitted peer resets the
// stream and never reaches the handler.
func TestBadVoteMessages(t *testing.T) {
	recv, send, got := votePair(t)
	frame := func(body []byte) []byte {
		var n [binary.MaxVarintLen64]byte
		return append(n[:binary.PutUvarint(n[:], uint64(len(body)))], body...)
	}
	shortSig, _ := rlp.EncodeToBytes([]*chain.Vote{{Height: 1, Sig: []byte{1, 2}}})
	tooMany, _ := rlp.EncodeToBytes(make([]chain.Vote, MaxVotesPerMessage+1))
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"empty stream", nil},
		{"length over the bound", []byte{0xff, 0xff, 0xff, 0xff, 0x7f}},
		{"truncated body", frame([]byte{0xc3, 1})[:3]},
		{"not rlp", frame([]byte{0xff, 0xfe})},
		{"short signature", frame(shortSig)},
		{"too many votes", frame(tooMany)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := send.Libp2p().NewStream(context.Background(), recv.ID(), VoteProtocol)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.SetDeadline(time.Now().Add(5 * time.Second))
			s.Write(tc.raw)
			s.CloseWrite()
			var ack [1]byte
			if _, err := io.ReadFull(s, ack[:]); err == nil {
				t.Fatal("acknowledged a bad message")
			}
		})
	}
	if _, msgs := got(); len(msgs) != 0 {
		t.Fatalf("%d bad messages reached the handler", len(msgs))
	}
	// The receiver still works.
	if err := SendVotes(context.Background(), send.Libp2p(), recv.ID(), testVotes(t, 1)); err != nil {
		t.Fatal(err)
	}
}

func TestVoteCodecBounds(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"empty list", []byte{0xc0}, true},
		{"empty input", nil, false},
		{"over the byte bound", make([]byte, MaxVoteBytes+1), false},
		{"a list of a string", []byte{0xc2, 0x81, 0x80}, false},
	} {
		_, err := DecodeVotes(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v", tc.name, err)
		}
	}
	enc, err := EncodeVotes(testVotes(t, MaxVotesPerMessage))
	if err != nil {
		t.Fatalf("a full message does not fit the byte bound: %v", err)
	}
	if v, err := DecodeVotes(enc); err != nil || len(v) != MaxVotesPerMessage {
		t.Fatalf("round trip: %d, %v", len(v), err)
	}
}

func FuzzDecodeVotes(f *testing.F) {
	enc, _ := rlp.EncodeToBytes([]*chain.Vote{{Height: 1, Sig: make([]byte, 65)}})
	f.Add(enc)
	f.Add([]byte{0xc0})
	f.Add([]byte{0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, data []byte) {
		votes, err := DecodeVotes(data)
		if err != nil {
			return
		}
		if len(votes) > MaxVotesPerMessage {
			t.Fatalf("%d votes accepted", len(votes))
		}
		again, err := EncodeVotes(votes)
		if err != nil {
			t.Fatalf("decoded votes do not encode: %v", err)
		}
		if _, err := DecodeVotes(again); err != nil {
			t.Fatalf("re-encoded votes do not decode: %v", err)
		}
		readVotes(bytes.NewReader(data))
	})
}

// TestVotesFromStrangerRefused: a peer the gater does not admit cannot
// deliver votes at all.
func TestVotesFromStrangerRefused(t *testing.T) {
	recv, _, got := votePair(t)
	stranger := newHost(t, newKey(t), []string{tcpLoopback}, recv.ID())
	addPeers(t, stranger, recv)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := SendVotes(ctx, stranger.Libp2p(), recv.ID(), testVotes(t, 1)); err == nil {
		t.Fatal("a stranger delivered votes")
	}
	if _, msgs := got(); len(msgs) != 0 {
		t.Fatal("a stranger's votes reached the handler")
	}
}
