package config

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
)

// Log is the [log] section of the services' config files (the bridge,
// the monitor): level debug, info, warn or error; format text or json.
type Log struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// Check validates the section; errors name the key.
func (l Log) Check() error {
	if _, err := parseLevel(l.Level); err != nil {
		return fmt.Errorf("key log.level: %w", err)
	}
	if l.Format != "text" && l.Format != "json" {
		return fmt.Errorf("key log.format: %q: use text or json", l.Format)
	}
	return nil
}

// NewLogger returns the logger the section asks for, writing to w.
func (l Log) NewLogger(w io.Writer) *slog.Logger {
	level, _ := parseLevel(l.Level)
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q: use debug, info, warn or error", s)
	}
	return l, nil
}

// CheckURL accepts an absolute http:// or https:// URL with a host, or
// one of the extra schemes ("ws", "wss").
func CheckURL(s string, extra ...string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	ok := u.Scheme == "http" || u.Scheme == "https"
	for _, e := range extra {
		ok = ok || u.Scheme == e
	}
	if !ok {
		return fmt.Errorf("%q is not an http:// or https:// URL", s)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	return nil
}
