package config

import "fmt"

// Dir is the directory of a service's config file, against which the
// relative paths in it resolve. A service's Config embeds it: Load and
// Parse set it, and the service reads its files through Path. It has no
// key of its own.
type Dir struct{ dir string }

// SetDir records the config file's directory (Load and Parse call it).
func (d *Dir) SetDir(dir string) { d.dir = dir }

// Path resolves a path from the config file against its directory
// (Resolve).
func (d Dir) Path(p string) string { return Resolve(d.dir, p) }

// Service is a service's config type as Load and Parse take it: it keeps
// the file's directory (an embedded Dir) and validates itself, its errors
// naming the key.
type Service interface {
	SetDir(dir string)
	Validate() error
}

// Parse decodes a config file's content over cfg (which holds the
// service's defaults) strictly (Decode), sets the directory its relative
// paths resolve against, and validates it: the one way the services (the
// bridge, the bank core simulator, the risk monitor) read their configs.
func Parse(data []byte, dir string, cfg Service) error {
	if err := Decode(data, cfg); err != nil {
		return err
	}
	cfg.SetDir(dir)
	return cfg.Validate()
}

// Load reads the config file at path over defaults and parses it (Parse).
// name is the service's, for the errors: "read bridge config: …" when the
// file cannot be read, "bridge config /etc/tally/bridge.toml: key …" when
// a key is bad or a value invalid.
func Load[C any, P interface {
	*C
	Service
}](path, name string, defaults C) (C, error) {
	cfg := defaults
	data, dir, err := Read(path)
	if err != nil {
		return cfg, fmt.Errorf("read %s config: %w", name, err)
	}
	if err := Parse(data, dir, P(&cfg)); err != nil {
		return cfg, fmt.Errorf("%s config %s: %w", name, path, err)
	}
	return cfg, nil
}
