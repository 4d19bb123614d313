package iscsi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Mode is a tgt management mode (tgtadm --mode).
type Mode string

// The modes the driver uses.
const (
	ModeSystem  Mode = "system"
	ModeTarget  Mode = "target"
	ModeLU      Mode = "logicalunit"
	ModeAccount Mode = "account"
	ModePortal  Mode = "portal"
)

// Op is a tgt management operation (tgtadm --op).
type Op string

// The operations the driver uses.
const (
	OpNew    Op = "new"
	OpDelete Op = "delete"
	OpShow   Op = "show"
	OpBind   Op = "bind"
	OpUnbind Op = "unbind"
	OpUpdate Op = "update"
)

// Request is one tgt management request: what one tgtadm invocation sends
// to tgtd. Fields a mode and operation do not use stay zero.
type Request struct {
	Mode Mode
	Op   Op
	// TID is the target id (tgt ids start at 1; 0 means none).
	TID int
	// LUN is the logical unit (logicalunit mode only).
	LUN int
	// TargetName is the IQN of a new target.
	TargetName string
	// BackingStore and BSType describe a new logical unit.
	BackingStore string
	BSType       string
	// InitiatorName or InitiatorAddress is an ACL entry to bind or unbind.
	InitiatorName    string
	InitiatorAddress string
	// User is a CHAP account; Password its secret (account new only). The
	// password is never rendered by String.
	User     string
	Password string
	// Outgoing binds the account as the target's own (mutual CHAP).
	Outgoing bool
	// Force deletes a target even with sessions logged in.
	Force bool
	// Name and Value are a system or target parameter to update.
	Name  string
	Value string
}

// Args is the tgtadm command line for r (without the control-port option).
// It contains the password of an account creation: only the command
// transport uses it.
func (r Request) Args() []string {
	a := []string{"--lld", "iscsi", "--mode", string(r.Mode), "--op", string(r.Op)}
	if r.TID != 0 {
		a = append(a, "--tid", strconv.Itoa(r.TID))
	}
	if r.Mode == ModeLU {
		a = append(a, "--lun", strconv.Itoa(r.LUN))
	}
	add := func(flag, v string) {
		if v != "" {
			a = append(a, flag, v)
		}
	}
	add("--targetname", r.TargetName)
	add("--backing-store", r.BackingStore)
	add("--bstype", r.BSType)
	add("--initiator-name", r.InitiatorName)
	add("--initiator-address", r.InitiatorAddress)
	add("--user", r.User)
	add("--password", r.Password)
	add("--name", r.Name)
	add("--value", r.Value)
	if r.Outgoing {
		a = append(a, "--outgoing")
	}
	if r.Force {
		a = append(a, "--force")
	}
	return a
}

// String renders r as a tgtadm command line with the password replaced by
// "<redacted>", for logs and test dumps.
func (r Request) String() string {
	if r.Password != "" {
		r.Password = "<redacted>"
	}
	return "tgtadm " + strings.Join(r.Args(), " ")
}

// Mgmt executes tgt management requests against one tgtd. Do returns the
// text tgtd answers to a show request ("" for the others).
type Mgmt interface {
	Do(ctx context.Context, r Request) (string, error)
}

// TgtError is an error status returned by tgtd (the tgtadm_errno values of
// tgt 1.0.x).
type TgtError struct {
	Code int
	Msg  string
}

// tgtd status codes the driver tells apart (tgt 1.0.85, checked against
// tgtadm's messages).
const (
	CodeNoTarget   = 4
	CodeNoLUN      = 5
	CodeTargetUsed = 9  // "this target already exists" (id or name)
	CodeLUNExists  = 11 // "this logical unit number already exists"
	CodeACLExists  = 12
	CodeNoACL      = 13
	CodeUserExists = 14
	CodeNoUser     = 15
	CodeInvalid    = 17
)

var codeText = map[int]string{
	1: "unknown error", 2: "out of memory", 3: "can't find the driver",
	CodeNoTarget: "can't find the target", CodeNoLUN: "can't find the logical unit",
	6: "can't find the session", 7: "can't find the connection", 8: "can't find the binding",
	CodeTargetUsed: "this target already exists", 10: "this binding already exists",
	CodeLUNExists: "this logical unit number already exists", CodeACLExists: "this access control rule already exists",
	CodeNoACL: "this access control rule does not exist", CodeUserExists: "this account already exists",
	CodeNoUser: "can't find the account", 16: "too many accounts", CodeInvalid: "invalid request",
	18: "this target already has an outgoing account", 19: "this target is still active",
	20: "this logical unit is still active", 21: "this driver is busy", 22: "this operation isn't supported",
	23: "unknown parameter",
}

