package bankcore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tally-ledger/tally/bridge/iso20022"
)

// Admin endpoints (not part of a real core: they script the simulator).
const (
	PathDeposits  = "/sim/deposits"
	PathFaults    = "/sim/faults"
	PathStatement = "/sim/statement"
	PathLedger    = "/sim/ledger"
	PathReturns   = "/sim/returns"
	PathReversals = "/sim/reversals"
)

// maxBody bounds what the simulator reads from a request.
const maxBody = iso20022.MaxMessageSize

// Options are what a caller can give New besides the config.
type Options struct {
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
}

// Sim is a running bank core simulator. New opens it, Start serves,
// Close stops it.
type Sim struct {
	cfg    Config
	secret []byte
	// orderSecret verifies the bridge's orders (order-secret-file).
	orderSecret []byte
	log         *slog.Logger
	now         func() time.Time
	client      *http.Client

	mu        sync.Mutex
	ledger    Ledger
	faults    Faults
	bridgeURL string
	queue     []outMsg
	sent      []Delivery
	timers    map[*time.Timer]bool
	// rng decides the random mode's misbehaviours (nil when off).
	rng *rand.Rand

	kick     chan struct{}
	ln       net.Listener
	srv      *http.Server
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closed   bool
	httpDone chan struct{}
}

// Faults are the misbehaviours POST /sim/faults switches on.
type Faults struct {
	// Reject is the rejection rule for payout orders.
	Reject RejectRule `json:"reject"`
	// Duplicate is how many of the next messages to the bridge are sent
	// twice.
	Duplicate int `json:"duplicate"`
	// Reorder sends the messages of a batch in reverse order (and the
	// entries of a one-message batch in reverse order).
	Reorder bool `json:"reorder"`
	// DownUntil: until then the simulator is down: the payout path
	// answers 503 (DownMode "503") or closes the connection without an
	// answer ("close"), and nothing is delivered to the bridge.
	DownUntil time.Time `json:"downUntil,omitzero"`
	DownMode  string    `json:"downMode,omitempty"`
	// LoseAcks: the next N accepted orders are recorded (and executed)
	// but their answer is lost: the connection closes without one.
	LoseAcks int `json:"loseAcks"`
	// LoseReports: the next N status reports that may be lost (progress
	// and DU01 reports; final ones too with notify-debits) are never sent.
	LoseReports int `json:"loseReports"`
	// DelayReports holds every status report back this long, so reports
	// sent after it overtake it.
	DelayReports time.Duration `json:"delayReports"`
}

// Down modes.
const (
	Down503   = "503"
	DownClose = "close"
)

// outMsg is a message waiting to be delivered to the bridge.
type outMsg struct {
	path, msgID, contentType string
	body                     []byte
}

// Delivery is one message delivered to the bridge, with its answer.
type Delivery struct {
	Path   string `json:"path"`
	MsgID  string `json:"msgId"`
	Status int    `json:"status"`
	Answer string `json:"answer,omitempty"`
}

// New opens a simulator: it reads the secret, the snapshot (if any) and
// checks the script. Nothing is served or sent yet.
func New(cfg Config, opts Options) (*Sim, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sim{cfg: cfg, log: opts.Logger, now: opts.Now, bridgeURL: cfg.BridgeURL,
		kick: make(chan struct{}, 1), timers: map[*time.Timer]bool{}, client: &http.Client{Timeout: cfg.Timeout.D()}}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	secret, err := os.ReadFile(cfg.Path(cfg.SecretFile))
	if err != nil {
		return nil, fmt.Errorf("key secret-file: %w", err)
	}
	s.secret = bytes.TrimSpace(secret)
	if len(s.secret) < 16 {
		return nil, fmt.Errorf("key secret-file: %s holds %d bytes, at least 16 are needed", cfg.SecretFile, len(s.secret))
	}
	s.orderSecret = s.secret
	if cfg.OrderSecretFile != "" {
		secret, err := os.ReadFile(cfg.Path(cfg.OrderSecretFile))
		if err != nil {
			return nil, fmt.Errorf("key order-secret-file: %w", err)
		}
		if s.orderSecret = bytes.TrimSpace(secret); len(s.orderSecret) < 16 {
			return nil, fmt.Errorf("key order-secret-file: %s holds %d bytes, at least 16 are needed", cfg.OrderSecretFile, len(s.orderSecret))
		}
	}
	s.faults.Reject = cfg.Reject
	s.rng = newRNG(cfg.Random.Seed)
	s.ledger = Ledger{Started: s.now().UTC(), OpeningBalance: cfg.OpeningBalance, Balances: map[string]string{cfg.OmnibusAccount: cfg.OpeningBalance}}
	if cfg.SnapshotFile != "" {
		data, err := os.ReadFile(cfg.Path(cfg.SnapshotFile))
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("key snapshot-file: %w", err)
		default:
			var l Ledger
			if err := json.Unmarshal(data, &l); err != nil {
				return nil, fmt.Errorf("key snapshot-file: %s: %w", cfg.SnapshotFile, err)
			}
			if l.Balances == nil {
				l.Balances = map[string]string{}
			}
			s.ledger = l
		}
	}
	return s, nil
}

