package p2p

import (
	"errors"
	"fmt"

	libp2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tally-ledger/tally/crypto"
)

// compressedPubKeyLen is the size of a compressed secp256k1 public key, the
// form the genesis file stores validator keys in.
const compressedPubKeyLen = 33

// ErrBadPublicKey is returned for a public key that is not a 33-byte
// compressed secp256k1 point.
var ErrBadPublicKey = errors.New("p2p: bad public key")

// libp2pKey converts a Tally node key into libp2p's representation of the
// same secp256k1 scalar, so the node signs its libp2p handshakes with the key
// the genesis file names.
func libp2pKey(k *crypto.PrivateKey) (libp2pcrypto.PrivKey, error) {
	if k == nil {
		return nil, errors.New("p2p: nil node key")
	}
	b := k.Bytes()
	defer clear(b)
	priv, err := libp2pcrypto.UnmarshalSecp256k1PrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("p2p: node key: %w", err)
	}
	return priv, nil
}

// PeerIDFromKey returns the libp2p peer ID of a Tally node key. It equals
// PeerIDFromPublicKey of the key's compressed public key, so a node's peer ID
// can be computed from the genesis file alone.
func PeerIDFromKey(k *crypto.PrivateKey) (peer.ID, error) {
	priv, err := libp2pKey(k)
	if err != nil {
		return "", err
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("p2p: peer id from key: %w", err)
	}
	return id, nil
}

// PeerIDFromPublicKey returns the libp2p peer ID of a 33-byte compressed
// secp256k1 public key (a genesis validator's publicKey). Only the compressed
// form is accepted so that one key has exactly one accepted encoding.
func PeerIDFromPublicKey(compressed []byte) (peer.ID, error) {
	if len(compressed) != compressedPubKeyLen || (compressed[0] != 0x02 && compressed[0] != 0x03) {
		return "", fmt.Errorf("%w: need %d bytes compressed (0x02/0x03 prefix), got %d bytes", ErrBadPublicKey, compressedPubKeyLen, len(compressed))
	}
	pub, err := libp2pcrypto.UnmarshalSecp256k1PublicKey(compressed)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadPublicKey, err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("p2p: peer id from public key: %w", err)
	}
	return id, nil
}
