package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tally-ledger/tally/internal/dashconsole"
)

func main() {
	dashboard := flag.String("dashboard", "", "the Grafana dashboard's JSON `FILE`")
	out := flag.String("out", "", "the console template `FILE` to write")
	flag.Parse()
	if *dashboard == "" || *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: dashconsole -dashboard FILE -out FILE")
		os.Exit(2)
	}
	if err := run(*dashboard, *out); err != nil {
		fmt.Fprintf(os.Stderr, "dashconsole: %v\n", err)
		os.Exit(1)
	}
}

func run(dashboard, out string) error {
	data, err := os.ReadFile(dashboard)
	if err != nil {
		return err
	}
	console, err := dashconsole.Generate(data)
	if err != nil {
		return fmt.Errorf("%s: %w", dashboard, err)
	}
	return os.WriteFile(out, console, 0o644)
}
