// Package config decodes the TOML configuration files of Tally's
// processes (the node, the bank bridge, the bank core simulator) the same
// strict way: an unknown key or a value of the wrong type is refused with
// an error naming the key, so a typo never silently falls back to a
// default. DecodeJSON applies the same rule to the JSON bodies the bridge
// and the bank core simulator exchange. Each process owns its own Config
// type and its validation; the services (the bridge, the bank core
// simulator, the risk monitor) read theirs with Load, which decodes over
// their defaults, resolves relative paths against the file's directory
// (Dir) and validates, naming the service, the file and the key.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// DecodeJSON decodes one JSON value into v the same strict way, for the
// JSON bodies the bridge and the bank core simulator exchange: an unknown
// field or data after the value is an error, so a typo in a field name is
// refused and not a silently missing value.
func DecodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// Decode decodes TOML data over v (which holds the defaults), refusing
// unknown keys and naming the key of any bad value.
func Decode(data []byte, v any) error {
	if t := reflect.TypeOf(v); t != nil && t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		var doc map[string]any
		// A syntax error is left to the decode below, which names its line.
		if toml.Unmarshal(data, &doc) == nil {
			if err := checkTypes(doc, t.Elem(), ""); err != nil {
				return err
			}
		}
	}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		return nil
	}
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		keys := make([]string, 0, len(strict.Errors))
		for _, e := range strict.Errors {
			keys = append(keys, strings.Join(e.Key(), "."))
		}
		return fmt.Errorf("unknown key %s", strings.Join(keys, ", "))
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return fmt.Errorf("key %s (line %d, column %d): %s", strings.Join(de.Key(), "."), row, col, de.Error())
	}
	return err
}

// Duration is a time.Duration written as "10ms", "1s" in config files.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q (use e.g. \"10ms\", \"1s\")", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Read reads a config file and returns its content and the absolute
// directory it is in, against which relative paths in it resolve.
func Read(path string) (data []byte, dir string, err error) {
	data, err = os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, "", err
	}
	return data, filepath.Dir(abs), nil
}

// Resolve returns p relative to dir (the config file's directory) unless p
// is empty or absolute, or dir is unknown.
func Resolve(dir, p string) string {
	if p == "" || filepath.IsAbs(p) || dir == "" {
		return p
	}
	return filepath.Join(dir, p)
}
