package node

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2/vfs"
	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/pelletier/go-toml/v2"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/p2p"
)

// Testnet port layout: node i serves JSON-RPC on base+i, libp2p on
// base+100+i and the admin API on base+200+i.
const (
	testnetP2POffset   = 100
	testnetAdminOffset = 200
	// MaxTestnetNodes bounds `tally testnet --nodes`.
	MaxTestnetNodes = 16
	// DefaultTestnetBasePort is `tally testnet`'s default base: a thousand
	// above a dev node's JSON-RPC port (8545), so a testnet runs beside
	// `make run`.
	DefaultTestnetBasePort = 9545
	// DefaultTestnetAdminPort is the admin port of node 0 of a testnet on
	// the default base, where `tally admin` looks unless told otherwise.
	DefaultTestnetAdminPort = DefaultTestnetBasePort + testnetAdminOffset
)

// TestnetNode describes one generated node.
type TestnetNode struct {
	Dir       string
	Config    string
	PeerID    string
	RPC       string
	Admin     string
	P2P       string
	TokenFile string
}

// WriteTestnet writes an n-node local cluster into dir: dir/genesis.json
// (the dev accounts funded as in the dev genesis, the n nodes as
// validators) and for each node dir/nodeI/config.toml with its key in
// dir/nodeI/data/nodekey. dir must not hold a testnet already.
func WriteTestnet(dir string, n, basePort int) ([]TestnetNode, error) {
	if n < 1 || n > MaxTestnetNodes {
		return nil, fmt.Errorf("nodes: need 1..%d, have %d", MaxTestnetNodes, n)
	}
	if basePort < 1024 || basePort+testnetAdminOffset+n > 65535 {
		return nil, fmt.Errorf("base-port: %d leaves no room for %d nodes (need 1024..%d)", basePort, n, 65535-testnetAdminOffset-n)
	}
	if _, err := os.Stat(filepath.Join(dir, "genesis.json")); err == nil {
		return nil, fmt.Errorf("%s already holds a testnet (genesis.json exists)", dir)
	}
	g, err := genesis.BuildDev()
	if err != nil {
		return nil, err
	}
	g.Validators = nil
	keys := make([]*crypto.PrivateKey, n)
	nodes := make([]TestnetNode, n)
	for i := range keys {
		if keys[i], err = crypto.GenerateKey(); err != nil {
			return nil, err
		}
		g.Validators = append(g.Validators, genesis.Validator{
			Name:      fmt.Sprintf("node%d", i),
			PublicKey: ethcrypto.CompressPubkey(&keys[i].ECDSA().PublicKey),
		})
		id, err := p2p.PeerIDFromKey(keys[i])
		if err != nil {
			return nil, err
		}
		nodeDir := filepath.Join(dir, fmt.Sprintf("node%d", i))
		nodes[i] = TestnetNode{
			Dir:       nodeDir,
			Config:    filepath.Join(nodeDir, "config.toml"),
			PeerID:    id.String(),
			RPC:       fmt.Sprintf("http://127.0.0.1:%d", basePort+i),
			Admin:     fmt.Sprintf("http://127.0.0.1:%d", basePort+testnetAdminOffset+i),
			P2P:       fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", basePort+testnetP2POffset+i, id),
			TokenFile: filepath.Join(nodeDir, "admin.token"),
		}
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	genesisPath, err := filepath.Abs(filepath.Join(dir, "genesis.json"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(genesisPath, g.Indent(), 0o644); err != nil {
		return nil, err
	}
	for i, nd := range nodes {
		dataDir, err := filepath.Abs(filepath.Join(nd.Dir, "data"))
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, err
		}
		if err := writeKey(vfs.Default, filepath.Join(dataDir, "nodekey"), keys[i]); err != nil {
			return nil, err
		}
		cfg := DefaultConfig()
		cfg.DataDir = dataDir
		cfg.Genesis = genesisPath
		cfg.HTTP.Port = basePort + i
		cfg.P2P.Listen = []string{
			fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", basePort+testnetP2POffset+i),
			fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", basePort+testnetP2POffset+i),
		}
		for j, other := range nodes {
			if j != i {
				cfg.P2P.Peers = append(cfg.P2P.Peers, other.P2P)
			}
		}
		cfg.Admin.Port = basePort + testnetAdminOffset + i
		cfg.Admin.TokenFile, _ = filepath.Abs(nd.TokenFile)
		var buf bytes.Buffer
		fmt.Fprintf(&buf, "# Tally testnet node %d of %d (peer id %s). Keys: docs/config.md.\n", i, n, nd.PeerID)
		enc := toml.NewEncoder(&buf)
		if err := enc.Encode(cfg); err != nil {
			return nil, err
		}
		if err := os.WriteFile(nd.Config, buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
	}
	return nodes, nil
}