func (e *TgtError) Error() string {
	msg := e.Msg
	if msg == "" {
		msg = codeText[e.Code]
	}
	return fmt.Sprintf("iscsi: tgtd: %s (status %d)", msg, e.Code)
}

// IsCode reports whether err is a tgtd status with one of codes.
func IsCode(err error, codes ...int) bool {
	var te *TgtError
	if !errors.As(err, &te) {
		return false
	}
	for _, c := range codes {
		if te.Code == c {
			return true
		}
	}
	return false
}

// SocketPath is the management socket tgtd listens on for a TGT_IPC_SOCKET
// base and a control port (tgtd -C): "<base>.<port>".
func SocketPath(base string, controlPort int) string {
	return base + "." + strconv.Itoa(controlPort)
}

// Socket speaks tgtd's management protocol directly on its unix socket, as
// tgtadm does, so no secret ever appears on a command line. tgtd serves
// only root (it checks the peer's credentials).
type Socket struct {
	// Path is the socket, for example SocketPath(base, 0).
	Path string
}

// Wire format of tgt 1.0.x (struct tgtadm_req, 120 bytes, little endian on
// x86-64): mode, op (enums), lld[64], len (header plus parameters), tid
// (int32, -1 for none), sid, lun (uint64, all ones for none), cid, host_no,
// device_type, ac_dir, pack, force (uint32). The parameters follow as one
// NUL-terminated "key=value,key=value" string. The reply is err and len
// (uint32 each; len includes these 8 bytes) followed by len-8 bytes of text.
const reqHeaderLen = 120

var (
	modeNum = map[Mode]uint32{ModeSystem: 0, ModeTarget: 1, ModeLU: 2, ModePortal: 3, ModeAccount: 7}
	opNum   = map[Op]uint32{OpNew: 0, OpDelete: 1, OpShow: 2, OpBind: 3, OpUnbind: 4, OpUpdate: 5}
)

// params renders the request's parameter string as tgtadm builds it.
func (r Request) params() (string, error) {
	var kv []string
	add := func(k, v string) {
		if v != "" {
			kv = append(kv, k+"="+v)
		}
	}
	switch r.Mode {
	case ModeTarget:
		add("targetname", r.TargetName)
		add("initiator-address", r.InitiatorAddress)
		add("initiator-name", r.InitiatorName)
		if r.Name != "" {
			add(r.Name, r.Value)
		}
	case ModeLU:
		add("path", r.BackingStore)
		add("bstype", r.BSType)
	case ModeAccount:
		add("user", r.User)
		add("password", r.Password)
	case ModeSystem:
		if r.Name != "" {
			add(r.Name, r.Value)
		}
	}
	for _, p := range kv {
		if strings.ContainsAny(p[strings.IndexByte(p, '=')+1:], ",\x00") {
			return "", fmt.Errorf("%w: tgt parameter value contains ',' or NUL", ErrInvalidRequest)
		}
	}
	return strings.Join(kv, ","), nil
}

func (r Request) encode() ([]byte, error) {
	mode, ok := modeNum[r.Mode]
	if !ok {
		return nil, fmt.Errorf("%w: mode %q", ErrInvalidRequest, r.Mode)
	}
	op, ok := opNum[r.Op]
	if !ok {
		return nil, fmt.Errorf("%w: op %q", ErrInvalidRequest, r.Op)
	}
	p, err := r.params()
	if err != nil {
		return nil, err
	}
	n := reqHeaderLen
	if p != "" {
		n += len(p) + 1
	}
	b := make([]byte, n)
	le := binary.LittleEndian
	le.PutUint32(b[0:], mode)
	le.PutUint32(b[4:], op)
	copy(b[8:72], "iscsi")
	le.PutUint32(b[72:], uint32(n))
	tid := int32(-1)
	if r.TID != 0 {
		tid = int32(r.TID)
	}
	le.PutUint32(b[76:], uint32(tid))
	// sid (80) stays 0.
	lun := ^uint64(0)
	if r.Mode == ModeLU {
		lun = uint64(r.LUN)
	}
	le.PutUint64(b[88:], lun)
	// cid (96), host_no (100), device_type (104) stay 0.
	if r.Outgoing {
		le.PutUint32(b[108:], 1)
	}
	// pack (112) stays 0.
	if r.Force {
		le.PutUint32(b[116:], 1)
	}
	copy(b[reqHeaderLen:], p)
	return b, nil
}

