package rpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/ethclient"
	gethrpc "github.com/ethereum/go-ethereum/rpc"

	"github.com/tally-ledger/tally/chain"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/internal/chaintest"
	"github.com/tally-ledger/tally/store"
)

// filterSeeds are filter objects in the shapes real clients send:
// go-ethereum's ethclient (toFilterArg: "address" an array, "topics" with
// null wildcards, block numbers as hex or tags), ethers.js and viem (a
// single "address" string, "blockHash"), and the edges of the bounds.
var filterSeeds = []string{
	`{}`,
	`{"fromBlock":"0x0","toBlock":"latest"}`,
	`{"fromBlock":"earliest","toBlock":"pending","address":[],"topics":[]}`,
	`{"address":["0x7d61d5cbc8b2a1a1b1b4c0ee3d9e0bdbd23d4a48"],"fromBlock":"0x1","toBlock":"0x10","topics":[["0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"],null,["0x000000000000000000000000a94f5374fce5edbc8e2a8697c15331677e6ebf0b"]]}`,
	`{"address":"0x7d61D5cbC8B2a1a1b1b4c0Ee3d9e0BDbd23D4A48","topics":["0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"]}`,
	`{"blockHash":"0x6c1f3a3b7a4d1c2a5e8f9b0d7c6a5b4e3d2c1b0a9f8e7d6c5b4a392817161514","topics":[null,null,null,["0x01",null]]}`,
	`{"blockHash":"0x6c1f3a3b7a4d1c2a5e8f9b0d7c6a5b4e3d2c1b0a9f8e7d6c5b4a392817161514","fromBlock":"0x1"}`,
	`{"topics":[null,null,null,null,null]}`,
	`{"topics":[[null,"0xzz"]],"address":["0x00"]}`,
	`{"fromBlock":"safe","toBlock":"finalized","address":[1]}`,
	`{"fromBlock":"0x8000000000000000"}`,
	`{"topics":[{"a":1}]}`,
}

// logsRecorder is an eth_getLogs endpoint that records the filter object
// it is sent.
type logsRecorder struct{ last json.RawMessage }

func (r *logsRecorder) GetLogs(crit json.RawMessage) ([]any, error) {
	r.last = append(r.last[:0], crit...)
	return []any{}, nil
}

// sameCriteria compares two decoded filters, a missing fromBlock or
// toBlock being "latest" (what FilterCriteria documents).
func sameCriteria(a, b FilterCriteria) bool {
	latest := gethrpc.LatestBlockNumber
	for _, c := range []*FilterCriteria{&a, &b} {
		if c.BlockHash == nil && c.FromBlock == nil {
			c.FromBlock = &latest
		}
		if c.BlockHash == nil && c.ToBlock == nil {
			c.ToBlock = &latest
		}
	}
	return reflect.DeepEqual(a, b)
}

// FuzzFilterCriteria: the filter object of eth_getLogs, eth_newFilter and
// eth_subscribe("logs") decodes within the bounds the log index is queried
// with (go-ethereum's: 4 topic positions, 1000 values per position),
// errors are go-ethereum's, and what it decodes to, sent again by
// go-ethereum's own client (ethclient's FilterLogs), decodes to the same
// filter.
func FuzzFilterCriteria(f *testing.F) {
	for _, s := range filterSeeds {
		f.Add([]byte(s))
	}
	rec := &logsRecorder{}
	srv := gethrpc.NewServer()
	if err := srv.RegisterName("eth", rec); err != nil {
		f.Fatal(err)
	}
	client := ethclient.NewClient(gethrpc.DialInProc(srv))
	f.Cleanup(func() { client.Close(); srv.Stop() })
	f.Fuzz(func(t *testing.T, data []byte) {
		var c FilterCriteria
		if err := json.Unmarshal(data, &c); err != nil {
			return
		}
		if len(c.Topics) > store.MaxLogTopics {
			t.Fatalf("%s: %d topic positions decoded, at most %d", data, len(c.Topics), store.MaxLogTopics)
		}
		for i, pos := range c.Topics {
			if len(pos) > maxFilterValues {
				t.Fatalf("%s: %d topics at position %d decoded, at most %d", data, len(pos), i, maxFilterValues)
			}
		}
		q := ethereum.FilterQuery{BlockHash: c.BlockHash, Addresses: c.Addresses, Topics: c.Topics}
		if c.BlockHash == nil {
			latest := big.NewInt(int64(gethrpc.LatestBlockNumber))
			q.FromBlock, q.ToBlock = latest, latest
			if c.FromBlock != nil {
				q.FromBlock = big.NewInt(c.FromBlock.Int64())
			}
			if c.ToBlock != nil {
				q.ToBlock = big.NewInt(c.ToBlock.Int64())
			}
		}
		if _, err := client.FilterLogs(t.Context(), q); err != nil {
			t.Fatalf("%s: ethclient cannot send it: %v", data, err)
		}
		var again FilterCriteria
		if err := json.Unmarshal(rec.last, &again); err != nil {
			t.Fatalf("%s: ethclient sent %s, refused: %v", data, rec.last, err)
		}
		if !sameCriteria(c, again) {
			t.Fatalf("%s: decoded %+v; ethclient sent %s, decoded %+v", data, c, rec.last, again)
		}
	})
}

