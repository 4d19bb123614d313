//go:build integration

package zkstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/musubi-fabric/musubi/internal/zktest"
)

// shared is the ensemble of this test binary, started in TestMain; tests
// that kill servers start their own.
var (
	shared     *zktest.Ensemble
	skipReason string
	rootSeq    atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := zktest.Available(); err != nil {
		skipReason = err.Error()
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := zktest.Start(ctx, zktest.Options{Servers: 3})
	if err != nil {
		fmt.Fprintf(os.Stderr, "start ZooKeeper: %v\n", err)
		return 1
	}
	defer func() {
		if err := e.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop ZooKeeper: %v\n", err)
		}
	}()
	shared = e
	return m.Run()
}

func sharedEnsemble(t testing.TB) *zktest.Ensemble {
	t.Helper()
	if shared == nil {
		t.Skipf("skipping: %s", skipReason)
	}
	return shared
}

// uniqueRoot is a fresh chroot for one test.
func uniqueRoot(t testing.TB) string {
	return fmt.Sprintf("/zkstoretest/%d-%d", os.Getpid(), rootSeq.Add(1))
}

// testLogger writes to the test log at debug level when -v is given and
// MUSUBI_ZK_DEBUG is set, otherwise info and above.
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("MUSUBI_ZK_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// sessionSniffer records the session id and password of every connect
// response a Store's connections read, so a test can take the session
// over and close it (see expireSession).
type sessionSniffer struct {
	mu      sync.Mutex
	id      int64
	passwd  []byte
	timeout int32
}

func (sn *sessionSniffer) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c, sn: sn}, nil
}

func (sn *sessionSniffer) session() (int64, []byte) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	return sn.id, append([]byte(nil), sn.passwd...)
}

type sniffConn struct {
	net.Conn
	sn   *sessionSniffer
	buf  []byte
	done bool
}

// Read passes data through; the first packet is the connect response:
// protocolVersion int32, timeout int32, sessionID int64, passwd buffer.
func (c *sniffConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.done || n == 0 {
		return n, err
	}
	c.buf = append(c.buf, p[:n]...)
	if len(c.buf) < 4 {
		return n, err
	}
	l := int(binary.BigEndian.Uint32(c.buf))
	if len(c.buf) < 4+l {
		return n, err
	}
	r := c.buf[4 : 4+l]
	c.done, c.buf = true, nil
	if len(r) >= 20 {
		timeout := int32(binary.BigEndian.Uint32(r[4:]))
		id := int64(binary.BigEndian.Uint64(r[8:]))
		pl := int(int32(binary.BigEndian.Uint32(r[16:])))
		if id != 0 && pl >= 0 && len(r) >= 20+pl {
			c.sn.mu.Lock()
			c.sn.id, c.sn.timeout, c.sn.passwd = id, timeout, append([]byte(nil), r[20:20+pl]...)
			c.sn.mu.Unlock()
		}
	}
	return n, err
}

// expireSession takes session id over on the server at addr with its
// password and closes it there, as ZooKeeper's own tests do: the ensemble
// ends the session and its ephemerals at once, and the owner's next
// reconnect is told it expired.
func expireSession(ctx context.Context, addr string, id int64, passwd []byte) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := binary.BigEndian.AppendUint32(nil, uint32(4+8+4+8+4+len(passwd)))
	req = binary.BigEndian.AppendUint32(req, 0)     // protocol version
	req = binary.BigEndian.AppendUint64(req, 0)     // last zxid seen
	req = binary.BigEndian.AppendUint32(req, 10000) // timeout
	req = binary.BigEndian.AppendUint64(req, uint64(id))
	req = binary.BigEndian.AppendUint32(req, uint32(len(passwd)))
	req = append(req, passwd...)
	if _, err := c.Write(req); err != nil {
		return err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return fmt.Errorf("connect response: %w", err)
	}
	resp := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c, resp); err != nil {
		return fmt.Errorf("connect response: %w", err)
	}
	if len(resp) < 16 || int64(binary.BigEndian.Uint64(resp[8:])) != id {
		return fmt.Errorf("server did not resume session %#x", id)
	}
	closeReq := binary.BigEndian.AppendUint32(nil, 8)
	closeReq = binary.BigEndian.AppendUint32(closeReq, 1)                       // xid
	closeReq = binary.BigEndian.AppendUint32(closeReq, uint32(0xffffffff-11+1)) // opClose = -11
	if _, err := c.Write(closeReq); err != nil {
		return err
	}
	// The reply (xid, zxid, err) or EOF: either way the close was taken.
	if _, err := io.ReadFull(c, hdr[:]); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("close reply: %w", err)
	}
	return nil
}

// openTest opens a Store on e under a fresh root with a session sniffer;
// the Store is closed at the end of the test.
func openTest(t testing.TB, e *zktest.Ensemble, cfg Config) (*Store, *sessionSniffer) {
	t.Helper()
	sn := &sessionSniffer{}
	if cfg.Servers == nil {
		cfg.Servers = e.Servers()
	}
	if cfg.Root == "" {
		cfg.Root = uniqueRoot(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	cfg.dialer = sn.dial
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, sn
}

// expire ends s's session through another server and waits until s has a
// new one.
func expire(t testing.TB, e *zktest.Ensemble, s *Store, sn *sessionSniffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id, passwd := sn.session()
	if id == 0 || id != s.SessionID() {
		t.Fatalf("expire: sniffed session %#x, store has %#x", id, s.SessionID())
	}
	addr := e.Servers()[0]
	for _, a := range e.Servers() {
		if a != s.Server() {
			addr = a
			break
		}
	}
	if err := expireSession(ctx, addr, id, passwd); err != nil {
		t.Fatalf("expire session %#x via %s: %v", id, addr, err)
	}
	waitFor(t, ctx, "a new session", func() bool {
		n := s.SessionID()
		return n != 0 && n != id
	})
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t testing.TB, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}