// SetBridgeURL changes where messages to the bridge go: for tests that
// start the bridge after the simulator, both on ephemeral ports.
func (s *Sim) SetBridgeURL(u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bridgeURL = strings.TrimSuffix(u, "/")
}

// Start listens, starts the delivery worker and books the script's
// deposits.
func (s *Sim) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("key listen: %w", err)
	}
	s.ln = ln
	s.ctx, s.cancel = context.WithCancel(ctx)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+s.cfg.PayoutPath, s.handlePayout)
	mux.HandleFunc("POST "+PathDeposits, s.handleDeposits)
	mux.HandleFunc("GET "+PathFaults, s.handleFaults)
	mux.HandleFunc("POST "+PathFaults, s.handleFaults)
	mux.HandleFunc("GET "+PathStatement, s.handleStatement)
	mux.HandleFunc("GET "+PathLedger, s.handleLedger)
	mux.HandleFunc("POST "+PathReturns, s.handleAdmin(s.Return))
	mux.HandleFunc("POST "+PathReversals, s.handleAdmin(s.Reverse))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.httpDone = make(chan struct{})
	go func() {
		defer close(s.httpDone)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("bankcore-sim server", "err", err)
		}
	}()
	s.wg.Add(1)
	go s.deliverLoop()
	if s.cfg.ScriptFile != "" {
		data, err := os.ReadFile(s.cfg.Path(s.cfg.ScriptFile))
		if err != nil {
			return fmt.Errorf("key script-file: %w", err)
		}
		if _, err := s.Deposit(data); err != nil {
			return fmt.Errorf("key script-file: %s: %w", s.cfg.ScriptFile, err)
		}
	}
	return nil
}

// Addr is the address the simulator listens on.
func (s *Sim) Addr() string { return s.ln.Addr().String() }

// URL is the simulator's base URL (the bridge's bankcore.url).
func (s *Sim) URL() string { return "http://" + s.Addr() }

// Close stops serving and delivering, and writes the statement file when
// one is configured.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for t := range s.timers {
		t.Stop()
	}
	s.mu.Unlock()
	var errs []error
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, s.srv.Shutdown(ctx))
		cancel()
		<-s.httpDone
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.cfg.StatementFile != "" {
		errs = append(errs, s.WriteStatementFile(s.cfg.Path(s.cfg.StatementFile)))
	}
	return errors.Join(errs...)
}

// ---- deposits ----

// DepositRequest is one scripted deposit: a customer's account pays
// amount into the omnibus account under the bank's reference (the
// AcctSvcrRef the bridge derives the bankRef from; made up when empty).
type DepositRequest struct {
	Account   string `json:"account"`
	Amount    string `json:"amount"`
	Reference string `json:"reference,omitempty"`
	Currency  string `json:"currency,omitempty"`
}

// depositBatch is the body of POST /sim/deposits and of a script file:
// one deposit, or several; OneMessage sends a batch as one camt.054
// rather than one per deposit.
type depositBatch struct {
	DepositRequest
	Deposits   []DepositRequest `json:"deposits,omitempty"`
	OneMessage bool             `json:"oneMessage,omitempty"`
	// BatchBooking books the deposits as one entry with one transaction
	// each (TxDtls, each with its own reference and amount), in one message.
	BatchBooking bool `json:"batchBooking,omitempty"`
}

// DepositResult is what booking a batch made.
type DepositResult struct {
	References []string `json:"references"`
	MsgIDs     []string `json:"msgIds"`
}

