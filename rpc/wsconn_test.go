package rpc

import (
	"encoding/binary"
	"testing"
)

// FuzzWebSocketFrames checks the frame follower of messageTimeoutConn:
// any bytes (a client may send anything) never crash it, and over frames
// as a client sends them (lengths in all three encodings, fragments,
// control frames between them), fed in pieces of any size, it reports a
// message arriving exactly when a frame is incomplete or a fragmented
// message has not had its last frame.
func FuzzWebSocketFrames(f *testing.F) {
	f.Add([]byte("\x81\x85abcd"), []byte{3, 200, 0, 7}, uint8(1))
	f.Add([]byte{0x01, 0xfe, 0x10, 0x00}, []byte{130, 126, 1, 9, 255}, uint8(5))
	f.Fuzz(func(t *testing.T, garbage, plan []byte, piece uint8) {
		(&messageTimeoutConn{}).follow(garbage)

		// Frames from plan: each byte picks a payload length and whether
		// the frame ends its message; every tenth is a ping instead.
		var stream []byte
		idle := map[int]bool{0: true} // stream positions with no message arriving
		fragment := false
		for i, p := range plan {
			n := int(p)
			switch p % 4 {
			case 1:
				n += 126 // a 16-bit length
			case 2:
				n += 65536 // a 64-bit length
			}
			op, fin := byte(1), p%3 != 0 || i == len(plan)-1
			if fragment {
				op = 0 // a continuation
			}
			if i%10 == 9 && i != len(plan)-1 {
				op, fin, n = 9, true, int(p)%126 // a ping, between fragments too
			}
			b0 := op
			if fin {
				b0 |= 0x80
			}
			switch {
			case n < 126:
				stream = append(stream, b0, 0x80|byte(n))
			case n < 65536:
				stream = append(stream, b0, 0x80|126)
				stream = binary.BigEndian.AppendUint16(stream, uint16(n))
			default:
				stream = append(stream, b0, 0x80|127)
				stream = binary.BigEndian.AppendUint64(stream, uint64(n))
			}
			stream = append(stream, 1, 2, 3, 4)
			stream = append(stream, make([]byte, n)...)
			if op < 8 {
				fragment = !fin
			}
			idle[len(stream)] = !fragment
		}
		c := &messageTimeoutConn{}
		step := int(piece)%9000 + 1
		for pos := 0; pos < len(stream); {
			end := min(pos+step, len(stream))
			c.follow(stream[pos:end])
			pos = end
			if got, want := c.arriving(), !idle[pos]; got != want {
				t.Fatalf("at byte %d of %d: arriving %v, want %v", pos, len(stream), got, want)
			}
		}
		if c.arriving() {
			t.Fatal("a message still arriving after the last frame")
		}
	})
}
