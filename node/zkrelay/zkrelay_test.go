package zkrelay

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// echoServer answers every line with "echo: <line>".
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := io.WriteString(c, "echo: "+sc.Text()+"\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func start(t *testing.T, cfg Config) (*Relay, context.CancelFunc, <-chan error) {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-errc:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	return r, cancel, errc
}

func TestRelaysBothWaysAndCleansUp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "zk")
	srv := echoServer(t)
	// A socket file left by a killed peer is replaced.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, SocketName(srv)), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r, cancel, errc := start(t, Config{Dir: dir, Servers: []string{srv, "127.0.0.1:1"}})
	addrs := r.Addrs()
	if len(addrs) != 2 || !strings.HasPrefix(addrs[0], "unix:"+dir+"/zk-") || addrs[0] == addrs[1] {
		t.Fatalf("Addrs %v", addrs)
	}
	fi, err := os.Stat(strings.TrimPrefix(addrs[0], "unix:"))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v, %v: want a socket of mode 0600", fi, err)
	}
	c, err := net.Dial("unix", strings.TrimPrefix(addrs[0], "unix:"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	for _, msg := range []string{"hello", strings.Repeat("x", 60000)} {
		if _, err := io.WriteString(c, msg+"\n"); err != nil {
			t.Fatal(err)
		}
		got, err := rd.ReadString('\n')
		if err != nil || got != "echo: "+msg+"\n" {
			t.Fatalf("relayed answer %.40q, %v", got, err)
		}
	}
	// A server that refuses: the node's connection is closed, so its
	// client moves on to the next server.
	c2, err := net.Dial("unix", strings.TrimPrefix(addrs[1], "unix:"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("read from a relay to a dead server: %v, want EOF", err)
	}
	c2.Close()
	// Stop: open connections end, Run returns, the sockets are gone.
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := rd.ReadString('\n'); err == nil {
		t.Error("a relayed connection outlived Run")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left in %s after Run: %v", dir, ents)
	}
}

func TestConfigErrors(t *testing.T) {
	long := "/" + strings.Repeat("d", 100)
	for name, cfg := range map[string]Config{
		"relative dir": {Dir: "zk", Servers: []string{"h:1"}},
		"no servers":   {Dir: "/run/zk"},
		"bad server":   {Dir: "/run/zk", Servers: []string{"h"}},
		"twice":        {Dir: "/run/zk", Servers: []string{"h:1", "h:1"}},
		"long path":    {Dir: long, Servers: []string{"h:1"}},
	} {
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}