// Deposit books a batch of deposits (the JSON of POST /sim/deposits) and
// queues their camt.054 notifications. A batch is checked whole before
// anything is booked: one bad deposit refuses all.
func (s *Sim) Deposit(body []byte) (*DepositResult, error) {
	var b depositBatch
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("deposits: %w", err)
	}
	reqs := b.Deposits
	if b.Account != "" || b.Amount != "" || b.Reference != "" {
		if len(reqs) > 0 {
			return nil, errors.New("deposits: give one deposit or a deposits list, not both")
		}
		reqs = []DepositRequest{b.DepositRequest}
	}
	if len(reqs) == 0 {
		return nil, errors.New("deposits: no deposit given")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for i := range reqs {
		r := &reqs[i]
		if r.Currency == "" {
			r.Currency = s.cfg.Currency
		}
		if err := s.checkDeposit(r); err != nil {
			return nil, fmt.Errorf("deposits[%d]: %w", i, err)
		}
		if r.Reference != "" {
			if seen[r.Reference] || s.ledger.refUsed(r.Reference) {
				return nil, fmt.Errorf("deposits[%d]: reference %s is already booked", i, r.Reference)
			}
			seen[r.Reference] = true
		}
	}
	now := s.now().UTC()
	res := &DepositResult{}
	var entries []iso20022.Entry
	batch := ""
	if b.BatchBooking {
		batch = fmt.Sprintf("SIM-BATCH-%d", s.ledger.next())
	}
	var les []LedgerEntry
	for _, r := range reqs {
		seq := s.ledger.next()
		ref := r.Reference
		if ref == "" {
			ref = fmt.Sprintf("SIM-DEP-%d", seq)
		}
		amt, _ := parseAmount(r.Amount)
		s.ledger.move(r.Account, s.cfg.OmnibusAccount, amt)
		le := LedgerEntry{Seq: seq, Ref: ref, Credit: true, Amount: formatIn(amt, r.Currency), Currency: r.Currency, Account: r.Account,
			Batch: batch, BookedAt: now}
		s.ledger.Entries = append(s.ledger.Entries, le)
		les = append(les, le)
		entries = append(entries, s.isoEntry(le))
		res.References = append(res.References, ref)
	}
	if batch != "" {
		entries = []iso20022.Entry{s.batchEntry(batch, les)}
	}
	if s.faults.Reorder {
		for i, j := 0, len(entries)-1; i < j; i, j = i+1, j-1 {
			entries[i], entries[j] = entries[j], entries[i]
		}
	}
	var msgs []outMsg
	groups := [][]iso20022.Entry{entries}
	if !b.OneMessage && !b.BatchBooking {
		groups = nil
		for _, e := range entries {
			groups = append(groups, []iso20022.Entry{e})
		}
	}
	for _, g := range groups {
		m, err := s.notification(g, now)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
		res.MsgIDs = append(res.MsgIDs, m.msgID)
	}
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	s.enqueueLocked(msgs...)
	s.log.Info("deposits booked", "count", len(reqs), "messages", len(msgs))
	return res, nil
}

func (s *Sim) checkDeposit(r *DepositRequest) error {
	if r.Account == "" || len(r.Account) > 34 {
		return fmt.Errorf("account %q must be 1 to 34 characters", r.Account)
	}
	if r.Account == s.cfg.OmnibusAccount {
		return fmt.Errorf("account %s is the omnibus account", r.Account)
	}
	if ibanPattern.MatchString(r.Account) {
		if err := iso20022.CheckIBAN(r.Account); err != nil {
			return fmt.Errorf("account: %w", err)
		}
	}
	if len(r.Reference) > 35 {
		return fmt.Errorf("reference %q is longer than 35 characters", r.Reference)
	}
	if r.Currency != s.cfg.Currency {
		return fmt.Errorf("currency %s: the omnibus account is in %s", r.Currency, s.cfg.Currency)
	}
	amt, err := parseAmount(r.Amount)
	if err != nil {
		return err
	}
	if amt.Sign() == 0 {
		return errors.New("amount must be positive")
	}
	return checkPrecision(amt, r.Currency)
}

// isoEntry is a ledger entry as a camt entry: a credit names the
// customer's account as the debtor (the account a customer links), a
// debit the payout's references and the creditor.
//
// A return is a credit carrying the payout's EndToEndId and RtrInf; a
// reversal carries RvslInd and the references of the booking it reverses
// (the deposit's transaction reference, or the payout's EndToEndId).
func (s *Sim) isoEntry(le LedgerEntry) iso20022.Entry {
	e := iso20022.Entry{Ref: le.Ref, Amount: le.Amount, Currency: le.Currency, Credit: le.Credit, Status: iso20022.EntryBooked,
		BookingDate: le.BookedAt.Format(time.DateOnly), ValueDate: le.BookedAt.Format(time.DateOnly), Reversal: le.Reversal}
	payout := le.EndToEndID != ""
	switch {
	case le.Return != "":
		code, text := reasonWords(le.Return)
		r := &iso20022.ReturnInfo{Reason: code}
		if text != "" {
			r.AdditionalInfo = []string{truncate(text, 105)}
		}
		e.BankTxCode = iso20022.BankTxCode{Domain: "PMNT", Family: "ICDT", SubFamily: "RRTN"}
		e.Details = []iso20022.TxDetail{{EndToEndID: le.EndToEndID, AcctSvcrRef: le.Ref, Debtor: iso20022.Party{Account: isoAccount(le.Account)}, Return: r}}
	case le.Credit != payout: // a deposit, or the reversal of a payout
		e.BankTxCode = iso20022.BankTxCode{Domain: "PMNT", Family: "RCDT", SubFamily: "DMCT"}
		ref := le.Ref
		if le.Reversal {
			ref = le.Reverses
		}
		d := iso20022.TxDetail{EndToEndID: "NOTPROVIDED", AcctSvcrRef: ref, Debtor: iso20022.Party{Account: isoAccount(le.Account)}}
		if payout {
			d = iso20022.TxDetail{MsgID: le.MsgID, EndToEndID: le.EndToEndID, AcctSvcrRef: le.Reverses, Creditor: iso20022.Party{Account: isoAccount(le.Account)}}
		}
		e.Details = []iso20022.TxDetail{d}
	default: // a payout, or the reversal of a deposit
		e.BankTxCode = iso20022.BankTxCode{Domain: "PMNT", Family: "ICDT", SubFamily: "DMCT"}
		e.Details = []iso20022.TxDetail{{MsgID: le.MsgID, EndToEndID: le.EndToEndID, AcctSvcrRef: le.Ref,
			Creditor: iso20022.Party{Account: isoAccount(le.Account)}}}
		if !payout {
			e.Details = []iso20022.TxDetail{{EndToEndID: "NOTPROVIDED", AcctSvcrRef: le.Reverses, Debtor: iso20022.Party{Account: isoAccount(le.Account)}}}
		}
	}
	return e
}

