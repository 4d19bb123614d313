// Package qmp is a small client of the QEMU Machine Protocol over a unix
// socket: the greeting and capabilities negotiation, then commands matched
// to their replies by id, with asynchronous events set aside. It knows the
// few commands the qemu node backend uses (query-status, system_powerdown,
// quit) and runs any other through Execute.
package qmp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Sentinel errors.
var (
	// ErrProtocol: the peer did not speak QMP as expected.
	ErrProtocol = errors.New("qmp: protocol error")
	// ErrCommand: QEMU refused a command (see *Error).
	ErrCommand = errors.New("qmp: command failed")
	// ErrClosed: the connection is closed.
	ErrClosed = errors.New("qmp: connection closed")
)

// Error is QEMU's answer to a failed command.
type Error struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("qmp: %s: %s", e.Class, e.Desc) }

// Unwrap returns ErrCommand.
func (e *Error) Unwrap() error { return ErrCommand }

// Version is QEMU's version from the greeting.
type Version struct {
	Major, Minor, Micro int
	Package             string
}

// String is "major.minor.micro".
func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro) }

// Event is an asynchronous QMP event.
type Event struct {
	Name string          `json:"event"`
	Data json.RawMessage `json:"data"`
}

// maxEvents bounds the events a client keeps.
const maxEvents = 64

// Client is one QMP connection. Its methods are safe for concurrent use
// (commands are serialised).
type Client struct {
	mu      sync.Mutex
	conn    net.Conn
	r       *bufio.Reader
	enc     *json.Encoder
	nextID  int
	version Version
	events  []Event
	closed  bool
}

// DefaultTimeout bounds a command when ctx has no deadline.
const DefaultTimeout = 10 * time.Second

// Dial connects to the QMP socket at path and negotiates capabilities.
func Dial(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp: %w", err)
	}
	c, err := NewClient(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// NewClient runs the QMP handshake over conn (the greeting, then
// qmp_capabilities) and returns the client, which owns conn.
func NewClient(ctx context.Context, conn net.Conn) (*Client, error) {
	c := &Client{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), enc: json.NewEncoder(conn)}
	stop := c.deadline(ctx)
	defer stop()
	line, err := c.r.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("%w: greeting: %v", ErrProtocol, err)
	}
	var g struct {
		QMP *struct {
			Version struct {
				QEMU struct {
					Major int `json:"major"`
					Minor int `json:"minor"`
					Micro int `json:"micro"`
				} `json:"qemu"`
				Package string `json:"package"`
			} `json:"version"`
		} `json:"QMP"`
	}
	if err := json.Unmarshal(line, &g); err != nil || g.QMP == nil {
		return nil, fmt.Errorf("%w: greeting %q", ErrProtocol, truncate(line))
	}
	q := g.QMP.Version.QEMU
	c.version = Version{Major: q.Major, Minor: q.Minor, Micro: q.Micro, Package: g.QMP.Version.Package}
	if _, err := c.execLocked("qmp_capabilities", nil); err != nil {
		return nil, err
	}
	return c, nil
}

// Version is the QEMU version the greeting announced.
func (c *Client) Version() Version { return c.version }

// deadline applies ctx's deadline (or DefaultTimeout) to the connection and
// makes ctx's cancellation interrupt blocked reads and writes.
func (c *Client) deadline(ctx context.Context) func() {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(DefaultTimeout)
	}
	_ = c.conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	return func() { stop() }
}

// Execute runs a command with args (nil for none) and decodes its return
// value into result (nil to discard it).
func (c *Client) Execute(ctx context.Context, cmd string, args any, result any) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	stop := c.deadline(ctx)
	defer stop()
	ret, err := c.execLocked(cmd, args)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("qmp: %s: %w", cmd, ctx.Err())
		}
		return err
	}
	if result != nil {
		if err := json.Unmarshal(ret, result); err != nil {
			return fmt.Errorf("%w: %s: return value: %v", ErrProtocol, cmd, err)
		}
	}
	return nil
}

func (c *Client) execLocked(cmd string, args any) (json.RawMessage, error) {
	c.nextID++
	id := "musubi-" + strconv.Itoa(c.nextID)
	req := map[string]any{"execute": cmd, "id": id}
	if args != nil {
		req["arguments"] = args
	}
	if err := c.enc.Encode(req); err != nil {
		return nil, fmt.Errorf("qmp: send %s: %w", cmd, err)
	}
	for {
		line, err := c.r.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
				return nil, fmt.Errorf("%w: %s: QEMU closed the connection", ErrClosed, cmd)
			}
			return nil, fmt.Errorf("qmp: %s: %w", cmd, err)
		}
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Return json.RawMessage `json:"return"`
			Error  *Error          `json:"error"`
			Event  string          `json:"event"`
			Data   json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			return nil, fmt.Errorf("%w: %s: %q", ErrProtocol, cmd, truncate(line))
		}
		if msg.Event != "" {
			if len(c.events) == maxEvents {
				c.events = c.events[1:]
			}
			c.events = append(c.events, Event{Name: msg.Event, Data: msg.Data})
			continue
		}
		var gotID string
		if len(msg.ID) > 0 {
			_ = json.Unmarshal(msg.ID, &gotID)
		}
		if gotID != id {
			continue // a reply to an earlier, abandoned command
		}
		if msg.Error != nil {
			return nil, fmt.Errorf("%s: %w", cmd, msg.Error)
		}
		if msg.Return == nil {
			return nil, fmt.Errorf("%w: %s: reply without return", ErrProtocol, cmd)
		}
		return msg.Return, nil
	}
}

// Events returns (and forgets) the events received so far.
func (c *Client) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	ev := c.events
	c.events = nil
	return ev
}

// Status is the answer of query-status.
type Status struct {
	Running bool   `json:"running"`
	Status  string `json:"status"`
}

// QueryStatus returns the VM's run state ("running", "paused", "shutdown"...).
func (c *Client) QueryStatus(ctx context.Context) (Status, error) {
	var s Status
	err := c.Execute(ctx, "query-status", nil, &s)
	return s, err
}

// SystemPowerdown presses the guest's ACPI power button.
func (c *Client) SystemPowerdown(ctx context.Context) error {
	return c.Execute(ctx, "system_powerdown", nil, nil)
}

// Quit makes QEMU exit at once. QEMU may close the connection before its
// reply arrives; that counts as success.
func (c *Client) Quit(ctx context.Context) error {
	err := c.Execute(ctx, "quit", nil, nil)
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// Close closes the connection.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.conn.Close()
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
