package node

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// listenError explains why the node could not listen on addr for config
// key: a port already in use names the flag (if any) and the key that
// move it, since the usual cause is a second node on the same machine.
func listenError(key, flag, addr string, err error) error {
	if !addrInUse(err) {
		return fmt.Errorf("key %s: listen %s: %w", key, addr, err)
	}
	how := "key " + key + " in the config"
	if flag != "" {
		how = flag + " or " + how
	}
	return fmt.Errorf("key %s: %s: address already in use by another process (a running node?): change it with %s", key, addr, how)
}

// addrInUse reports whether err is EADDRINUSE. libp2p's transports join
// their listen errors as text, so the text is checked too.
func addrInUse(err error) bool {
	return errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use")
}