// batchEntry is a batch of deposits booked as one entry: the batch's
// reference and total, and one transaction per deposit with its own
// reference, amount and debtor.
func (s *Sim) batchEntry(batch string, les []LedgerEntry) iso20022.Entry {
	total := new(big.Int)
	e := iso20022.Entry{Ref: batch, Currency: les[0].Currency, Credit: true, Status: iso20022.EntryBooked,
		BookingDate: les[0].BookedAt.Format(time.DateOnly), ValueDate: les[0].BookedAt.Format(time.DateOnly),
		BankTxCode: iso20022.BankTxCode{Domain: "PMNT", Family: "RCDT", SubFamily: "DMCT"}}
	for _, le := range les {
		amt, _ := parseAmount(le.Amount)
		total.Add(total, amt)
		e.Details = append(e.Details, iso20022.TxDetail{EndToEndID: "NOTPROVIDED", AcctSvcrRef: le.Ref, Amount: le.Amount, Currency: le.Currency,
			CreditDebit: "CRDT", Debtor: iso20022.Party{Account: isoAccount(le.Account)}})
	}
	e.Amount = formatIn(total, e.Currency)
	return e
}

// notification writes a camt.054 of entries on the omnibus account.
//
// Entries are numbered 1, 2, … in each message (NtryRef), as banks do: the
// number repeats across messages and days and names nothing by itself.
func (s *Sim) notification(entries []iso20022.Entry, now time.Time) (outMsg, error) {
	id := fmt.Sprintf("SIM-NTF-%d", s.ledger.next())
	for i := range entries {
		entries[i].EntryRef = strconv.Itoa(i + 1)
	}
	n := &iso20022.Notification{MsgID: id, Created: now, Accounts: []iso20022.AccountNotification{{
		ID: id, Created: now, Account: s.omnibus(), Owner: s.cfg.OmnibusName, Entries: entries}}}
	var buf bytes.Buffer
	if err := iso20022.WriteCamt054(&buf, n); err != nil {
		return outMsg{}, fmt.Errorf("write camt.054 %s: %w", id, err)
	}
	return outMsg{path: s.cfg.NotificationsPath, msgID: id, contentType: "application/xml", body: buf.Bytes()}, nil
}

func (s *Sim) omnibus() iso20022.Account {
	a := isoAccount(s.cfg.OmnibusAccount)
	a.Currency = s.cfg.Currency
	return a
}

var ibanPattern = regexp.MustCompile(`^[A-Z]{2}[0-9]{2}[a-zA-Z0-9]{1,30}$`)

// isoAccount writes an account id as an IBAN when it has an IBAN's shape,
// else as another identification, as the bridge does.
func isoAccount(id string) iso20022.Account {
	if ibanPattern.MatchString(id) {
		return iso20022.Account{IBAN: id}
	}
	return iso20022.Account{Other: id}
}

// ---- payouts ----

// jsonOrder is the bridge's JSON payout order (bankcore.format = "json").
type jsonOrder struct {
	MsgID         string    `json:"msgId"`
	PmtInfID      string    `json:"pmtInfId"`
	InstrID       string    `json:"instrId"`
	EndToEndID    string    `json:"endToEndId"`
	UETR          string    `json:"uetr"`
	WithdrawalID  uint64    `json:"withdrawalId"`
	Account       string    `json:"account"`
	CreditorName  string    `json:"creditorName,omitempty"`
	ExecutionDate string    `json:"executionDate"`
	Amount        string    `json:"amount"`
	Currency      string    `json:"currency"`
	Holder        string    `json:"holder"`
	PayoutRef     string    `json:"payoutRef"`
	DebtorName    string    `json:"debtorName"`
	DebtorAccount string    `json:"debtorAccount,omitempty"`
	CreatedAt     time.Time `json:"createdAt"`
}

