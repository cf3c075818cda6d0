package merchant

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
	"github.com/tally-ledger/tally/wallet/wallettest"
)

// TestSIGKILL: a real `tally merchant`, killed with SIGKILL at random
// moments while payments and refunds of its orders reach the chain and
// an unpaid order expires, and restarted each time, delivers every
// event's notification to a receiver whose idempotent handler handles
// each exactly once: none lost, none invented, each with the delivery id
// of its event on chain (the expiry's with the first block at or past
// it, by the chain's clock); and the orders end in the state the chain
// says.
func TestSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev node and a notifier process")
	}
	node := wallettest.StartDevNode(t)
	bin, err := wallettest.BuildCommand("tally")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := wallet.Dial(ctx, node.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payer, err := genesis.DevKey(0)
	if err != nil {
		t.Fatal(err)
	}
	shop, err := genesis.DevKey(1)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	handled := filepath.Join(dir, "handled.jsonl")
	recv, err := OpenReceiver(handled, []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	hook := httptest.NewServer(recv)
	defer hook.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api := ln.Addr().String()
	ln.Close()
	conf := fmt.Sprintf(`listen = %q
datadir = "data"
[nodes]
endpoints = [%q]
[follow]
poll-interval = "30ms"
batch = 2
[api]
tokens-file = "tokens"
[orders]
payees = [%q]
[webhook]
url = %q
secret-file = "hook.secret"
timeout = "2s"
retry-min = "20ms"
retry-max = "200ms"
[log]
level = "warn"
`, api, node.URL, shop.Address().Hex(), hook.URL)
	for name, body := range map[string]string{"merchant.toml": conf, "tokens": "shop " + token + "\n", "hook.secret": secret + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// The notifier process, restarted after each kill. One that ends by
	// itself fails the test (say, a store it cannot reopen after a
	// kill), unless its API port, the same in every run, was taken
	// meanwhile by another process's socket: that is not the notifier's
	// doing, and it is started again.
	var mu sync.Mutex
	var proc *exec.Cmd
	var stderr *syncBuffer
	var exited chan struct{}
	start := func() {
		cmd := exec.Command(bin, "merchant", "--config", filepath.Join(dir, "merchant.toml"))
		log, done := &syncBuffer{}, make(chan struct{})
		cmd.Stderr = io.MultiWriter(os.Stderr, log)
		if err := cmd.Start(); err != nil {
			t.Error(err) // the last process stays, ended
			return
		}
		proc, stderr, exited = cmd, log, done
		go func() { cmd.Wait(); close(done) }()
	}
	// ended says whether the process ended by itself; ok whether that
	// was the port taken (else the test has failed).
	ended := func() (bool, bool) {
		select {
		case <-exited:
		default:
			return false, true
		}
		if ws, isWS := proc.ProcessState.Sys().(syscall.WaitStatus); isWS && ws.Signaled() {
			return false, true
		}
		if log := stderr.String(); strings.Contains(log, "key listen") && strings.Contains(log, "address already in use") {
			t.Logf("the notifier's port %s was taken by another socket; starting it again", api)
			return true, true
		}
		t.Errorf("the notifier ended by itself (%v):\n%s", proc.ProcessState, stderr.String())
		return true, false
	}
	kill := func() {
		proc.Process.Signal(syscall.SIGKILL)
		<-exited
		ended()
	}
	mu.Lock()
	start()
	mu.Unlock()
	defer func() { mu.Lock(); kill(); mu.Unlock() }()
	apiCall := func(method, path string, body []byte, out any) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+api+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	hkd, err := c.AssetBySymbol(ctx, "HKD")
	if err != nil {
		t.Fatal(err)
	}
	// Four orders to pay, and one no one pays, expiring (by the chain's
	// clock) while the notifier is being killed.
	const orders = 4
	expires := time.Now().Add(4 * time.Second).Truncate(time.Second)
	for i := range orders + 1 {
		until, order := time.Now().Add(time.Hour), fmt.Sprintf("CRASH-%d", i)
		if i == orders {
			until, order = expires, "CRASH-EXPIRES"
		}
		r, err := wallet.NewPaymentRequest(1337, hkd, shop.Address(), big.NewInt(1000), order, until)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(r)
		for {
			var o Order
			code, err := apiCall("POST", PathOrders, body, &o)
			if err == nil && code == http.StatusOK {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("register %s: %d %v", r.Order, code, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The killer: SIGKILL at random moments, restart at once.
	stop := make(chan struct{})
	killed := make(chan int)
	go func() {
		n := 0
		rng := rand.New(rand.NewPCG(1, 2))
		stopped := false
		for {
			// At least 10 kills, going on until the traffic is done.
			select {
			case <-stop:
				stopped = true
			case <-time.After(time.Duration(20+rng.IntN(150)) * time.Millisecond):
			}
			if stopped && n >= 10 {
				killed <- n
				return
			}
			mu.Lock()
			kill()
			start()
			mu.Unlock()
			n++
			if stopped {
				time.Sleep(time.Duration(20+rng.IntN(150)) * time.Millisecond)
			}
		}
	}()

	// Traffic: each order paid in two parts (the second overpays order
	// 0), then half of them refunded; the expected delivery ids.
	var want []string
	do := func(from uint32, method, kind string, args ...any) {
		t.Helper()
		key := payer
		if from == 1 {
			key = shop
		}
		op, err := wallet.AssetOp(hkd.ID, method, args...)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := c.Send(ctx, key, op)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.WaitReceipt(ctx, tx.Hash())
		if err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("%s: %+v %v", method, r, err)
		}
		for _, l := range r.Logs {
			if l.Topics[0] == topicPayment || l.Topics[0] == topicRefund {
				want = append(want, fmt.Sprintf("%s-%s-%d", kind, tx.Hash().Hex(), l.Index))
			}
		}
	}
	for i := range orders {
		ref, _ := wallet.ParseReference(fmt.Sprintf("CRASH-%d", i))
		do(0, "transferWithReference", "payment", shop.Address(), big.NewInt(400), ref)
		second := int64(600)
		if i == 0 {
			second = 700
		}
		do(0, "transferWithReference", "payment", shop.Address(), big.NewInt(second), ref)
		if i%2 == 1 {
			do(1, "refund", "refund", ref, payer.Address(), big.NewInt(1000))
		}
	}
	// The expiry's delivery id: the first block at or past the expiry.
	expiryBlock := uint64(1)
	for {
		h, err := c.Eth().HeaderByNumber(ctx, new(big.Int).SetUint64(expiryBlock))
		if err == nil && h.Time >= uint64(expires.Unix()) {
			break
		}
		if err == nil {
			expiryBlock++
		} else if ctx.Err() != nil {
			t.Fatalf("no block at or past the expiry %s: %v", expires, err)
		} else {
			time.Sleep(100 * time.Millisecond) // not applied yet
		}
	}
	expRef, _ := wallet.ParseReference("CRASH-EXPIRES")
	want = append(want, fmt.Sprintf("expired-%s-%d", expRef.Hex(), expiryBlock))
	close(stop)
	t.Logf("the notifier was killed %d times", <-killed)

	// Every notification arrives, each handled once.
	deadline := time.Now().Add(60 * time.Second)
	var got []string
	for {
		mu.Lock()
		if gone, ok := ended(); gone && ok {
			start()
		} else if !ok {
			mu.Unlock()
			t.FailNow()
		}
		mu.Unlock()
		data, err := os.ReadFile(handled)
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, l := range splitLines(data) {
			var h Handled
			if err := json.Unmarshal(l, &h); err != nil {
				t.Fatal(err)
			}
			got = append(got, h.ID)
		}
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("handled %d notifications:\n%q\nwant %d:\n%q", len(got), got, len(want), want)
	}
	// The last restart may still be starting (the deliveries can all
	// have gone out before the last kill): its API answers once it is up.
	for i, wantStatus := range []string{StatusOverpaid, StatusRefunded, StatusPaid, StatusRefunded} {
		var o Order
		code, err := 0, error(nil)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			o = Order{}
			if code, err = apiCall("GET", PathOrder+fmt.Sprintf("CRASH-%d", i), nil, &o); (err == nil && code == 200) || time.Now().After(deadline) {
				break
			}
		}
		if err != nil || code != 200 || o.Status != wantStatus || len(o.Payments) != 2 {
			t.Errorf("order CRASH-%d: %d %v: %s with %d payments, want %s", i, code, err, o.Status, len(o.Payments), wantStatus)
		}
	}
	var o Order
	if code, err := apiCall("GET", PathOrder+"CRASH-EXPIRES", nil, &o); err != nil || code != 200 || o.Status != StatusExpired || o.ExpiredAt == nil || o.ExpiredAt.Block != expiryBlock {
		t.Errorf("order CRASH-EXPIRES: %d %v: %s, expired at %+v; want expired at block %d", code, err, o.Status, o.ExpiredAt, expiryBlock)
	}
}

// splitLines returns the complete lines of b: a line the receiver is
// still writing (no newline yet) is left for the next read.
func splitLines(b []byte) [][]byte {
	var out [][]byte
	lines := bytes.Split(b, []byte("\n"))
	for _, l := range lines[:len(lines)-1] {
		if len(l) > 0 {
			out = append(out, l)
		}
	}
	return out
}
