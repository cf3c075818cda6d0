package merchant

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally/wallet"
)

// headTime is the chain's head block time (Unix seconds); each block
// chaintest applies is one second later.
func (e *env) headTime() int64 { return int64(e.ch.DB.Tip().Head.TimeMs / 1000) }

func (e *env) registerUntil(order, amount string, expires time.Time) {
	e.t.Helper()
	var o Order
	if code := e.call("POST", PathOrders, token, e.requestUntil(order, amount, expires), &o); code != http.StatusOK {
		e.t.Fatalf("register %s: %d %+v", order, code, o)
	}
}

func refOf(t *testing.T, order string) string {
	ref, err := wallet.ParseReference(order)
	if err != nil {
		t.Fatal(err)
	}
	return ref.Hex()
}

// TestExpiry: an order nothing was paid to by its expiry, by the chain's
// clock (the first block whose timestamp is at or past it), is notified
// as order.expired once, with the delivery id expired-<reference>-<block>,
// the same in the retry after the receiver refused it; an order paid on
// time is not; a payment in the expiry block is late: the order expires,
// then the payment is notified. A restart notifies nothing again.
func TestExpiry(t *testing.T) {
	e := newEnv(t)
	e.start()
	t0 := e.headTime()
	expires := time.Unix(t0+3, 0)
	for _, o := range []string{"EXP-1", "EXP-2", "EXP-3"} {
		e.registerUntil(o, "10.00", expires)
	}
	e.pay("EXP-2", 1000) // block at t0+1: on time
	if hs := e.waitHandled(1); hs[0].Event != EventPaid || hs[0].Order != "EXP-2" {
		t.Fatalf("EXP-2: %+v", hs)
	}
	// Once EXP-2's delivery has left the outbox (no retry of it can
	// come), the next delivery is refused once.
	e.waitStatus(func(st StatusView) bool { return st.Pending == 0 })
	e.recv.mu.Lock()
	e.recv.Script = []string{"500"}
	e.recv.mu.Unlock()
	e.ch.Apply()                   // t0+2: not yet
	expiry := e.pay("EXP-3", 1000) // t0+3: the expiry block, a late payment
	if got := int64(e.ch.DB.Tip().Head.TimeMs / 1000); got != t0+3 {
		t.Fatalf("the expiry block's time is %d, want %d", got, t0+3)
	}
	hs := e.waitHandled(4)
	var got []string
	for _, h := range hs[1:] {
		got = append(got, h.ID+" "+h.Event+" "+h.Order+" "+h.Status)
	}
	slices.Sort(got)
	var want []string
	for _, o := range []string{"EXP-1", "EXP-3"} {
		want = append(want, fmt.Sprintf("expired-%s-%d %s %s %s", refOf(t, o), expiry, EventExpired, o, StatusExpired))
	}
	var paid string // EXP-3's late payment
	for _, g := range got {
		if strings.Contains(g, EventPaid) {
			paid = g
		}
	}
	if !strings.HasPrefix(paid, "payment-") || !strings.HasSuffix(paid, " order.paid EXP-3 paid") {
		t.Fatalf("EXP-3's late payment: %q in\n%s", paid, strings.Join(got, "\n"))
	}
	got = slices.DeleteFunc(got, func(g string) bool { return g == paid })
	if !slices.Equal(got, want) {
		t.Fatalf("handled\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The refused delivery was sent again with its id and handled once.
	log := e.recvLog.String()
	refused := ""
	for _, l := range strings.Split(log, "\n") {
		if strings.HasSuffix(l, " order.expired: 500 (scripted)") {
			refused = l
		}
	}
	if refused == "" {
		t.Fatalf("the receiver did not refuse an order.expired delivery:\n%s", log)
	}
	id := strings.Fields(refused)[0]
	// The receiver logs a delivery after it recorded it as handled.
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(log, id+" order.expired: handled") && time.Now().Before(deadline); log = e.recvLog.String() {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(log, id+" order.expired: handled") {
		t.Fatalf("delivery %s was not sent again:\n%s", id, log)
	}
	n := 0
	for _, h := range hs {
		if h.ID == id {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("delivery %s handled %d times", id, n)
	}
	for order, want := range map[string]string{"EXP-1": StatusExpired, "EXP-2": StatusPaid, "EXP-3": StatusPaid} {
		o := e.order(order)
		expired := o.ExpiredAt != nil && o.ExpiredAt.Block == expiry && o.ExpiredAt.Time.Unix() == t0+3
		if o.Status != want || expired != (order != "EXP-2") {
			t.Errorf("%s: %s, expired at %+v; want %s", order, o.Status, o.ExpiredAt, want)
		}
	}
	// Nothing again: not after more blocks, not after a restart.
	e.n.Close()
	e.start()
	h := e.pay("EXP-9", 1) // unmatched
	e.waitStatus(func(st StatusView) bool { return st.Next > h && st.Pending == 0 })
	if hs := e.waitHandled(4); len(hs) != 4 {
		t.Fatalf("after the restart: %+v", hs)
	}

	// An order registered past its expiry expires at the first block the
	// notifier reads after it.
	e.registerUntil("EXP-4", "1.00", time.Unix(t0, 0))
	late := e.ch.Apply().Block.Number()
	hs = e.waitHandled(5)
	if want := fmt.Sprintf("expired-%s-%d", refOf(t, "EXP-4"), late); hs[4].ID != want || hs[4].Event != EventExpired {
		t.Fatalf("registered past its expiry: %+v, want %s", hs[4], want)
	}
}

// TestDeleteOrder: DELETE /v1/orders/{reference} forgets an order and
// answers it as it was; its notifications already queued are still
// delivered; later payments under its reference are unmatched; it no
// longer counts against orders.max; an unpaid order deleted before its
// expiry is not notified as expired; a registration under the reference
// again is a new order whose look-back finds the earlier payments, whose
// notifications the receiver recognises by their ids. Bad or unknown
// references and a missing token are refused.
func TestDeleteOrder(t *testing.T) {
	e := newEnv(t)
	e.cfg.Orders.Max = 2
	e.start()
	e.register("DEL-1", "10.00")
	e.registerUntil("DEL-2", "10.00", time.Unix(e.headTime()+2, 0))
	var ae APIError
	if code := e.call("POST", PathOrders, token, e.request("DEL-3", "1.00"), &ae); code != http.StatusConflict || !strings.Contains(ae.Msg, "orders.max") {
		t.Fatalf("a third order with orders.max 2: %d %q", code, ae.Msg)
	}
	e.down.Store(true)
	h := e.pay("DEL-1", 1000)
	e.waitStatus(func(st StatusView) bool { return st.Next > h && st.Pending == 1 })

	var gone Order
	if code := e.call("DELETE", PathOrder+"DEL-1", token, nil, &gone); code != http.StatusOK || gone.Order != "DEL-1" || gone.Status != StatusPaid {
		t.Fatalf("DELETE DEL-1: %d %+v", code, gone)
	}
	if code := e.call("DELETE", PathOrder+refOf(t, "DEL-2"), token, nil, &gone); code != http.StatusOK || gone.Order != "DEL-2" {
		t.Fatalf("DELETE DEL-2 by reference: %d %+v", code, gone)
	}
	for _, tc := range []struct {
		path, tok string
		code      int
	}{
		{"DEL-1", token, http.StatusNotFound},
		{strings.Repeat("x", 40), token, http.StatusBadRequest},
		{"DEL-3", "", http.StatusUnauthorized},
	} {
		if code := e.call("DELETE", PathOrder+tc.path, tc.tok, nil, &ae); code != tc.code {
			t.Errorf("DELETE %s: %d %q, want %d", tc.path, code, ae.Msg, tc.code)
		}
	}
	if code := e.call("GET", PathOrder+"DEL-1", token, nil, &ae); code != http.StatusNotFound {
		t.Fatalf("GET a deleted order: %d", code)
	}
	e.register("DEL-3", "1.00") // the slots are free again

	// A payment under the deleted reference, and blocks past DEL-2's
	// expiry: nothing to notify; the queued delivery still waits.
	h = e.pay("DEL-1", 1)
	e.ch.Apply()
	e.ch.Apply()
	e.waitStatus(func(st StatusView) bool { return st.Next > h+2 && st.Pending == 1 && st.Orders == 1 })
	e.down.Store(false)
	if hs := e.waitHandled(1); hs[0].Order != "DEL-1" || hs[0].Event != EventPaid {
		t.Fatalf("the delivery queued before the deletion: %+v", hs)
	}
	e.waitStatus(func(st StatusView) bool { return st.Pending == 0 })

	// Registered again: both payments are the new order's; the first
	// was handled already (a duplicate), the second is new.
	var o Order
	if code := e.call("POST", PathOrders, token, e.request("DEL-1", "10.00"), &o); code != http.StatusOK || o.Paid != "1001" || o.Status != StatusOverpaid {
		t.Fatalf("DEL-1 registered again: %d %+v", code, o)
	}
	if hs := e.waitHandled(2); hs[1].Event != EventOverpaid || hs[1].ID == hs[0].ID {
		t.Fatalf("after the registration again: %+v", hs)
	}
	dup := e.waitHandled(2)[0].ID + " order.paid: duplicate"
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(e.recvLog.String(), dup) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(e.recvLog.String(), dup) {
		t.Fatalf("the first payment's notification again was not a duplicate:\n%s", e.recvLog.String())
	}
}