// parseOrder reads a pain.001.001.09 or the bridge's JSON order.
func parseOrder(body []byte) (*iso20022.PaymentOrder, error) {
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
		var j jsonOrder
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&j); err != nil {
			return nil, fmt.Errorf("JSON payout order: %w", err)
		}
		if j.MsgID == "" || j.EndToEndID == "" || j.Account == "" {
			return nil, errors.New("JSON payout order: msgId, endToEndId and account are required")
		}
		if err := iso20022.ValidateAmount(j.Amount); err != nil {
			return nil, fmt.Errorf("JSON payout order %s: %w", j.MsgID, err)
		}
		if j.PmtInfID == "" {
			j.PmtInfID = j.MsgID
		}
		if j.ExecutionDate == "" {
			j.ExecutionDate = j.CreatedAt.UTC().Format(time.DateOnly)
		}
		return &iso20022.PaymentOrder{MsgID: j.MsgID, Created: j.CreatedAt, InitiatingParty: j.DebtorName,
			Payments: []iso20022.PaymentInfo{{ID: j.PmtInfID, ExecutionDate: j.ExecutionDate,
				Debtor: iso20022.Party{Name: j.DebtorName, Account: isoAccount(j.DebtorAccount)},
				Transfers: []iso20022.Transfer{{InstrID: j.InstrID, EndToEndID: j.EndToEndID, UETR: j.UETR, Amount: j.Amount, Currency: j.Currency,
					Creditor: iso20022.Party{Name: j.CreditorName, Account: isoAccount(j.Account)}}}}}}, nil
	}
	return iso20022.ParsePain001(bytes.NewReader(body))
}

// handlePayout accepts a payout order: HMAC verified, parsed, deduplicated
// by MsgId and EndToEndId (a resend is answered 200 "duplicate" and pays
// nothing), recorded, answered 202, and booked after status-delay.
func (s *Sim) handlePayout(w http.ResponseWriter, r *http.Request) {
	if s.isDown(w) {
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "read body: " + err.Error()})
		return
	}
	if err := Verify(s.orderSecret, body, r.Header.Get(SignatureHeader), s.now(), s.cfg.MaxSkew.D()); err != nil {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": err.Error()})
		return
	}
	o, err := parseOrder(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	ts := o.Transfers()
	if len(ts) != 1 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("order %s has %d transfers; the simulator books one per order", o.MsgID, len(ts))})
		return
	}
	t := ts[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC()
	if prev := s.ledger.order(o.MsgID, t.EndToEndID); prev != nil {
		// A gateway takes the file (2xx) and its duplicate check rejects
		// it afterwards: DU01 for a MsgId it has, at group level, while
		// the first message is executed. The same EndToEndId under a new
		// MsgId is refused the same way (DU04 at transaction level), as
		// banks that check payment references do.
		prev.Sends++
		rep := s.duplicateReport(o, now)
		if prev.MsgID != o.MsgID {
			rep = iso20022.NewStatusReport(o, rep.MsgID, now, iso20022.StatusRejected,
				iso20022.StatusReason{Code: "DU04", AdditionalInfo: []string{"duplicate end-to-end ID"}})
		}
		if err := s.saveLocked(); err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		s.reportLocked(rep, false)
		s.log.Info("duplicate payout order rejected", "msgId", o.MsgID, "endToEndId", t.EndToEndID, "first", prev.MsgID)
		if s.loseAckLocked(w) {
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"msgId": o.MsgID, "status": "accepted"})
		return
	}
	ord := &Order{MsgID: o.MsgID, EndToEndID: t.EndToEndID, Account: t.Creditor.Account.ID(), Amount: t.Amount, Currency: t.Currency,
		ReceivedAt: now, Status: orderReceived, Original: o, Sends: 1}
	s.ledger.Orders = append(s.ledger.Orders, ord)
	if err := s.saveLocked(); err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	if s.cfg.ProgressReports {
		s.reportLocked(&iso20022.StatusReport{MsgID: fmt.Sprintf("SIM-PSR-%d", s.ledger.next()), Created: now,
			OriginalMsgID: o.MsgID, OriginalMsgName: iso20022.Pain001Version, OriginalCreated: o.Created,
			GroupStatus: iso20022.StatusAcceptedTechnical}, false)
	}
	s.afterLocked(s.cfg.StatusDelay.D(), func() { s.execute(ord.MsgID) })
	s.log.Info("payout order accepted", "msgId", o.MsgID, "account", ord.Account, "amount", ord.Amount)
	if s.loseAckLocked(w) {
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"msgId": o.MsgID, "status": "accepted"})
}

