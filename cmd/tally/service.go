package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// runService is the whole of a service command, 'tally bridge|monitor|
// merchant --config FILE': its one flag, the config file loaded strictly
// (a bad key is a usage error: exit status 2, on which the systemd units
// do not restart), and the service run until SIGTERM or Ctrl-C stops it
// gracefully. who names the service in the flag's help ("the bridge's
// config FILE (bridge.toml)").
func runService[C any](c *cli, args []string, name, who, help string, load func(path string) (C, error), run func(ctx context.Context, cfg C) error) error {
	cmd := newCommand(name, "--config FILE", help)
	cfgPath := configFlag(cmd, who, name+".toml")
	cfg, err := parseConfig(c, cmd, args, cfgPath, load)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, cfg)
}

// configFlag adds --config FILE to cmd: who's config ("the bridge's
// config FILE (bridge.toml)"), file its usual name.
func configFlag(cmd *command, who, file string) *string {
	return cmd.fs.String("config", "", fmt.Sprintf("the %s's config `FILE` (%s)", who, file))
}

// parseConfig parses the command line of cmd, which takes no argument
// and needs its --config FILE (cfgPath, from configFlag), and loads that
// file with load, strictly: no --config, or a config load refuses (a bad
// key or value, named), is a usage error (exit status 2, on which the
// systemd units do not restart), the first naming the command
// ("bridge payouts: --config is required").
func parseConfig[C any](c *cli, cmd *command, args []string, cfgPath *string, load func(path string) (C, error)) (C, error) {
	var cfg C
	pos, err := c.parse(cmd, args)
	if err != nil {
		return cfg, err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return cfg, err
	}
	if *cfgPath == "" {
		return cfg, usageErrorf("%s: --config is required", cmd.name)
	}
	if cfg, err = load(*cfgPath); err != nil {
		return cfg, usageErrorf("%v", err)
	}
	return cfg, nil
}
