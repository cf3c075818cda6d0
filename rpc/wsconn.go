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
	// onBatch, if set, is handed each batch message the client sends
	// (messageTimeoutConn.onBatch), up to maxMessage bytes.
	onBatch    func(msg []byte)
	maxMessage int
}

// Hijack is gorilla's way to the connection (http.ResponseController).
func (w *messageTimeoutWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	mc := &messageTimeoutConn{Conn: c, timeout: w.timeout, onTimeout: w.onTimeout, onBatch: w.onBatch, maxMessage: w.maxMessage}
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
//
// It also hands each complete data message whose first byte (after JSON
// whitespace) is '[', a JSON-RPC batch, to onBatch, before gorilla reads
// it and go-ethereum dispatches its calls: go-ethereum reads WebSocket
// messages itself, and this is how the server plans a batch's sends
// (Server.serveWebSocket). Only batches are kept, and only up to
// maxMessage bytes (gorilla refuses a longer message and closes the
// connection): single calls cost nothing here.
type messageTimeoutConn struct {
	net.Conn
	timeout   time.Duration
	onTimeout func()
	early     []byte // read before the handshake finished

	onBatch    func(msg []byte)
	maxMessage int

	mu       sync.Mutex
	own      time.Time // the deadline the connection's user set
	msgEnd   time.Time // zero while no message is arriving
	hdr      [14]byte  // the frame header read so far
	hdrLen   int
	need     int    // header bytes needed (2 until the length byte is read)
	payload  uint64 // payload bytes left of the current frame
	inFrame  bool   // a frame's header is complete, its payload is arriving
	fragment bool   // a data message continues in a later frame

	// The data message arriving, unmasked (RFC 6455 section 5.3), while
	// it may be a batch.
	offset  uint64   // payload bytes of the current frame read so far
	keep    bool     // the message may be a batch: keep its payload
	decided bool     // its first byte other than whitespace is read
	paused  bool     // keep, over a control frame between its fragments
	msg     []byte   // its payload so far, from its '['
	size    int      // its payload bytes so far
	batches [][]byte // complete batches not yet handed to onBatch
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
	var batches [][]byte
	if n > 0 {
		wasArriving := !c.msgEnd.IsZero()
		c.follow(p[:n])
		batches, c.batches = c.batches, nil
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
	c.mu.Unlock()
	// Planned outside the lock (the ping loop sets deadlines), before
	// gorilla has these bytes, so before go-ethereum dispatches any call.
	for _, b := range batches {
		c.onBatch(b)
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
			if c.keep {
				c.collect(b[:k])
			}
			c.offset += k
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
		c.inFrame, c.offset = true, 0
		switch op := c.hdr[0] & 0x0f; {
		case op == 1 || op == 2:
			// A text or binary message starts (go-ethereum reads both).
			c.keep, c.decided, c.msg, c.size = c.onBatch != nil, false, nil, 0
		case op >= 8:
			// A control frame between fragments: not the message's.
			c.keepControl()
		}
		if c.payload == 0 {
			c.endFrame()
		}
	}
}

// keepControl pauses collecting over a control frame's payload; endFrame
// resumes it.
func (c *messageTimeoutConn) keepControl() {
	if c.keep {
		c.keep, c.paused = false, true
	}
}

// collect adds a data frame's payload bytes to the message, unmasked with
// the frame's key, while the message may still be a batch of at most
// maxMessage bytes.
func (c *messageTimeoutConn) collect(b []byte) {
	var key [4]byte
	if c.hdr[1]&0x80 != 0 {
		copy(key[:], c.hdr[c.need-4:c.need])
	}
	if c.size += len(b); c.size > c.maxMessage {
		// gorilla refuses it (its read limit) and closes the connection.
		c.keep, c.msg = false, nil
		return
	}
	for i, x := range b {
		x ^= key[(c.offset+uint64(i))%4]
		if !c.decided {
			switch x {
			case ' ', '\t', '\r', '\n':
				continue
			}
			c.decided = true
			if x != '[' {
				c.keep, c.msg = false, nil
				return
			}
		}
		c.msg = append(c.msg, x)
	}
}

// endFrame closes the current frame: a data frame (opcode below 8)
// without FIN leaves its message to continue.
func (c *messageTimeoutConn) endFrame() {
	if c.hdr[0]&0x0f < 8 {
		c.fragment = c.hdr[0]&0x80 == 0
		if !c.fragment && c.keep && c.decided {
			c.batches = append(c.batches, c.msg)
			c.msg = nil
		}
		if !c.fragment {
			c.keep = false
		}
	} else if c.paused {
		c.keep, c.paused = true, false
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
