package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/coord/zkstore"
	"github.com/musubi-fabric/musubi/node/nodesync"
	"github.com/musubi-fabric/musubi/node/vcacl"
)

// SyncConfig is what RunWithSync adds to an agent: the credentials of its
// ZooKeeper session (node/vcacl) and the node's sync of /etc/hosts and
// accounts (node/nodesync).
type SyncConfig struct {
	// Secret holds the session's credentials (its VC's and the agents')
	// and the ACL of the nodes the agent creates; read it with
	// vcacl.ReadAgentSecret. Zero: an anonymous session, for a federation
	// without ACLs.
	Secret vcacl.AgentSecret
	// HostsFile is the file whose managed block is rendered: "" means
	// /etc/hosts, "-" no hosts sync.
	HostsFile string
	// AccountsRoot is the root directory of the user database the agent
	// keeps (nodesync.FileDB): "" means "/", "-" no account sync.
	AccountsRoot string
	// OnApplied, if set, receives every application (nodesync.Config).
	OnApplied func(nodesync.Applied)
}

// syncer builds the node's Syncer on st, or returns nil when SyncConfig
// asks for nothing.
func (sc SyncConfig) syncer(st coord.Store, cfg Config) (*nodesync.Syncer, error) {
	ncfg := nodesync.Config{Store: st, VC: cfg.VC, OnApplied: sc.OnApplied,
		Logger: logger(cfg.Logger).With("node", cfg.Node, "subsystem", "nodesync")}
	switch sc.HostsFile {
	case "":
		ncfg.HostsFile = "/etc/hosts"
	case "-":
	default:
		ncfg.HostsFile = sc.HostsFile
	}
	switch sc.AccountsRoot {
	case "-":
	case "":
		ncfg.Users = &nodesync.FileDB{Root: "/", Logger: ncfg.Logger}
	default:
		ncfg.Users = &nodesync.FileDB{Root: sc.AccountsRoot, Logger: ncfg.Logger}
	}
	if ncfg.HostsFile == "" && ncfg.Users == nil {
		return nil, nil
	}
	return nodesync.New(ncfg)
}

// RunWithSync is Run with the agent's credentials and the node sync: it
// validates cfg, opens a ZooKeeper session authenticated with sc.Secret
// (nodes it creates get sc.Secret.DefaultACL) and serves (ServeWithSync).
func RunWithSync(ctx context.Context, cfg Config, sc SyncConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	zc := zkstore.Config{Servers: cfg.ZK, Root: cfg.chroot(), SessionTimeout: cfg.SessionTimeout,
		Logger: logger(cfg.Logger).With("subsystem", "zk")}
	if sc.Secret != (vcacl.AgentSecret{}) {
		if err := sc.Secret.Validate(); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		zc.Credentials, zc.DefaultACL = sc.Secret.Credentials(), sc.Secret.DefaultACL()
	}
	octx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	st, err := zkstore.Open(octx, zc)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("agent: connect to ZooKeeper %s: %w", strings.Join(cfg.ZK, ","), err)
	}
	defer st.Close()
	return ServeWithSync(ctx, st, cfg, sc)
}

// ServeWithSync runs Serve and the node's Syncer side by side on st until
// ctx ends. A Syncer that fails (a session without the credentials to
// read its VC, a closed store) stops the agent, cleanly, with its error.
// Both have returned when it returns.
func ServeWithSync(ctx context.Context, st coord.Store, cfg Config, sc SyncConfig) error {
	if err := cfg.validateNode(); err != nil {
		return err
	}
	s, err := sc.syncer(st, cfg)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if s == nil {
		return Serve(ctx, st, cfg)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var syncErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Run(ctx); err != nil {
			syncErr = err
			cancel()
		}
	}()
	err = Serve(ctx, st, cfg)
	cancel()
	wg.Wait()
	if syncErr != nil {
		return errors.Join(fmt.Errorf("agent: node sync: %w", syncErr), err)
	}
	return err
}
