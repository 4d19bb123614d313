// Package qmptest is a fake QMP server on a unix socket, speaking enough of
// the protocol for the qmp client's and the qemu backend's tests.
package qmptest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
)

// Server is a fake QEMU monitor. Its hooks run on the connection's
// goroutine.
type Server struct {
	// Path is the socket's path.
	Path string

	ln net.Listener
	wg sync.WaitGroup

	mu     sync.Mutex
	status string
	conns  map[net.Conn]bool
	calls  []string
	// OnPowerdown and OnQuit are called for those commands (to end the
	// simulated guest, for example).
	OnPowerdown func()
	OnQuit      func()
	// Fail maps a command to an error class QEMU would answer with.
	Fail map[string]string
}

// Start listens on path and serves connections until Close.
func Start(path string) (*Server, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmptest: %w", err)
	}
	s := &Server{Path: path, ln: ln, status: "running", conns: map[net.Conn]bool{}, Fail: map[string]string{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// SetStatus sets what query-status reports.
func (s *Server) SetStatus(st string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = st
}

// Calls returns the commands received so far.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			c.Close()
		}()
	}
}

func (s *Server) serve(c net.Conn) {
	enc := json.NewEncoder(c)
	if err := enc.Encode(map[string]any{"QMP": map[string]any{
		"version":      map[string]any{"qemu": map[string]int{"major": 7, "minor": 2, "micro": 0}, "package": "fake"},
		"capabilities": []string{"oob"},
	}}); err != nil {
		return
	}
	r := bufio.NewReader(c)
	negotiated := false
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		var req struct {
			Execute string          `json:"execute"`
			ID      json.RawMessage `json:"id"`
		}
		if json.Unmarshal(line, &req) != nil {
			return
		}
		s.mu.Lock()
		s.calls = append(s.calls, req.Execute)
		class := s.Fail[req.Execute]
		status := s.status
		s.mu.Unlock()
		reply := map[string]any{"id": req.ID}
		switch {
		case class != "":
			reply["error"] = map[string]string{"class": class, "desc": "simulated failure of " + req.Execute}
		case req.Execute == "qmp_capabilities":
			negotiated = true
			reply["return"] = map[string]any{}
		case !negotiated:
			reply["error"] = map[string]string{"class": "CommandNotFound", "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"}
		case req.Execute == "query-status":
			reply["return"] = map[string]any{"running": status == "running", "status": status}
		case req.Execute == "system_powerdown":
			_ = enc.Encode(map[string]any{"event": "POWERDOWN", "data": map[string]any{}, "timestamp": map[string]int{"seconds": 1}})
			reply["return"] = map[string]any{}
			if s.OnPowerdown != nil {
				s.OnPowerdown()
			}
		case req.Execute == "quit":
			reply["return"] = map[string]any{}
			_ = enc.Encode(reply)
			if s.OnQuit != nil {
				s.OnQuit()
			}
			return
		default:
			reply["error"] = map[string]string{"class": "CommandNotFound", "desc": "The command " + req.Execute + " has not been found"}
		}
		if err := enc.Encode(reply); err != nil {
			return
		}
	}
}

// Close stops listening, drops the connections and waits for the
// server's goroutines.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
