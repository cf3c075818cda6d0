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
	cfgPath := cmd.fs.String("config", "", fmt.Sprintf("the %s's config `FILE` (%s.toml)", who, name))
	pos, err := c.parse(cmd, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	if *cfgPath == "" {
		return usageErrorf("%s: --config is required", name)
	}
	cfg, err := load(*cfgPath)
	if err != nil {
		return usageErrorf("%v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, cfg)
}
