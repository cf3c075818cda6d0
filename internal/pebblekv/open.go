package pebblekv

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tally-ledger/tally/store"
)

// Service names a service's own store for OpenService's errors.
type Service struct {
	Store  string // "monitor store": what the errors call the database
	Holder string // "a running monitor": who else would hold its directory
	Reader string // "monitor": "this <Reader> reads format N"
}

// OpenService opens (creating) a service's own Pebble database in dir
// with its layout version at formatKey: a fresh store takes format, a
// store of another format is refused. Pebble's informational messages
// stay out of the service's log; a fatal Pebble error panics with its
// message.
func OpenService(dir string, svc Service, formatKey []byte, format uint64) (*pebble.DB, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		if held := store.HeldError(dir, svc.Holder, err); errors.Is(held, store.ErrInUse) {
			return nil, fmt.Errorf("open %s: %w", svc.Store, held)
		}
		return nil, fmt.Errorf("open %s %s: %w", svc.Store, dir, err)
	}
	v, err := GetUint(db, formatKey)
	switch {
	case err != nil:
	case v == 0:
		err = db.Set(formatKey, BE8(format), pebble.Sync)
	case v != format:
		err = fmt.Errorf("store format %d, this %s reads format %d", v, svc.Reader, format)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s %s: %w", svc.Store, dir, err)
	}
	return db, nil
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Errorf(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
