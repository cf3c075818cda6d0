package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/core/types"

	"github.com/tally-ledger/tally/crypto"
	"github.com/tally-ledger/tally/genesis"
	"github.com/tally-ledger/tally/wallet"
)

// dashMonitorJob is the scrape job of the risk monitor in TestDashboard.
const dashMonitorJob = "tally-monitor"

// dashMonitor is a `tally monitor` following the dashboard test's node,
// as docs/monitor.md runs one: the compliance authority's key (an
// escalation freezes), the e2e operator token, and a webhook receiver
// that takes every notification.
type dashMonitor struct {
	*dashService // its review API
}

// startDashMonitor starts the monitor on nodeURL and waits for /healthz.
func startDashMonitor(t *testing.T, nodeURL string) *dashMonitor {
	t.Helper()
	comp, err := genesis.DevKey(genesis.DevComplianceIndex)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := crypto.EncryptKey(comp, "compliance password", crypto.LightScryptN, crypto.LightScryptP)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"compliance.json": ks, "compliance.pass": []byte("compliance password\n"),
		"operators": []byte("e2e " + e2eOperatorToken + "\n"), "webhook.secret": []byte("e2e-dashboard-webhook-secret-0123456789")}
	return &dashMonitor{startDashService(t, "monitor", nodeURL, files, `[key]
keystore-file = "compliance.json"
password-file = "compliance.pass"
[operator]
tokens-file = "operators"
`)}
}

// dashService is a service of the dashboard test (`tally monitor`,
// `tally merchant`) following its node, with an API that takes the e2e
// operator token and /metrics for Prometheus.
type dashService struct {
	t      *testing.T
	url    string // http://host:port of its API and /metrics
	target string // host:port, as Prometheus scrapes it
	proc   *proc
}

// startDashService starts `tally name --config name.toml` in a new
// directory holding files (its token file, keys, and webhook.secret) and
// the config: a free listen address, its data in name-data, nodeURL
// followed every 200 ms, the service's own sections (own), and a webhook
// receiver that takes every notification, signed with webhook.secret. It
// waits for /healthz.
func startDashService(t *testing.T, name, nodeURL string, files map[string][]byte, own string) *dashService {
	t.Helper()
	dir := t.TempDir()
	hook := acceptingHook(t)
	for file, data := range files {
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cfg := fmt.Sprintf(`listen = %q
datadir = "%s-data"
[nodes]
endpoints = [%q]
[follow]
poll-interval = "200ms"
%s[webhook]
url = %q
secret-file = "webhook.secret"
`, listen, name, nodeURL, own, hook)
	path := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &dashService{t: t, url: "http://" + listen, target: listen}
	s.proc = startProc(t, name, filepath.Join(dir, name+".log"), name, "--config", path)
	waitHTTP(t, s.proc, s.url+"/healthz")
	return s
}

// call is a request to the service's API with the operator token; out,
// when not nil, receives the JSON answer.
func (s *dashService) call(method, path string, body, out any) error {
	return operatorCall(s.url, method, path, body, out)
}

// acceptingHook is a webhook receiver that answers every POST 200, as
// long as the test runs; it returns its URL.
func acceptingHook(t *testing.T) string {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(hook.Close)
	return hook.URL
}

// raiseAlerts makes two new-payee alerts (docs/monitor.md: 25,000 CNY to
// an account never paid), from dev accounts 3 and 4 to 10 and 11, and reviews them as a
// reviewer would: the first acknowledged (it stays waiting), the second
// escalated (the monitor freezes account 4 on chain). Once done every
// monitor panel of the dashboard has data but the three dashNoData names.
func (m *dashMonitor) raiseAlerts(ctx context.Context, cl *wallet.Client) {
	t := m.t
	t.Helper()
	payers := clusterDevKeys(t, 3, 5)
	amount := new(big.Int).Mul(big.NewInt(25_000), big.NewInt(1e18))
	// Payees at a tier that may hold the amount (a new account, at tier
	// 0, may not): dev accounts 10 and 11, which no one here pays.
	for i, payee := range clusterDevKeys(t, 10, 12) {
		tx, err := cl.Transfer(ctx, payers[i], payee.Address(), amount)
		if err != nil {
			t.Fatalf("payment %d: %v", i, err)
		}
		if r, err := cl.WaitReceipt(ctx, tx.Hash()); err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Fatalf("payment %d: receipt %v: %v", i, r, err)
		}
	}
	ids := make([]uint64, len(payers))
	pollUntil(t, 30*time.Second, func() string { return fmt.Sprintf("new-payee alerts for dev accounts 3 and 4 (have ids %v)", ids) }, func() bool {
		for i, p := range payers {
			var as []struct {
				ID uint64 `json:"id"`
			}
			if m.call(http.MethodGet, "/v1/alerts?rule=new-payee&account="+p.Address().Hex(), nil, &as) != nil || len(as) == 0 {
				return false
			}
			ids[i] = as[0].ID
		}
		return true
	})
	if err := m.call(http.MethodPost, fmt.Sprintf("/v1/alerts/%d/acknowledge", ids[0]), map[string]string{"reason": "calling the customer"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.call(http.MethodPost, fmt.Sprintf("/v1/alerts/%d/escalate", ids[1]), map[string]string{"reason": "the payer's bank reports the card stolen"}, nil); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 30*time.Second, func() string { return "the escalation's freeze of dev account 4 on chain" }, func() bool {
		var acct struct {
			Frozen bool `json:"frozen"`
		}
		return cl.Call(ctx, &acct, "tally_getAccount", payers[1].Address()) == nil && acct.Frozen
	})
}

// operatorCall is a request to a service's API at base (the monitor's
// review API, the merchant notifier's order API) with the e2e operator
// token; body, when not nil, is sent as JSON, and out, when not nil,
// receives the JSON answer. An answer but 200 is an error with its text.
func operatorCall(base, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e2eOperatorToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}
