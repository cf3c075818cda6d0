//go:build !linux

package simexec

import (
	"errors"
	"fmt"
	"os/exec"
)

// Start needs Linux's auxiliary vector and ptrace: elsewhere it starts
// nothing and says so.
func Start(cmd *exec.Cmd, seed [16]byte) error {
	return fmt.Errorf("start %s with a runtime seed: %w", cmd.Path, errors.ErrUnsupported)
}