// loseAckLocked closes the connection without an answer when the
// loseAcks fault or the random mode says so: the order stays taken.
func (s *Sim) loseAckLocked(w http.ResponseWriter) bool {
	lose := s.faults.LoseAcks > 0
	if lose {
		s.faults.LoseAcks--
	} else {
		lose = s.chanceLocked(s.cfg.Random.LoseAck)
	}
	if !lose {
		return false
	}
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			s.log.Info("payout order acknowledgement lost")
			return true
		}
	}
	return false
}

// afterLocked runs fn after d, unless the simulator closes first.
func (s *Sim) afterLocked(d time.Duration, fn func()) {
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		s.mu.Lock()
		delete(s.timers, t)
		closed := s.closed
		s.mu.Unlock()
		if !closed {
			fn()
		}
	})
	s.timers[t] = true
}

// execute books or rejects an accepted order and queues its pain.002.
func (s *Sim) execute(msgID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.ledger.order(msgID, "")
	if o == nil || o.Status != orderReceived {
		return
	}
	now := s.now().UTC()
	status, reason := iso20022.StatusAcceptedSettlementCompleted, ""
	amt, err := parseAmount(o.Amount)
	switch {
	case err != nil:
		status, reason = iso20022.StatusRejected, "AM12 invalid amount"
	case o.Currency != s.cfg.Currency:
		status, reason = iso20022.StatusRejected, "AM11 currency "+o.Currency+" is not the account's "+s.cfg.Currency
	case s.faults.Reject.matches(o, amt):
		status, reason = iso20022.StatusRejected, s.faults.Reject.Reason
	case s.chanceLocked(s.cfg.Random.Reject):
		status, reason = iso20022.StatusRejected, "MS03 reason not specified"
	case s.ledger.balance(s.cfg.OmnibusAccount).Cmp(amt) < 0:
		status, reason = iso20022.StatusRejected, "AM04 insufficient funds on the omnibus account"
	}
	var reasons []iso20022.StatusReason
	if status == iso20022.StatusRejected {
		rs, err := reasonOf(reason)
		if err != nil {
			rs = iso20022.StatusReason{Code: "NARR", AdditionalInfo: []string{truncate(reason, maxReasonText)}}
		}
		reasons = append(reasons, rs)
	}
	if s.cfg.ProgressReports {
		// The customer profile check passed before the outcome: ACCP,
		// which a later RJCT (funds, a closed account) can still follow.
		s.reportLocked(iso20022.NewStatusReport(o.Original, fmt.Sprintf("SIM-PSR-%d", s.ledger.next()), now, iso20022.StatusAcceptedCustomerProfile), false)
	}
	var debit *LedgerEntry
	if status != iso20022.StatusRejected {
		seq := s.ledger.next()
		s.ledger.move(s.cfg.OmnibusAccount, o.Account, amt)
		s.ledger.Entries = append(s.ledger.Entries, LedgerEntry{Seq: seq, Ref: fmt.Sprintf("SIM-PAY-%d", seq), Amount: formatIn(amt, o.Currency),
			Currency: o.Currency, Account: o.Account, EndToEndID: o.EndToEndID, MsgID: o.MsgID, BookedAt: now})
		debit = &s.ledger.Entries[len(s.ledger.Entries)-1]
	}
	o.Status, o.Reason = status, reason
	rep := iso20022.NewStatusReport(o.Original, fmt.Sprintf("SIM-PSR-%d", s.ledger.next()), now, status, reasons...)
	if err := s.saveLocked(); err != nil {
		s.log.Error("save snapshot", "err", err)
	}
	s.log.Info("payout executed", "msgId", o.MsgID, "status", status, "reason", reason)
	s.reportLocked(rep, true)
	if debit != nil && s.cfg.NotifyDebits {
		if m, err := s.notification([]iso20022.Entry{s.isoEntry(*debit)}, now); err == nil {
			s.enqueueLocked(m)
		}
	}
	if debit != nil && s.chanceLocked(s.cfg.Random.Return) {
		e2e := o.EndToEndID
		form := ReturnCamt054
		if s.rng.IntN(2) == 1 {
			form = ReturnPacs004
		}
		s.afterLocked(s.cfg.StatusDelay.D()+time.Duration(s.rng.Int64N(int64(s.cfg.Random.MaxDelay.D())+1)), func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if _, err := s.returnLocked(ReturnRequest{EndToEndID: e2e, Reason: "AC04 account closed", Form: form}, s.now().UTC()); err != nil {
				s.log.Error("random return", "endToEndId", e2e, "err", err)
			}
		})
	}
}

