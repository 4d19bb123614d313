package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/musubi-fabric/musubi/coord"
)

// SiteRecord is the content of sites/<site>: what the federation knows
// about a site's configuration.
type SiteRecord struct {
	Name     string    `json:"name"`
	ZKServer string    `json:"zk_server,omitempty"` // this site's ZooKeeper client address
	Gateway  string    `json:"gateway,omitempty"`   // public (WAN) address of the gateway host
	Joined   time.Time `json:"joined"`
}

// LiveRecord is the content of the ephemeral live/<site>: the peer's
// session is the site's liveness.
type LiveRecord struct {
	Peer    string    `json:"peer"`    // the peer's identity (host name, pid)
	Since   time.Time `json:"since"`   // when this session registered
	Version string    `json:"version"` // musubi version of the peer
}

// InitSchema creates the federation's top-level directories; it is
// idempotent.
func InitSchema(ctx context.Context, s coord.Store) error {
	for _, d := range coord.TopLevelDirs {
		if err := coord.EnsurePath(ctx, s, d); err != nil {
			return err
		}
	}
	return nil
}

// RegisterSite writes sites/<site> (creating or updating it) and creates
// the ephemeral live/<site> for the calling session. A live record left by
// an earlier session of the same site is replaced. Call it again after
// coord.StateExpired: the ephemeral died with the old session.
func RegisterSite(ctx context.Context, s coord.Store, site SiteRecord, live LiveRecord) error {
	if err := coord.ValidName(site.Name); err != nil {
		return fmt.Errorf("node: site: %w", err)
	}
	data, err := json.Marshal(site)
	if err != nil {
		return err
	}
	if _, err := s.Create(ctx, coord.SitePath(site.Name), data, coord.Persistent, nil); errors.Is(err, coord.ErrExists) {
		if _, err := s.Set(ctx, coord.SitePath(site.Name), data, coord.AnyVersion); err != nil {
			return fmt.Errorf("node: update site %s: %w", site.Name, err)
		}
	} else if err != nil {
		return fmt.Errorf("node: register site %s: %w", site.Name, err)
	}
	ldata, err := json.Marshal(live)
	if err != nil {
		return err
	}
	lp := coord.LivePath(site.Name)
	for attempt := 0; attempt < 3; attempt++ {
		_, err = s.Create(ctx, lp, ldata, coord.Ephemeral, nil)
		if !errors.Is(err, coord.ErrExists) {
			break
		}
		// A live record exists: ours (nothing to do) or a dead session's
		// that the ensemble has not expired yet (replace it).
		ok, st, xerr := s.Exists(ctx, lp)
		if xerr != nil {
			return fmt.Errorf("node: live %s: %w", site.Name, xerr)
		}
		if ok && st.EphemeralOwner == s.SessionID() {
			return nil
		}
		if ok {
			if derr := s.Delete(ctx, lp, st.Version); derr != nil && !errors.Is(derr, coord.ErrNotFound) && !errors.Is(derr, coord.ErrBadVersion) {
				return fmt.Errorf("node: replace stale live record of %s: %w", site.Name, derr)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("node: mark site %s live: %w", site.Name, err)
	}
	return nil
}

// SiteStatus is one site as `musubi status` shows it.
type SiteStatus struct {
	SiteRecord
	Live bool        `json:"live"`
	Peer *LiveRecord `json:"peer,omitempty"`
}

// FederationStatus is the federation's state read from the store.
type FederationStatus struct {
	Sites []SiteStatus `json:"sites"`
}

// ReadStatus reads sites/ and live/.
func ReadStatus(ctx context.Context, s coord.Store) (FederationStatus, error) {
	var fs FederationStatus
	names, _, err := s.Children(ctx, coord.SitesDir)
	if err != nil {
		return fs, fmt.Errorf("node: list sites: %w", err)
	}
	for _, n := range names {
		st := SiteStatus{SiteRecord: SiteRecord{Name: n}}
		if data, _, err := s.Get(ctx, coord.SitePath(n)); err == nil {
			if err := json.Unmarshal(data, &st.SiteRecord); err != nil {
				return fs, fmt.Errorf("node: site %s: bad record: %w", n, err)
			}
		} else if !errors.Is(err, coord.ErrNotFound) {
			return fs, err
		}
		if data, _, err := s.Get(ctx, coord.LivePath(n)); err == nil {
			var lr LiveRecord
			if err := json.Unmarshal(data, &lr); err == nil {
				st.Peer = &lr
			}
			st.Live = true
		} else if !errors.Is(err, coord.ErrNotFound) {
			return fs, err
		}
		fs.Sites = append(fs.Sites, st)
	}
	sort.Slice(fs.Sites, func(i, j int) bool { return fs.Sites[i].Name < fs.Sites[j].Name })
	return fs, nil
}

// WriteTable prints the status as a table; extra, when not nil, adds a
// column per site (e.g. the ZooKeeper server's role).
func (fs FederationStatus) WriteTable(w io.Writer, extraName string, extra func(SiteStatus) string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	hdr := "SITE\tSTATE\tZK SERVER\tPEER\tLIVE SINCE"
	if extra != nil {
		hdr += "\t" + extraName
	}
	fmt.Fprintln(tw, hdr)
	for _, s := range fs.Sites {
		state, peer, since := "down", "-", "-"
		if s.Live {
			state = "live"
			if s.Peer != nil {
				peer, since = s.Peer.Peer, s.Peer.Since.Format(time.RFC3339)
			}
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s", s.Name, state, s.ZKServer, peer, since)
		if extra != nil {
			line += "\t" + extra(s)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}
