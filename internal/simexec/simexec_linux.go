//go:build linux

package simexec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

// atRandom is the auxiliary vector entry that points at the 16 random
// bytes (linux/auxvec.h).
const atRandom = 25

// Start starts cmd with seed as its AT_RANDOM bytes. It is cmd.Start
// with the child traced from its exec until the bytes are written, then
// let go; the caller waits for cmd as usual. An error before the child
// ran (ptrace refused, the auxiliary vector unreadable) leaves no child
// behind.
func Start(cmd *exec.Cmd, seed [16]byte) error {
	if allZero(seed[:8]) || allZero(seed[8:]) {
		// The runtime takes a zero half for bytes a C library cleared
		// and reads the kernel's randomness instead (randinit).
		return fmt.Errorf("runtime seed %x has a zero half, which the Go runtime ignores", seed)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Ptrace = true
	// Every ptrace request must come from the thread that traces the
	// child: the one that forked it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s traced: %w", cmd.Path, err)
	}
	pid := cmd.Process.Pid
	if err := seedStopped(pid, seed); err != nil {
		_ = cmd.Process.Kill()
		_ = syscall.PtraceDetach(pid)
		_ = cmd.Wait()
		return fmt.Errorf("seed the runtime of %s (pid %d): %w", cmd.Path, pid, err)
	}
	if err := syscall.PtraceDetach(pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("detach from %s (pid %d): %w", cmd.Path, pid, err)
	}
	return nil
}

// seedStopped waits for the traced child's stop at its exec and writes
// seed over its AT_RANDOM bytes.
func seedStopped(pid int, seed [16]byte) error {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, syscall.WALL, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for the exec stop: %w", err)
		}
		break
	}
	if !ws.Stopped() || ws.StopSignal() != syscall.SIGTRAP {
		return fmt.Errorf("child did not stop at its exec: wait status %#x", uint32(ws))
	}
	auxv, err := os.ReadFile(fmt.Sprintf("/proc/%d/auxv", pid))
	if err != nil {
		return err
	}
	addr, err := auxvEntry(auxv, atRandom)
	if err != nil {
		return err
	}
	mem, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer mem.Close()
	if _, err := mem.WriteAt(seed[:], int64(addr)); err != nil {
		return fmt.Errorf("write AT_RANDOM at %#x: %w", addr, err)
	}
	var back [16]byte
	if _, err := mem.ReadAt(back[:], int64(addr)); err != nil || !bytes.Equal(back[:], seed[:]) {
		return fmt.Errorf("AT_RANDOM at %#x reads back %x, not the seed written (%v)", addr, back, err)
	}
	return nil
}

// auxvEntry returns the value of the auxiliary vector entry typ: the
// vector is pairs of native words, type then value, ended by type 0.
func auxvEntry(auxv []byte, typ uint64) (uint64, error) {
	for len(auxv) >= 16 {
		t, v := binary.NativeEndian.Uint64(auxv), binary.NativeEndian.Uint64(auxv[8:])
		if t == 0 {
			break
		}
		if t == typ {
			if v == 0 {
				return 0, fmt.Errorf("auxiliary vector entry %d is 0", typ)
			}
			return v, nil
		}
		auxv = auxv[16:]
	}
	return 0, errors.New("no AT_RANDOM in the auxiliary vector")
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