func (r *RejectRule) matches(o *Order, amt *big.Int) bool {
	for _, a := range r.Accounts {
		if a == o.Account {
			return true
		}
	}
	for _, e := range r.EndToEndIDs {
		if e == o.EndToEndID || e == o.MsgID {
			return true
		}
	}
	if r.Above != "" {
		if lim, err := parseAmount(r.Above); err == nil && amt.Cmp(lim) > 0 {
			return true
		}
	}
	return false
}

// truncate keeps the first n characters of s (whole UTF-8 sequences: an
// ISO 20022 MaxNNText counts characters, and a cut one is invalid text).
func truncate(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// ---- delivery to the bridge ----

// enqueueLocked queues messages for the bridge, in order; the duplicate
// fault queues each again right after itself.
func (s *Sim) enqueueLocked(msgs ...outMsg) {
	for _, m := range msgs {
		s.queue = append(s.queue, m)
		if s.faults.Duplicate > 0 {
			s.faults.Duplicate--
			s.queue = append(s.queue, m)
		}
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// deliverLoop sends queued messages one at a time, in order. No answer or
// a 5xx is retried after retry-interval, as a core's outbound queue does;
// any other answer ends the message (a 4xx is logged: the bridge refused
// it and a resend would be refused again).
func (s *Sim) deliverLoop() {
	defer s.wg.Done()
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.kick:
		case <-retry.C:
		}
		for {
			s.mu.Lock()
			down := s.now().Before(s.faults.DownUntil)
			if len(s.queue) == 0 || down {
				s.mu.Unlock()
				if down {
					retry.Reset(s.cfg.RetryInterval.D())
				}
				break
			}
			m, url := s.queue[0], s.bridgeURL
			s.mu.Unlock()
			code, answer, err := s.post(url, m)
			if s.ctx.Err() != nil {
				return
			}
			if err != nil || code >= 500 {
				s.log.Warn("bridge unavailable, retrying", "msgId", m.msgID, "status", code, "err", err)
				retry.Reset(s.cfg.RetryInterval.D())
				break
			}
			if code/100 != 2 {
				s.log.Warn("bridge refused a message", "msgId", m.msgID, "status", code, "answer", answer)
			}
			s.mu.Lock()
			s.queue = s.queue[1:]
			s.sent = append(s.sent, Delivery{Path: m.path, MsgID: m.msgID, Status: code, Answer: answer})
			s.mu.Unlock()
		}
	}
}

func (s *Sim) post(base string, m outMsg) (int, string, error) {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, base+m.path, bytes.NewReader(m.body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", m.contentType)
	req.Header.Set(SignatureHeader, Sign(s.secret, m.body, s.now()))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(answer)), nil
}

// Deliveries returns the messages delivered to the bridge so far, with
// the bridge's answers.
func (s *Sim) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Delivery(nil), s.sent...)
}

// Pending is how many messages wait to be delivered.
func (s *Sim) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Ledger returns a copy of the books.
func (s *Sim) Ledger() Ledger {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, _ := json.Marshal(s.ledger)
	var l Ledger
	_ = json.Unmarshal(data, &l)
	return l
}

// ---- faults ----

// faultsRequest is the body of POST /sim/faults: each field given
// replaces that knob; fields left out keep theirs.
type faultsRequest struct {
	Reject    *RejectRule `json:"reject"`
	Duplicate *int        `json:"duplicate"`
	Reorder   *bool       `json:"reorder"`
	// Down is a Go duration: down from now for that long ("0s" is up).
	Down     *string `json:"down"`
	DownMode *string `json:"downMode"`
	// LoseAcks, LoseReports: counts; DelayReports a Go duration ("0s": off).
	LoseAcks     *int    `json:"loseAcks"`
	LoseReports  *int    `json:"loseReports"`
	DelayReports *string `json:"delayReports"`
}

