package p2p

import (
	"bytes"
	"errors"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

func compress(uncompressed []byte) []byte {
	return append([]byte{2 + uncompressed[64]&1}, uncompressed[1:33]...)
}

func TestPeerIDFromKeyMatchesPublicKey(t *testing.T) {
	seen := map[string]bool{}
	for range 5 {
		k := newKey(t)
		fromKey, err := PeerIDFromKey(k)
		if err != nil {
			t.Fatalf("PeerIDFromKey: %v", err)
		}
		fromPub, err := PeerIDFromPublicKey(compress(k.PublicKeyBytes()))
		if err != nil {
			t.Fatalf("PeerIDFromPublicKey: %v", err)
		}
		if fromKey != fromPub {
			t.Fatalf("PeerIDFromKey = %s, PeerIDFromPublicKey = %s", fromKey, fromPub)
		}
		if seen[fromKey.String()] {
			t.Fatalf("two keys gave peer id %s", fromKey)
		}
		seen[fromKey.String()] = true
		pub, err := fromKey.ExtractPublicKey()
		if err != nil {
			t.Fatalf("ExtractPublicKey: %v", err)
		}
		raw, err := pub.Raw()
		if err != nil || !bytes.Equal(raw, compress(k.PublicKeyBytes())) {
			t.Fatalf("peer id embeds %x, %v; want the compressed node key", raw, err)
		}
	}
}

func TestPeerIDFromPublicKeyMalformed(t *testing.T) {
	pub := newKey(t).PublicKeyBytes()
	good := compress(pub)
	offCurve := append([]byte{0x02}, bytes.Repeat([]byte{0xff}, 32)...) // x >= p
	badPrefix := append([]byte{0x04}, good[1:]...)
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"32 bytes", good[1:]},
		{"34 bytes", append(append([]byte{}, good...), 0)},
		{"uncompressed 65 bytes", pub},
		{"prefix 0x04", badPrefix},
		{"prefix 0x00", append([]byte{0}, good[1:]...)},
		{"x not on curve", offCurve},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := PeerIDFromPublicKey(tc.in)
			if !errors.Is(err, ErrBadPublicKey) {
				t.Fatalf("PeerIDFromPublicKey(%x) = %s, %v; want ErrBadPublicKey", tc.in, id, err)
			}
		})
	}
	if _, err := PeerIDFromKey(nil); err == nil {
		t.Fatal("PeerIDFromKey(nil) succeeded")
	}
}

func TestHostIDIsKeyPeerID(t *testing.T) {
	k := newKey(t)
	h := newHost(t, k, []string{tcpLoopback})
	if want := peerID(t, k); h.ID() != want {
		t.Fatalf("host ID %s, want %s", h.ID(), want)
	}
	addrs := h.Addrs()
	if len(addrs) == 0 {
		t.Fatal("no addresses")
	}
	for _, a := range addrs {
		if v, err := a.ValueForProtocol(ma.P_P2P); err != nil || v != h.ID().String() {
			t.Errorf("address %s does not end in /p2p/%s", a, h.ID())
		}
	}
}
