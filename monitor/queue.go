package monitor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tally-ledger/tally/internal/oplog"
	"github.com/tally-ledger/tally/internal/service"
)

// Review actions (the action log's Action).
const (
	ActionAcknowledge = "acknowledge"
	ActionDismiss     = "dismiss"
	ActionEscalate    = "escalate"
	// ActionFreeze is the monitor's own entry for an escalation's freeze:
	// its transaction and outcome.
	ActionFreeze = "freeze"
)

// actionLog is the review's append-only, hash-chained log.
var actionLog = oplog.Log{Prefix: []byte("l/"), HeadKey: []byte("m/lhead"), Domain: "tally-monitor-actions-v1", Name: "action log"}

// SystemOperator is the Operator of the monitor's own log entries.
const SystemOperator = "monitor"

// MaxReason bounds a reason's bytes (it goes into the log, and into the
// freeze's on-chain reason for an escalation).
const MaxReason = 500

// ReviewError is an action refused by the queue's rules (a reason
// missing, an alert already closed): nothing changed but the log entry.
type ReviewError struct{ Msg string }

func (e *ReviewError) Error() string { return e.Msg }

// FreezeReason is the reason an escalation's freeze gives on chain.
func FreezeReason(a *Alert) string {
	return "monitor:" + strconv.FormatUint(a.ID, 10) + ":" + a.Rule
}

// Review applies an operator's action to alert id: acknowledge (open
// alerts), dismiss (with a reason) or escalate (with a reason; it needs
// the compliance key, and queues the freeze of the account). The action
// and its result are logged in the same batch as the alert's change; a
// refused action is logged too, and returned as a *ReviewError.
func (m *Monitor) Review(id uint64, operator, action, reason string) (*Alert, error) {
	reason = strings.TrimSpace(reason)
	s := m.store
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.Alert(id)
	if err != nil {
		return nil, err
	}
	old := *a
	refuse := func(format string, args ...any) error { return &ReviewError{Msg: fmt.Sprintf(format, args...)} }
	var why error
	switch {
	case !utf8.ValidString(reason) || len(reason) > MaxReason:
		why = refuse("the reason must be UTF-8 text of at most %d bytes", MaxReason)
	case !a.Unresolved():
		why = refuse("alert %d is %s already", id, a.Status)
	}
	event := ""
	if why == nil {
		switch action {
		case ActionAcknowledge:
			if a.Status != StatusOpen {
				why = refuse("alert %d is %s already", id, a.Status)
				break
			}
			a.Status, event = StatusAcknowledged, EventAcknowledged
		case ActionDismiss:
			if reason == "" {
				why = refuse("a dismissal needs a reason")
				break
			}
			a.Status, event = StatusDismissed, EventDismissed
		case ActionEscalate:
			if reason == "" {
				why = refuse("an escalation needs a reason")
				break
			}
			if m.key == nil || m.client == nil {
				why = refuse("this monitor has no compliance key (key.keystore-file) and node to freeze with")
				break
			}
			a.Status, event = StatusEscalated, EventEscalated
			a.Freeze = &Freeze{Reason: FreezeReason(a), State: FreezePending}
		default:
			return nil, refuse("unknown action %q: use %s, %s or %s", action, ActionAcknowledge, ActionDismiss, ActionEscalate)
		}
	}
	e := &oplog.Entry{At: m.now().UTC(), Operator: operator, Action: action, Target: strconv.FormatUint(id, 10), Reason: reason, Result: oplog.ResultDone}
	if why != nil {
		e.Result = "refused: " + why.Error()
	}
	if a.Freeze != nil && event == EventEscalated {
		e.Detail = "freeze " + a.Account.Hex() + " reason " + a.Freeze.Reason
	}
	b := s.db.NewIndexedBatch()
	defer b.Close()
	if why == nil {
		a.By, a.Reason, a.UpdatedAt = operator, reason, e.At
		if err := putAlert(b, &old, a); err != nil {
			return nil, err
		}
		if err := m.enqueue(b, a, event); err != nil {
			return nil, err
		}
		if !a.Unresolved() {
			if err := pruneClosed(b, m.cfg.Queue.MaxClosed); err != nil {
				return nil, err
			}
		}
	}
	if err := actionLog.Append(b, b, e); err != nil {
		return nil, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		m.recountPending()
		return nil, fmt.Errorf("review alert %d: %w", id, err)
	}
	if why != nil {
		return &old, why
	}
	m.metrics.actions.WithLabelValues(action).Inc()
	service.Kick(m.kickWebhook)
	if event == EventEscalated {
		service.Kick(m.kickFreeze)
	}
	return a, nil
}

// Actions returns the action log from seq from (limit 0: all) and its head.
func (s *Store) Actions(from uint64, limit int) ([]*oplog.Entry, oplog.Head, error) {
	s.mu.Lock()
	head, err := actionLog.Head(s.db)
	s.mu.Unlock()
	if err != nil {
		return nil, head, err
	}
	out, err := actionLog.Read(s.db, from, limit)
	return out, head, err
}

// VerifyActions checks a whole action log read from its first entry.
func VerifyActions(entries []*oplog.Entry, head oplog.Head) error {
	return actionLog.Verify(entries, head)
}

// isReviewError reports whether err is a refused action.
func isReviewError(err error) bool {
	var re *ReviewError
	return errors.As(err, &re)
}