// SetFaults applies a POST /sim/faults body and returns the faults now in
// force.
func (s *Sim) SetFaults(body []byte) (Faults, error) {
	var req faultsRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Faults{}, fmt.Errorf("faults: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults
	if req.Reject != nil {
		if req.Reject.Reason == "" {
			req.Reject.Reason = s.cfg.Reject.Reason
		}
		if err := req.Reject.validate(); err != nil {
			return Faults{}, fmt.Errorf("faults: reject.%w", err)
		}
		f.Reject = *req.Reject
	}
	if req.Duplicate != nil {
		if *req.Duplicate < 0 {
			return Faults{}, errors.New("faults: duplicate must not be negative")
		}
		f.Duplicate = *req.Duplicate
	}
	if req.Reorder != nil {
		f.Reorder = *req.Reorder
	}
	for _, c := range []struct {
		name string
		v    *int
		to   *int
	}{{"loseAcks", req.LoseAcks, &f.LoseAcks}, {"loseReports", req.LoseReports, &f.LoseReports}} {
		if c.v != nil {
			if *c.v < 0 {
				return Faults{}, fmt.Errorf("faults: %s must not be negative", c.name)
			}
			*c.to = *c.v
		}
	}
	if req.DelayReports != nil {
		d, err := time.ParseDuration(*req.DelayReports)
		if err != nil || d < 0 {
			return Faults{}, fmt.Errorf("faults: delayReports %q is not a non-negative Go duration", *req.DelayReports)
		}
		f.DelayReports = d
	}
	if req.DownMode != nil {
		if *req.DownMode != Down503 && *req.DownMode != DownClose {
			return Faults{}, fmt.Errorf("faults: downMode %q is neither %q nor %q", *req.DownMode, Down503, DownClose)
		}
		f.DownMode = *req.DownMode
	}
	if req.Down != nil {
		d, err := time.ParseDuration(*req.Down)
		if err != nil || d < 0 {
			return Faults{}, fmt.Errorf("faults: down %q is not a non-negative Go duration", *req.Down)
		}
		f.DownUntil = s.now().Add(d)
		if d == 0 {
			f.DownUntil = time.Time{}
		}
	}
	if f.DownMode == "" {
		f.DownMode = Down503
	}
	s.faults = f
	if f.DownUntil.IsZero() {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return f, nil
}

// isDown answers a request the way a down core does, and reports whether
// it did.
func (s *Sim) isDown(w http.ResponseWriter) bool {
	s.mu.Lock()
	down, mode := s.now().Before(s.faults.DownUntil), s.faults.DownMode
	s.mu.Unlock()
	if !down {
		return false
	}
	if mode == DownClose {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return true
			}
		}
	}
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "bank core down (simulated)"})
	return true
}

// ---- statements ----

// Statement returns the camt.053.001.08 statement of the omnibus account
// since the simulator's books started: opening and closing booked
// balances and every booking.
func (s *Sim) Statement() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UTC()
	id := fmt.Sprintf("SIM-STMT-%d", s.ledger.next())
	opening, err := parseSigned(s.ledger.OpeningBalance)
	if err != nil {
		return nil, fmt.Errorf("opening balance: %w", err)
	}
	closing := s.ledger.balance(s.cfg.OmnibusAccount)
	bal := func(typ string, v *big.Int, date time.Time) iso20022.Balance {
		return iso20022.Balance{Type: typ, Amount: formatAmount(new(big.Int).Abs(v)), Currency: s.cfg.Currency, Credit: v.Sign() >= 0,
			Date: date.Format(time.DateOnly)}
	}
	from := s.ledger.Started.UTC()
	if from.After(now) {
		from = now
	}
	as := iso20022.AccountStatement{ID: id, SequenceNumber: fmt.Sprint(s.ledger.Seq), Created: now, From: from, To: now,
		Account: s.omnibus(), Owner: s.cfg.OmnibusName,
		Balances: []iso20022.Balance{bal(iso20022.BalanceOpeningBooked, opening, from), bal(iso20022.BalanceClosingBooked, closing, now)}}
	for _, le := range s.ledger.Entries {
		as.Entries = append(as.Entries, s.isoEntry(le))
	}
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := iso20022.WriteCamt053(&buf, &iso20022.Statement{MsgID: id, Created: now, Accounts: []iso20022.AccountStatement{as}}); err != nil {
		return nil, fmt.Errorf("write camt.053 %s: %w", id, err)
	}
	return buf.Bytes(), nil
}

// WriteStatementFile writes a statement to path (atomically).
func (s *Sim) WriteStatementFile(path string) error {
	data, err := s.Statement()
	if err != nil {
		return err
	}
	return writeFileAtomic(path, data)
}

// ---- persistence ----

func (s *Sim) saveLocked() error {
	if s.cfg.SnapshotFile == "" {
		return nil
	}
	data, err := json.MarshalIndent(s.ledger, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.cfg.Path(s.cfg.SnapshotFile), data); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// ---- admin handlers ----

func (s *Sim) handleDeposits(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	res, err := s.Deposit(body)
	if err != nil {
		code := http.StatusBadRequest
		if strings.Contains(err.Error(), "already booked") {
			code = http.StatusConflict
		}
		writeJSON(w, code, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusAccepted, res)
}

// handleAdmin serves a scripted action that takes a JSON body and answers
// the reference of the booking it made.
func (s *Sim) handleAdmin(do func([]byte) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		ref, err := do(body)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusAccepted, map[string]string{"reference": ref})
	}
}

func (s *Sim) handleFaults(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		s.mu.Lock()
		f := s.faults
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, f)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	f, err := s.SetFaults(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, f)
}

func (s *Sim) handleStatement(w http.ResponseWriter, _ *http.Request) {
	data, err := s.Statement()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Write(data)
}

func (s *Sim) handleLedger(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Ledger())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
