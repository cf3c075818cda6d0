package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
)

// LoadOrCreateKey reads the node key (hex, mode 0600) from path, creating it
// on first start: the dev validator key for a dev node, a random key otherwise.
func LoadOrCreateKey(path string, dev bool) (*crypto.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		k, err := crypto.HexToPrivateKey(strings.TrimSpace(string(data)))
		if err != nil {
			return nil, fmt.Errorf("node key %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
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
	if err := os.WriteFile(path, []byte(hexutil.Encode(k.Bytes())+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write node key: %w", err)
	}
	return k, nil
}