// fuzzMethods are the methods FuzzRPCParams calls: every eth_* and tally_*
// method whose parameters are more than a hash or a number, and the reads
// with bounds a client chooses.
var fuzzMethods = []string{
	"eth_call", "eth_estimateGas", "eth_getLogs", "eth_newFilter",
	"tally_getAccount", "tally_getSupply", "tally_getAccountHistory", "tally_getCertificate",
	"tally_getRawBlocks", "tally_getProof", "eth_getBalance", "eth_getTransactionCount",
	"eth_getBlockByNumber", "eth_feeHistory", "eth_getCode", "tally_assets",
	"eth_getStorageAt", "eth_createAccessList", "eth_getBlockReceipts", "eth_getTransactionByBlockNumberAndIndex",
	"eth_getTransactionByBlockHashAndIndex", "eth_newPendingTransactionFilter",
	"tally_decodeTransaction", "tally_getRecentTransactions", "tally_findByReference", "tally_getValidators", "tally_getProposals",
	"tally_getTransactionReason",
}

// answerCodes are the JSON-RPC error codes a well-behaved answer to a bad
// parameter may carry: invalid params, go-ethereum's server error and
// revert, EIP-1474's resource unavailable and limit exceeded. Anything
// else, -32603 (go-ethereum's "method handler crashed" after a panic, or a
// result it could not marshal) above all, is a defect.
var answerCodes = map[int]bool{CodeInvalidParams: true, CodeServerError: true, CodeReverted: true, CodeUnavailable: true, codeLogLimit: true}

