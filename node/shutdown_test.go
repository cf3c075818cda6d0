package node

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestCloseWithBusyRequest: a node stopped while a client's request is
// still in progress (here a body that never finishes; in the fault
// campaign a send waiting for a leader that was gone) stops cleanly once
// the grace has passed: it closes the connection instead of failing its
// shutdown ("context deadline exceeded", tallyd's exit status 1).
func TestCloseWithBusyRequest(t *testing.T) {
	defer func(g time.Duration) { httpShutdownGrace = g }(httpShutdownGrace)
	httpShutdownGrace = 300 * time.Millisecond
	n := startDevNode(t, t.TempDir(), func(c *Config) { c.HTTP.ReadTimeout = Duration(time.Minute) })
	conn, err := net.Dial("tcp", n.listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\":")
	time.Sleep(100 * time.Millisecond) // the server is reading the body
	start := time.Now()
	if err := n.Close(); err != nil {
		t.Fatalf("Close with a request in progress: %v", err)
	}
	if took := time.Since(start); took > httpShutdownGrace+5*time.Second {
		t.Fatalf("Close took %v with a grace of %v", took, httpShutdownGrace)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatal("the busy connection is still open after Close")
	}
}
