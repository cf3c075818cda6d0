package rpc

import (
	"bufio"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// messageTimeoutWriter hands gorilla/websocket (through go-ethereum's
// WebSocket handler) a connection whose client messages must each arrive
// within a time bound once their first byte has: an open WebSocket may
// stay idle for as long as it answers pings (a subscriber waits for
// blocks), but a message, like an HTTP request, may not trickle in. Without
// it a client could hold a partial message, up to max-body-bytes of it, on
// each of its connections for ever, answering the pings between the
// fragments.
type messageTimeoutWriter struct {
	http.ResponseWriter
	timeout   time.Duration
	onTimeout func()
}

// Hijack is gorilla's way to the connection (http.ResponseController).
func (w *messageTimeoutWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	mc := &messageTimeoutConn{Conn: c, timeout: w.timeout, onTimeout: w.onTimeout}
	if brw.Reader.Buffered() > 0 {
		// Bytes the client sent right after its handshake are frames too.
		mc.early, _ = brw.Reader.Peek(brw.Reader.Buffered())
	}
	return mc, bufio.NewReadWriter(bufio.NewReader(mc), brw.Writer), nil
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *messageTimeoutWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// messageTimeoutConn follows the WebSocket frames a client sends (RFC
// 6455 section 5.2: header, extended length, mask, payload) and, while a
// frame or a fragmented message is incomplete, bounds the connection's
// read deadline by the time its first byte arrived plus timeout. The
// deadlines gorilla and go-ethereum set themselves (the pong wait) still
// apply: the earlier of the two is in force.
type messageTimeoutConn struct {
	net.Conn
	timeout   time.Duration
	onTimeout func()
	early     []byte // read before the handshake finished

	mu       sync.Mutex
	own      time.Time // the deadline the connection's user set
	msgEnd   time.Time // zero while no message is arriving
	hdr      [14]byte  // the frame header read so far
	hdrLen   int
	need     int    // header bytes needed (2 until the length byte is read)
	payload  uint64 // payload bytes left of the current frame
	inFrame  bool   // a frame's header is complete, its payload is arriving
	fragment bool   // a data message continues in a later frame
}

func (c *messageTimeoutConn) Read(p []byte) (int, error) {
	var n int
	var err error
	if len(c.early) > 0 {
		n = copy(p, c.early)
		c.early = c.early[n:]
	} else {
		n, err = c.Conn.Read(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > 0 {
		wasArriving := !c.msgEnd.IsZero()
		c.follow(p[:n])
		switch arriving := c.arriving(); {
		case arriving && !wasArriving:
			c.msgEnd = time.Now().Add(c.timeout)
			c.applyDeadline()
		case !arriving && wasArriving:
			c.msgEnd = time.Time{}
			c.applyDeadline()
		}
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && !c.msgEnd.IsZero() && !time.Now().Before(c.msgEnd) && c.onTimeout != nil {
		c.onTimeout()
	}
	return n, err
}

// arriving reports whether a frame or a fragmented message is incomplete.
func (c *messageTimeoutConn) arriving() bool { return c.hdrLen > 0 || c.inFrame || c.fragment }

// follow advances the frame parser over b.
func (c *messageTimeoutConn) follow(b []byte) {
	for len(b) > 0 {
		if c.inFrame {
			k := min(uint64(len(b)), c.payload)
			c.payload -= k
			b = b[k:]
			if c.payload == 0 {
				c.endFrame()
			}
			continue
		}
		if c.hdrLen == 0 {
			c.need = 2
		}
		for c.hdrLen < c.need && len(b) > 0 {
			c.hdr[c.hdrLen] = b[0]
			c.hdrLen++
			b = b[1:]
			if c.hdrLen == 2 {
				c.need = 2 + 4*int(c.hdr[1]>>7) // the mask key
				switch c.hdr[1] & 0x7f {
				case 126:
					c.need += 2
				case 127:
					c.need += 8
				}
			}
		}
		if c.hdrLen < c.need {
			return
		}
		switch l := c.hdr[1] & 0x7f; l {
		case 126:
			c.payload = uint64(binary.BigEndian.Uint16(c.hdr[2:4]))
		case 127:
			c.payload = binary.BigEndian.Uint64(c.hdr[2:10])
		default:
			c.payload = uint64(l)
		}
		c.inFrame = true
		if c.payload == 0 {
			c.endFrame()
		}
	}
}

// endFrame closes the current frame: a data frame (opcode below 8)
// without FIN leaves its message to continue.
func (c *messageTimeoutConn) endFrame() {
	if c.hdr[0]&0x0f < 8 {
		c.fragment = c.hdr[0]&0x80 == 0
	}
	c.inFrame, c.hdrLen = false, 0
}

// applyDeadline sets the earlier of the user's deadline and the arriving
// message's; c.mu is held.
func (c *messageTimeoutConn) applyDeadline() {
	d := c.own
	if !c.msgEnd.IsZero() && (d.IsZero() || c.msgEnd.Before(d)) {
		d = c.msgEnd
	}
	c.Conn.SetReadDeadline(d)
}

func (c *messageTimeoutConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.own = t
	c.applyDeadline()
	return nil
}

func (c *messageTimeoutConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}