// FuzzRPCParams sends one call with arbitrary params to the real server
// (go-ethereum's JSON-RPC handler and Tally's API) over a populated chain:
// every answer is one JSON-RPC response, a result or an error with a code
// from answerCodes, and a result stays within the bounds the method
// promises (page sizes, block counts).
func FuzzRPCParams(f *testing.F) {
	c := chaintest.New(f)
	s := c.Populate()
	for range 3 { // account 0 sends three more transfers: its history has pages
		c.Apply(c.Transfers(genesis.DevAccounts)...)
	}
	from, to := chaintest.Addr(0), chaintest.Addr(1)
	asset := chain.AssetAddress(1)
	balanceOf, err := chain.AssetABI.Pack("balanceOf", from)
	if err != nil {
		f.Fatal(err)
	}
	transfer, err := chain.AssetABI.Pack("transfer", to, big.NewInt(1))
	if err != nil {
		f.Fatal(err)
	}
	seeds := map[string][]string{
		"eth_call": {
			fmt.Sprintf(`[{"from":"%s","to":"%s","data":"%s"},"latest"]`, from, asset, hexutil.Encode(balanceOf)),
			fmt.Sprintf(`[{"from":"%s","to":"%s","input":"%s","gas":"0x5208","value":"0x0","chainId":"%s"}]`, from, asset, hexutil.Encode(transfer), hexutil.EncodeBig(c.ChainID)),
			fmt.Sprintf(`[{"to":"%s","data":"0x01","input":"0x02"}]`, asset),
			fmt.Sprintf(`[{"to":"%s","accessList":[{"address":"%s","storageKeys":["0x%064x"]}],"type":"0x2","maxFeePerGas":"0x1"},{"blockHash":"%s"}]`, asset, asset, 1, s.Transfer),
			`[{"from":"0x0000000000000000000000000000000000000001"}]`,
		},
		"eth_estimateGas": {
			fmt.Sprintf(`[{"from":"%s","to":"%s","value":"0xde0b6b3a7640000"}]`, from, to),
			fmt.Sprintf(`[{"from":"%s","to":"%s","data":"%s"},"0x1"]`, from, asset, hexutil.Encode(transfer)),
		},
		"eth_getLogs": {
			`[{"fromBlock":"0x0","toBlock":"latest"}]`,
			fmt.Sprintf(`[{"address":"%s","topics":[null,"0x%064x"]}]`, asset, 0),
			`[{"fromBlock":"0xffffffffffff","toBlock":"0x1"}]`,
		},
		"eth_newFilter":           {`[{"fromBlock":"0x1","topics":[["0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"]]}]`},
		"tally_getAccount":        {fmt.Sprintf(`["%s"]`, from)},
		"tally_getSupply":         {`["CNY"]`, `["HKD"]`, `[""]`},
		"tally_getAccountHistory": {fmt.Sprintf(`["%s",null,"0x1"]`, from), fmt.Sprintf(`["%s",null,"0x2"]`, to), fmt.Sprintf(`["%s","0x000000000000000500000000","0x1f4"]`, from), fmt.Sprintf(`["%s","0x00",null]`, from)},
		"tally_getCertificate":    {`["0x1"]`, `["0xffffffffffffffff"]`},
		"tally_getRawBlocks":      {`["0x0","0x4"]`, `["0xffffffffffffffff","0x100"]`, `["0x0","0x0"]`},
		"tally_getProof":          {fmt.Sprintf(`["%s"]`, s.Transfer), fmt.Sprintf(`["%s"]`, s.After)},
		"eth_getBalance":          {fmt.Sprintf(`["%s",{"blockNumber":"0x1"}]`, from)},
		"eth_getTransactionCount": {fmt.Sprintf(`["%s","pending"]`, from)},
		"eth_getBlockByNumber":    {`["0x2",true]`, `["latest",false]`},
		"eth_feeHistory":          {`["0x4","latest",[25,75]]`, `["0xffffffffff","0x1",[101]]`},
		"eth_getCode":             {fmt.Sprintf(`["%s","latest"]`, asset)},
		"tally_assets":            {`[]`},
		"eth_getStorageAt":        {fmt.Sprintf(`["%s","0x0","latest"]`, asset), fmt.Sprintf(`["%s","0X%066x",{"blockHash":"%s"}]`, from, 1, s.Transfer)},
		"eth_createAccessList": {
			fmt.Sprintf(`[{"from":"%s","to":"%s","data":"%s","accessList":[{"address":"%s","storageKeys":[]}]}]`, from, asset, hexutil.Encode(transfer), to),
			fmt.Sprintf(`[{"from":"%s","to":"%s","value":"0xffffffffffffffffffffffff","gas":"0x1"},"latest"]`, from, to),
		},
		"eth_getBlockReceipts":                    {`["0x1"]`, fmt.Sprintf(`[{"blockHash":"%s"}]`, s.Transfer), `["pending"]`},
		"eth_getTransactionByBlockNumberAndIndex": {`["0x1","0x0"]`, `["latest","0xffffffff"]`},
		"eth_getTransactionByBlockHashAndIndex":   {fmt.Sprintf(`["%s","0x0"]`, s.Transfer)},
		"eth_newPendingTransactionFilter":         {`[]`, `[true]`},
		"tally_decodeTransaction":                 {fmt.Sprintf(`["%s"]`, s.Transfer), `["0x12"]`},
		"tally_getRecentTransactions":             {`[]`, `["0x1f4"]`, `["0x0"]`},
		"tally_findByReference":                   {`["ORDER-1",null,null]`, fmt.Sprintf(`["%s","0x1","0x2"]`, s.Transfer), `["",null,"0x1"]`},
		"tally_getValidators":                     {`[]`},
		"tally_getProposals":                      {`[null,null]`, `["0x0","0x64"]`, `["0xffffffffffffffff","0x1"]`},
		"tally_getTransactionReason":              {fmt.Sprintf(`["%s"]`, s.Failed), fmt.Sprintf(`["%s"]`, s.Transfer), `["0x12"]`},
	}
	seeds["eth_feeHistory"] = append(seeds["eth_feeHistory"], `["4","latest",[]]`, `[4,"0x1",[50]]`)
	for i, m := range fuzzMethods {
		for _, p := range seeds[m] {
			f.Add(uint8(i), p)
		}
	}
	limits := DefaultLimits
	limits.Rate = RateLimits{}
	limits.MaxLogResults, limits.MaxLogBlockRange = 8, 64
	srv, err := NewServer(&filterChain{db: c.DB, senders: c.Senders, heads: NewHeadFeed(4)}, limits, "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(srv.Stop)
	f.Fuzz(func(t *testing.T, method uint8, params string) {
		name := fuzzMethods[int(method)%len(fuzzMethods)]
		if !json.Valid([]byte(params)) {
			return // go-ethereum refuses the whole request before any method sees it
		}
		result, ok := rpcCall(t, srv, name, params)
		if !ok {
			return
		}
		checkBounds(t, name, params, result, limits)
		if name == "tally_getAccountHistory" {
			checkNextPage(t, srv, params, result)
		}
	})
}

// rpcCall sends one call to srv and checks the answer's shape: one
// JSON-RPC response, a result, or an error with a code from answerCodes.
// ok is false for an error.
func rpcCall(t *testing.T, srv *Server, name, params string) (json.RawMessage, bool) {
	t.Helper()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":7,"method":%q,"params":%s}`, name, params)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)).WithContext(t.Context())
	req.Header.Set("Content-Type", "application/json")
	srv.ServeHTTP(rec, req)
	var resp struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  json.RawMessage `json:"result"`
		Error   *struct {
			Code    int             `json:"code"`
			Message string          `json:"message"`
			Data    json.RawMessage `json:"data"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil || resp.JSONRPC != "2.0" || string(resp.ID) != "7" {
		t.Fatalf("%s(%s): HTTP %d, not one JSON-RPC response: %v\n%s", name, params, rec.Code, err, rec.Body)
	}
	if resp.Error != nil {
		if resp.Result != nil || !answerCodes[resp.Error.Code] || resp.Error.Message == "" {
			t.Fatalf("%s(%s): error %d %q", name, params, resp.Error.Code, resp.Error.Message)
		}
		return nil, false
	}
	return resp.Result, true
}

// historyPage is the part of a tally_getAccountHistory page the
// pagination checks read.
type historyPage struct {
	Items []struct {
		BlockNumber      hexutil.Uint64 `json:"blockNumber"`
		TransactionIndex hexutil.Uint64 `json:"transactionIndex"`
	} `json:"items"`
	NextCursor *hexutil.Bytes `json:"nextCursor"`
}

// checkNextPage follows a page's nextCursor: the next page starts strictly
// below the last item of this one (newest first: no item twice, none
// skipped over), and every page is in order.
func checkNextPage(t *testing.T, srv *Server, params string, result json.RawMessage) {
	t.Helper()
	var page historyPage
	if err := json.Unmarshal(result, &page); err != nil {
		t.Fatalf("history page: %v", err)
	}
	older := func(a, b int) bool { // item a is strictly older than item b
		x, y := page.Items[a], page.Items[b]
		return x.BlockNumber < y.BlockNumber || (x.BlockNumber == y.BlockNumber && x.TransactionIndex < y.TransactionIndex)
	}
	for i := 1; i < len(page.Items); i++ {
		if !older(i, i-1) {
			t.Fatalf("history(%s): items %d and %d out of order: %s", params, i-1, i, result)
		}
	}
	var args []json.RawMessage
	if page.NextCursor == nil || len(page.Items) == 0 || json.Unmarshal([]byte(params), &args) != nil || len(args) == 0 {
		return
	}
	cursor, _ := json.Marshal(page.NextCursor)
	next := []json.RawMessage{args[0], cursor}
	if len(args) > 2 {
		next = append(next, args[2])
	}
	nextParams, _ := json.Marshal(next)
	res, ok := rpcCall(t, srv, "tally_getAccountHistory", string(nextParams))
	if !ok {
		t.Fatalf("history(%s): its nextCursor is refused", nextParams)
	}
	var page2 historyPage
	if err := json.Unmarshal(res, &page2); err != nil {
		t.Fatalf("history page: %v", err)
	}
	if len(page2.Items) > 0 {
		last, first := page.Items[len(page.Items)-1], page2.Items[0]
		if first.BlockNumber > last.BlockNumber || (first.BlockNumber == last.BlockNumber && first.TransactionIndex >= last.TransactionIndex) {
			t.Fatalf("history(%s): next page starts at %d/%d, not below %d/%d", nextParams, first.BlockNumber, first.TransactionIndex, last.BlockNumber, last.TransactionIndex)
		}
	}
}

// checkBounds checks a result against the bounds its method promises.
func checkBounds(t *testing.T, name, params string, result json.RawMessage, limits Limits) {
	t.Helper()
	var n int
	var max int
	switch name {
	case "eth_getLogs":
		var logs []json.RawMessage
		json.Unmarshal(result, &logs)
		n, max = len(logs), limits.MaxLogResults
	case "tally_getRawBlocks":
		var raws []RawBlock
		if err := json.Unmarshal(result, &raws); err != nil {
			t.Fatalf("%s(%s): %v", name, params, err)
		}
		n, max = len(raws), MaxRawBlocks
	case "tally_getAccountHistory":
		var page struct {
			Items      []json.RawMessage `json:"items"`
			NextCursor *hexutil.Bytes    `json:"nextCursor"`
		}
		if err := json.Unmarshal(result, &page); err != nil {
			t.Fatalf("%s(%s): %v", name, params, err)
		}
		if page.NextCursor != nil && len(*page.NextCursor) != 12 {
			t.Fatalf("%s(%s): nextCursor %x is not 12 bytes", name, params, *page.NextCursor)
		}
		n, max = len(page.Items), MaxHistoryLimit
	case "tally_getRecentTransactions", "tally_getProposals":
		var page struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(result, &page); err != nil {
			t.Fatalf("%s(%s): %v", name, params, err)
		}
		n, max = len(page.Items), MaxHistoryLimit
		if name == "tally_getProposals" {
			max = MaxProposalLimit
		}
	default:
		return
	}
	if n > max {
		t.Fatalf("%s(%s): %d items, at most %d", name, params, n, max)
	}
}
