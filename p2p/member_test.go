package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/rlp"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// TestMemberQuery: a peer answers a member query with its height, whether
// it knows the asker and whether the asker is a voter, judged on the
// stream's authenticated remote peer (the asker cannot ask about another
// node), whether its own Raft ran, and its voters with their addresses;
// a peer that does not serve the protocol gives no answer, within the
// caller's deadline.
func TestMemberQuery(t *testing.T) {
	ka, kb, kc := newKey(t), newKey(t), newKey(t)
	ida, idb, idc := peerID(t, ka), peerID(t, kb), peerID(t, kc)
	a := newHost(t, ka, []string{"/ip4/127.0.0.1/tcp/0"}, idb, idc)
	b := newHost(t, kb, []string{"/ip4/127.0.0.1/tcp/0"}, ida)
	c := newHost(t, kc, []string{"/ip4/127.0.0.1/tcp/0"}, ida)
	voters := []peer.AddrInfo{{ID: ida, Addrs: a.Addrs()}, {ID: idc, Addrs: c.Addrs()}}
	var (
		mu    sync.Mutex
		asked []peer.ID
	)
	ServeMember(a.Libp2p(), func(asker peer.ID) (MemberAnswer, bool) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, asker)
		return MemberAnswer{Height: 42, Knows: asker == idb, Ran: true, Voter: asker == idc, Voters: voters}, true
	})
	addPeers(t, b, a)
	addPeers(t, c, a)
	addPeers(t, a, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if got, err := QueryMember(ctx, b.Libp2p(), ida); err != nil ||
		!reflect.DeepEqual(got, MemberAnswer{Height: 42, Knows: true, Ran: true, HasVoters: true, Voters: voters}) {
		t.Fatalf("b's query: %+v, %v; want 42, known, ran, not a voter, the voters", got, err)
	}
	if got, err := QueryMember(ctx, c.Libp2p(), ida); err != nil ||
		!reflect.DeepEqual(got, MemberAnswer{Height: 42, Ran: true, Voter: true, HasVoters: true, Voters: voters}) {
		t.Fatalf("c's query: %+v, %v; want 42, not known, ran, a voter, the voters", got, err)
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

// TestMemberProtocolVersions: nodes of the build before the voter set
// speak only /tally/member/1.0.0 (9 bytes: height and flags). A new
// asker still gets their answer (without voters), and an old asker gets
// a new node's answer in the old form: neither counts the other silent
// during a rolling upgrade.
func TestMemberProtocolVersions(t *testing.T) {
	old, nw, idOld, idNew := connectedPair(t)
	// The old build's server, as it was: 9 bytes on /tally/member/1.0.0.
	old.Libp2p().SetStreamHandler(MemberProtocolV1, func(s network.Stream) {
		defer s.Close()
		var buf [9]byte
		binary.BigEndian.PutUint64(buf[:8], 7)
		buf[8] = memberRan | memberKnows
		s.Write(buf[:])
	})
	ServeMember(nw.Libp2p(), func(peer.ID) (MemberAnswer, bool) {
		return MemberAnswer{Height: 9, Ran: true, Voter: true, Voters: []peer.AddrInfo{{ID: idNew}}}, true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := QueryMember(ctx, nw.Libp2p(), idOld)
	if err != nil || !reflect.DeepEqual(got, MemberAnswer{Height: 7, Knows: true, Ran: true}) {
		t.Fatalf("new asker, old server: %+v, %v; want height 7, known, ran, no voter set", got, err)
	}
	// The old build's asker, as it was: /tally/member/1.0.0 only, 9 bytes.
	s, err := old.Libp2p().NewStream(ctx, idNew, MemberProtocolV1)
	if err != nil {
		t.Fatalf("old asker: %v", err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(s)
	if err != nil || len(b) != 9 || binary.BigEndian.Uint64(b[:8]) != 9 || b[8] != memberRan|memberVoter {
		t.Fatalf("old asker, new server: %x, %v; want 9 bytes: height 9, ran and voter", b, err)
	}
	// Upgraded, it speaks the new version (once identify told the asker:
	// libp2p picks the first protocol the peerstore lists for the peer).
	ServeMember(old.Libp2p(), func(peer.ID) (MemberAnswer, bool) { return MemberAnswer{Height: 3}, true })
	for {
		got, err = QueryMember(ctx, nw.Libp2p(), idOld)
		if err == nil && got.HasVoters && got.Height == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("both new: %+v, %v; want the voter set (empty)", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAllowAsked: a voter a member answer names, which the asker's allow
// list (its state at genesis) does not hold and whose address it did not
// have, can be asked once AllowAsked took it; before, the gater refuses
// the dial.
func TestAllowAsked(t *testing.T) {
	ka, kd := newKey(t), newKey(t)
	ida, idd := peerID(t, ka), peerID(t, kd)
	a := newHost(t, ka, []string{"/ip4/127.0.0.1/tcp/0"})
	d := newHost(t, kd, []string{"/ip4/127.0.0.1/tcp/0"}, ida)
	ServeMember(d.Libp2p(), func(peer.ID) (MemberAnswer, bool) { return MemberAnswer{Height: 5, Ran: true}, true })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := QueryMember(ctx, a.Libp2p(), idd); err == nil {
		t.Fatal("a peer off the allow list, of no known address, answered")
	}
	a.AllowAsked([]peer.AddrInfo{{ID: idd, Addrs: d.Addrs()}, {ID: ida}})
	if got, err := QueryMember(ctx, a.Libp2p(), idd); err != nil || got.Height != 5 {
		t.Fatalf("after AllowAsked: %+v, %v; want d's answer", got, err)
	}
	// However many peers answers name, round after round, the allow list
	// stops at MaxDialTargets.
	for range 3 {
		var many []peer.AddrInfo
		for range MaxMemberVoters {
			many = append(many, peer.AddrInfo{ID: peerID(t, newKey(t))})
		}
		a.AllowAsked(many)
	}
	a.pol.mu.RLock()
	n := len(a.pol.allowed)
	a.pol.mu.RUnlock()
	if n != MaxDialTargets || !a.Allowed(idd) {
		t.Fatalf("allow list of %d peers after 300 named (d allowed: %v); want %d, d kept", n, a.Allowed(idd), MaxDialTargets)
	}
}

// memberVoterAt is a voter of a valid peer id with n addresses of size
// bytes each.
func memberVoterAt(t *testing.T, n, size int) peer.AddrInfo {
	ai := peer.AddrInfo{ID: peerID(t, newKey(t))}
	for range n {
		var a ma.Multiaddr
		for l := size; l > 0 && (a == nil || len(a.Bytes()) != size); l-- {
			var err error
			if a, err = ma.NewMultiaddr("/dns4/" + strings.Repeat("a", l) + "/tcp/8645"); err != nil {
				t.Fatal(err)
			}
		}
		if len(a.Bytes()) != size {
			t.Fatalf("no address of %d bytes", size)
		}
		ai.Addrs = append(ai.Addrs, a)
	}
	return ai
}

// TestDecodeMember: every flag decodes on its own; an answer with a bit
// the protocol does not define is refused, not read as a known asker;
// every bound on what a peer sends is checked; an answer at every bound
// fits MaxMemberAnswer, so an honest peer's answer is never refused.
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
		got, err := decodeMemberV1([9]byte{7: 7, 8: tc.flags})
		if (err == nil) != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("v1 flags %#x: %+v, %v; want %+v (ok %v)", tc.flags, got, err, tc.want, tc.ok)
		}
		b, _ := rlp.EncodeToBytes(&memberWire{Height: 7, Flags: tc.flags})
		got, err = DecodeMember(b)
		if tc.ok {
			tc.want.HasVoters, tc.want.Voters = true, []peer.AddrInfo{}
		}
		if (err == nil) != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("flags %#x: %+v, %v; want %+v (ok %v)", tc.flags, got, err, tc.want, tc.ok)
		}
	}
	// Every flags byte: only the three defined bits pass.
	for f := range 256 {
		if _, err := decodeMemberV1([9]byte{8: byte(f)}); (err == nil) != (f < 8) {
			t.Errorf("v1 flags %#x: err %v", f, err)
		}
		b, _ := rlp.EncodeToBytes(&memberWire{Flags: uint8(f)})
		if _, err := DecodeMember(b); (err == nil) != (f < 8) {
			t.Errorf("flags %#x: err %v", f, err)
		}
	}

	// At every bound: it encodes, fits, and reads back as sent.
	full := MemberAnswer{Height: 1<<64 - 1, Knows: true, Ran: true, Voter: true, HasVoters: true}
	for range MaxMemberVoters {
		full.Voters = append(full.Voters, memberVoterAt(t, MaxMemberAddrs, MaxMemberAddrLen))
	}
	enc, err := encodeMember(full)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) > MaxMemberAnswer {
		t.Fatalf("an answer at every bound takes %d bytes, over MaxMemberAnswer (%d)", len(enc), MaxMemberAnswer)
	}
	if got, err := DecodeMember(enc); err != nil || !reflect.DeepEqual(got, full) {
		t.Fatalf("an answer at every bound did not read back: %v", err)
	}
	// The answerer keeps to the bounds: addresses past MaxMemberAddrs and
	// longer than MaxMemberAddrLen are left out; too many voters is no
	// answer.
	long := memberVoterAt(t, 1, MaxMemberAddrLen+20)
	many := memberVoterAt(t, MaxMemberAddrs+2, 20)
	enc, err = encodeMember(MemberAnswer{Voters: []peer.AddrInfo{long, many}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMember(enc)
	if err != nil || len(got.Voters[0].Addrs) != 0 || len(got.Voters[1].Addrs) != MaxMemberAddrs {
		t.Fatalf("an answer past the address bounds: %+v, %v; want the long address and the addresses past %d left out", got, err, MaxMemberAddrs)
	}
	if _, err := encodeMember(MemberAnswer{Voters: make([]peer.AddrInfo, MaxMemberVoters+1)}); err == nil {
		t.Fatal("an answer of too many voters was encoded")
	}

	// What a peer may send instead, each refused.
	v := memberVoterAt(t, 1, 20)
	idb, addrb := []byte(v.ID), v.Addrs[0].Bytes()
	wire := func(vs ...memberWireVoter) []byte {
		b, err := rlp.EncodeToBytes(&memberWire{Height: 1, Flags: memberRan, Voters: vs})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tooMany := make([]memberWireVoter, MaxMemberVoters+1)
	for i := range tooMany {
		tooMany[i] = memberWireVoter{ID: idb}
	}
	for _, tc := range []struct {
		name string
		b    []byte
		err  string
	}{
		{"empty", nil, "bad answer"},
		{"the old 9 bytes", encodeMemberV1(MemberAnswer{Height: 1}), "bad answer"},
		{"trailing bytes", append(wire(), 0), "bad answer"},
		{"over MaxMemberAnswer", bytes.Repeat([]byte{0}, MaxMemberAnswer+1), "over"},
		{"too many voters", wire(tooMany...), "at most 100"},
		{"too many addresses", wire(memberWireVoter{ID: idb, Addrs: [][]byte{addrb, addrb, addrb, addrb, addrb}}), "5 addresses"},
		{"a long address", wire(memberWireVoter{ID: idb, Addrs: [][]byte{make([]byte, MaxMemberAddrLen+1)}}), "address of 129 bytes"},
		{"a bad address", wire(memberWireVoter{ID: idb, Addrs: [][]byte{{0xff, 0xff}}}), "voter"},
		{"a bad peer id", wire(memberWireVoter{ID: []byte{1, 2, 3}}), "voter 0"},
		{"a long peer id", wire(memberWireVoter{ID: make([]byte, maxPeerIDLen+1)}), "peer id of 65 bytes"},
		{"a voter twice", wire(memberWireVoter{ID: idb}, memberWireVoter{ID: idb}), "listed twice"},
	} {
		if _, err := DecodeMember(tc.b); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
		}
	}
}

// FuzzDecodeMember: no answer a peer sends crashes the asker or passes
// a bound, and what decodes encodes back to what decodes the same.
func FuzzDecodeMember(f *testing.F) {
	k, _ := PeerIDFromKey(mustKey(f))
	addr, _ := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/8645")
	good, _ := encodeMember(MemberAnswer{Height: 5, Ran: true, Voters: []peer.AddrInfo{{ID: k, Addrs: []ma.Multiaddr{addr}}}})
	f.Add(good)
	f.Add(encodeMemberV1(MemberAnswer{Height: 1}))
	f.Add([]byte{0xc0})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodeMember(b)
		if err != nil {
			return
		}
		if len(a.Voters) > MaxMemberVoters {
			t.Fatalf("%d voters passed", len(a.Voters))
		}
		for _, v := range a.Voters {
			if len(v.Addrs) > MaxMemberAddrs {
				t.Fatalf("%d addresses passed", len(v.Addrs))
			}
		}
		enc, err := encodeMember(a)
		if err != nil {
			t.Fatalf("a decoded answer does not encode: %v", err)
		}
		again, err := DecodeMember(enc)
		if err != nil || !reflect.DeepEqual(again, a) {
			t.Fatalf("re-encoded answer reads %+v, %v; want %+v", again, err, a)
		}
	})
}
