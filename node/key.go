package node

import (
	"fmt"
	"strings"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/durable"
)

// LoadOrCreateKey reads the node key (hex, mode 0600) from path, creating it
// on first start: the dev validator key for a dev node, a random key otherwise.
func LoadOrCreateKey(fsys vfs.FS, path string, dev bool) (*crypto.PrivateKey, error) {
	data, err := durable.ReadFile(fsys, path)
	if err == nil {
		k, err := crypto.HexToPrivateKey(strings.TrimSpace(string(data)))
		if err != nil {
			return nil, fmt.Errorf("node key %s: %w", path, err)
		}
		return k, nil
	}
	if !oserror.IsNotExist(err) {
		return nil, fmt.Errorf("node key: %w", err)
	}
	var k *crypto.PrivateKey
	if dev {
		k, err = genesis.DevKey(genesis.DevValidatorIndex)
	} else {
		k, err = crypto.GenerateKey()
	}
	if err != nil {
		return nil, fmt.Errorf("create node key: %w", err)
	}
	if err := writeKey(fsys, path, k); err != nil {
		return nil, err
	}
	return k, nil
}

// writeKey writes k as a node key file at path, durably: a power cut
// right after the first start must not take the node's identity (its
// peer ID, which the other nodes and the genesis name) while the Raft
// state written under it survives.
func writeKey(fsys vfs.FS, path string, k *crypto.PrivateKey) error {
	if err := durable.WriteFile(fsys, path, []byte(hexutil.Encode(k.Bytes())+"\n"), 0o600); err != nil {
		return fmt.Errorf("node key: %w", err)
	}
	return nil
}
