package node

import (
	"net/http"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/rpc"
	"github.com/tally-ledger/tally/store"
)

// metrics are the node's Prometheus metrics, in its own registry.
type metrics struct {
	reg       *prometheus.Registry
	height    prometheus.Gauge
	txs       prometheus.Counter
	blocks    prometheus.Counter
	admitted  prometheus.Counter
	forwarded prometheus.Counter
	// forwardBatches counts the forwarded batches (messages) received.
	forwardBatches prometheus.Counter
	// notReplicated counts admissions no other validator confirmed holding.
	notReplicated prometheus.Counter
	commitLat     prometheus.Histogram
	blockTxs      prometheus.Histogram

	votesReceived prometheus.Counter
	votesRefused  prometheus.Counter

	// rpcRefused counts what the JSON-RPC bounds refused, by config key
	// (rpc.Limits.OnRefused).
	rpcRefused *prometheus.CounterVec

	proposedAt chan proposal
}

type proposal struct {
	hash string
	at   time.Time
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		reg:       prometheus.NewRegistry(),
		height:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "tally_block_height", Help: "Height of the last applied block."}),
		txs:       prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_txs_applied_total", Help: "Transactions applied."}),
		blocks:    prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_blocks_applied_total", Help: "Blocks applied."}),
		admitted:  prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_txs_admitted_total", Help: "Transactions admitted to the mempool."}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_txs_forwarded_total", Help: "Transactions forwarded to the leader and admitted there."}),
		forwardBatches: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_forward_batches_received_total",
			Help: "Batches of transactions followers forwarded to this node (leader only), each one message whatever its size."}),
		notReplicated: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_txs_not_replicated_total",
			Help: "Transactions the leader admitted from its own clients that no other validator confirmed holding in time (the client got an error)."}),
		commitLat: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tally_block_commit_seconds",
			Help:    "Time from proposing a block to applying it (leader only).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		blockTxs: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tally_block_txs", Help: "Transactions per applied block.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9)}),
		proposedAt: make(chan proposal, 64),
		votesReceived: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_votes_received_total",
			Help: "Commit votes received and kept (leader; a follower keeps them too, in case it leads next)."}),
		votesRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "tally_votes_refused_total",
			Help: "Commit votes refused: bad signature, not a validator, wrong hash or next set, out of the window."}),
		rpcRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tally_rpc_refused_total",
			Help: "Connections, requests and calls the JSON-RPC bounds refused, by the config key of the bound."}, []string{"bound"}),
	}
	for _, b := range rpc.RefusalBounds {
		m.rpcRefused.WithLabelValues(b) // every bound is exported from the start, at 0
	}
	head, _ := n.db.Head()
	m.height.Set(float64(head.Number))
	m.reg.MustRegister(m.height, m.txs, m.blocks, m.admitted, m.forwarded, m.forwardBatches, m.notReplicated, m.commitLat, m.blockTxs,
		m.votesReceived, m.votesRefused, m.rpcRefused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_last_certified_height", Help: "Highest block height certified on the chain (0 if none)."},
			func() float64 { c, _, _ := n.db.LastCertified(); return float64(c) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_certificate_lag", Help: "Applied head height minus the highest certified height."},
			func() float64 {
				head, _ := n.db.Head()
				c, _, _ := n.db.LastCertified()
				return float64(head.Number) - float64(c)
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_node_halted", Help: "1 once the node has halted on a broken invariant (see the log and tally_nodeInfo); it then needs an operator."},
			func() float64 {
				if n.engine != nil && n.engine.Halted() != nil {
					return 1
				}
				return 0
			}),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_mempool_size", Help: "Transactions pending in the mempool (queued and in flight)."},
			func() float64 { q, f := n.pool.Stats(); return float64(q + f) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_mempool_capacity", Help: "Transactions the mempool holds at most (mempool.max-total)."},
			func() float64 { return float64(n.cfg.Mempool.MaxTotal) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_datadir_free_bytes", Help: "Bytes free for the node on the file system of its data dir (-1 if unreadable)."},
			func() float64 { free, _ := diskSpace(n.cfg.DataDir); return free }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_datadir_size_bytes", Help: "Size in bytes of the file system of the node's data dir (-1 if unreadable)."},
			func() float64 { _, size := diskSpace(n.cfg.DataDir); return size }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tally_raft_state", Help: "Raft state: 0 follower, 1 candidate, 2 leader, 3 shutdown."},
			func() float64 {
				if n.engine == nil {
					return float64(raft.Shutdown)
				}
				return float64(n.engine.State())
			}),
	)
	return m
}

// diskSpace returns the bytes available to the node and the size of the
// file system holding dir, -1 each when it cannot be read: the disk-use
// alert (deploy/prometheus) needs them from the node itself, since a
// bank's monitoring may not run node_exporter on the node's machine.
func diskSpace(dir string) (free, size float64) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1, -1
	}
	return float64(st.Bavail) * float64(st.Bsize), float64(st.Blocks) * float64(st.Bsize)
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// proposed records when this node proposed a block.
func (m *metrics) proposed(b *chain.Block) {
	select {
	case m.proposedAt <- proposal{hash: b.Hash().Hex(), at: time.Now()}:
	default: // metrics never block the builder
	}
}

// applied runs in the FSM goroutine after each block.
func (m *metrics) applied(a *store.Applied) {
	m.height.Set(float64(a.Block.Number()))
	m.blocks.Inc()
	m.txs.Add(float64(len(a.Block.Txs)))
	m.blockTxs.Observe(float64(len(a.Block.Txs)))
	hash := a.Block.Hash().Hex()
	for {
		select {
		case p := <-m.proposedAt:
			if p.hash == hash {
				m.commitLat.Observe(time.Since(p.at).Seconds())
				return
			}
			continue // an older proposal that was never applied
		default:
			return
		}
	}
}