// Do sends r and reads the reply.
func (s Socket) Do(ctx context.Context, r Request) (string, error) {
	msg, err := r.encode()
	if err != nil {
		return "", err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", s.Path)
	if err != nil {
		return "", fmt.Errorf("%w: tgtd management socket: %v", ErrUnavailable, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write(msg); err != nil {
		return "", fmt.Errorf("%w: tgtd management socket: write: %v", ErrUnavailable, err)
	}
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return "", fmt.Errorf("%w: tgtd management socket: read: %v", ErrUnavailable, err)
	}
	code := binary.LittleEndian.Uint32(hdr[0:])
	n := binary.LittleEndian.Uint32(hdr[4:])
	if code != 0 {
		return "", &TgtError{Code: int(code)}
	}
	if n < 8 || n > 64<<20 {
		return "", fmt.Errorf("%w: tgtd reply length %d", ErrProtocol, n)
	}
	body := make([]byte, n-8)
	if _, err := io.ReadFull(c, body); err != nil {
		return "", fmt.Errorf("%w: tgtd management socket: read: %v", ErrUnavailable, err)
	}
	return string(bytes.TrimRight(body, "\x00")), nil
}

// Runner runs a command and returns its standard output; a failure is an
// error that includes the standard error text. It is the seam between the
// driver and the host's programs (tgtadm, cp, lvcreate, dmsetup...).
type Runner interface {
	Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec.
type ExecRunner struct{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if len(env) > 0 {
		cmd.Env = append(cmd.Environ(), env...)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &CommandError{Name: name, Err: err, Stderr: strings.TrimSpace(stderr.String())}
	}
	return out, nil
}

// CommandError is a command that failed.
type CommandError struct {
	Name   string
	Err    error
	Stderr string
}

func (e *CommandError) Error() string {
	if e.Stderr != "" {
		return fmt.Sprintf("iscsi: %s: %v: %s", e.Name, e.Err, e.Stderr)
	}
	return fmt.Sprintf("iscsi: %s: %v", e.Name, e.Err)
}

func (e *CommandError) Unwrap() error { return e.Err }

// Command executes requests by running tgtadm through a Runner, with
// TGT_IPC_SOCKET and -C pointing at one tgtd. An account creation puts the
// CHAP secret on tgtadm's command line, where any local user can read it in
// /proc/<pid>/cmdline while tgtadm runs (a few milliseconds); prefer Socket.
type Command struct {
	Runner Runner
	// Base is the TGT_IPC_SOCKET value and ControlPort the -C value.
	Base        string
	ControlPort int
	// Path is the tgtadm program (default "tgtadm").
	Path string
}

// Do implements Mgmt.
func (c Command) Do(ctx context.Context, r Request) (string, error) {
	prog := c.Path
	if prog == "" {
		prog = "tgtadm"
	}
	args := append([]string{"-C", strconv.Itoa(c.ControlPort)}, r.Args()...)
	out, err := c.Runner.Run(ctx, []string{"TGT_IPC_SOCKET=" + c.Base}, prog, args...)
	if err != nil {
		var ce *CommandError
		if errors.As(err, &ce) {
			if code, ok := codeOfMessage(ce.Stderr); ok {
				return "", &TgtError{Code: code, Msg: strings.TrimPrefix(ce.Stderr, "tgtadm: ")}
			}
			if strings.Contains(ce.Stderr, "can't connect") || strings.Contains(ce.Stderr, "can't send") {
				return "", fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
		}
		return "", err
	}
	return string(out), nil
}

// codeOfMessage maps tgtadm's error message back to tgtd's status.
func codeOfMessage(stderr string) (int, bool) {
	msg := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(stderr), "tgtadm: "))
	for code, text := range codeText {
		if msg == text {
			return code, true
		}
	}
	return 0, false
}
