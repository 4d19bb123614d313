package coord

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// The znode schema of DESIGN.md §4. Every path below is relative to the
// federation root (FederationRoot), which a Store applies as its chroot;
// callers use these absolute-looking paths unchanged.
const (
	SitesDir        = "/sites"        // sites/<site>: site config (gateway, hosts, capacity)
	LiveDir         = "/live"         // live/<site>: ephemeral, the peer's session
	LinksDir        = "/links"        // links/<a>~<b>: measured cost and state, written by a
	HostsDir        = "/hosts"        // hosts/<name>: address records
	AccountsDir     = "/accounts"     // accounts/<user>: uid, gid, shell, SSH keys
	TimetableDir    = "/timetable"    // timetable/<resource>/<slot>
	ReservationsDir = "/reservations" // reservations/<vc>
	VLANsDir        = "/vlans"        // vlans/<tag>: allocation with window
	VCDir           = "/vc"           // vc/<vc>/...: a VC's own subtree (per-VC ACL)
)

// TopLevelDirs lists the schema's top-level directories, in the order a
// new federation creates them.
var TopLevelDirs = []string{SitesDir, LiveDir, LinksDir, HostsDir, AccountsDir, TimetableDir, ReservationsDir, VLANsDir, VCDir}

// ValidName reports whether s may be used as one path element of the
// schema (a site, host, user, VC, node or resource name): 1-63 letters,
// digits, '.', '_' or '-', starting with a letter or digit (a DNS label,
// plus '_' and '.').
func ValidName(s string) error {
	ok := len(s) >= 1 && len(s) <= 63 && isAlnum(s[0])
	for i := 1; ok && i < len(s); i++ {
		c := s[i]
		ok = isAlnum(c) || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("%w: name %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalidPath, s)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// ValidPath reports whether p is a well-formed absolute node path.
func ValidPath(p string) error {
	if p == "/" {
		return nil
	}
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") || strings.ContainsRune(p, 0) {
		return fmt.Errorf("%w: %q", ErrInvalidPath, p)
	}
	for _, el := range strings.Split(p[1:], "/") {
		if el == "." || el == ".." {
			return fmt.Errorf("%w: %q has a %q element", ErrInvalidPath, p, el)
		}
	}
	return nil
}

// Parent returns the parent of an absolute path ("/" for top-level nodes).
func Parent(p string) string { return path.Dir(p) }

// Base returns the last element of an absolute path.
func Base(p string) string { return path.Base(p) }

// Join joins path elements under parent.
func Join(parent string, elems ...string) string {
	return path.Join(append([]string{parent}, elems...)...)
}

// FederationRoot is the chroot of a federation's data: /musubi/<federation>.
func FederationRoot(federation string) string { return "/musubi/" + federation }

// SitePath is sites/<site>.
func SitePath(site string) string { return SitesDir + "/" + site }

// LivePath is live/<site>.
func LivePath(site string) string { return LiveDir + "/" + site }

// LinkName names the link between two sites canonically: the lower name
// first, joined by '~', so both ends compute the same node.
func LinkName(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return a + "~" + b
}

// ParseLinkName splits a links/ child name into its two sites.
func ParseLinkName(name string) (a, b string, err error) {
	a, b, ok := strings.Cut(name, "~")
	if !ok || a == "" || b == "" || strings.Contains(b, "~") {
		return "", "", fmt.Errorf("%w: link name %q is not <site>~<site>", ErrInvalidPath, name)
	}
	return a, b, nil
}

// LinkPath is links/<a>~<b> with the sites in canonical order.
func LinkPath(a, b string) string { return LinksDir + "/" + LinkName(a, b) }

// HostPath is hosts/<name>.
func HostPath(name string) string { return HostsDir + "/" + name }

// AccountPath is accounts/<user>.
func AccountPath(user string) string { return AccountsDir + "/" + user }

// TimetableResourcePath is timetable/<resource>.
func TimetableResourcePath(resource string) string { return TimetableDir + "/" + resource }

// TimetableSlotPath is timetable/<resource>/<slot>.
func TimetableSlotPath(resource, slot string) string {
	return TimetableDir + "/" + resource + "/" + slot
}

// ReservationPath is reservations/<vc>.
func ReservationPath(vc string) string { return ReservationsDir + "/" + vc }

// VLANPath is vlans/<tag>; tags are 1-4094 and zero-padded to four digits
// so that children sort numerically.
func VLANPath(tag int) string { return fmt.Sprintf("%s/%04d", VLANsDir, tag) }

// ParseVLAN parses a vlans/ child name.
func ParseVLAN(name string) (int, error) {
	n, err := strconv.Atoi(name)
	if err != nil || n < 1 || n > 4094 {
		return 0, fmt.Errorf("%w: VLAN %q is not a tag in 1-4094", ErrInvalidPath, name)
	}
	return n, nil
}

// VCPath is vc/<vc>, the root of a VC's subtree.
func VCPath(vc string) string { return VCDir + "/" + vc }

// VCSpecPath is vc/<vc>/spec.
func VCSpecPath(vc string) string { return VCPath(vc) + "/spec" }

// VCStatusDir is vc/<vc>/status.
func VCStatusDir(vc string) string { return VCPath(vc) + "/status" }

// VCStatusPath is vc/<vc>/status/<site>.
func VCStatusPath(vc, site string) string { return VCStatusDir(vc) + "/" + site }

// VCNodesDir is vc/<vc>/nodes.
func VCNodesDir(vc string) string { return VCPath(vc) + "/nodes" }

// VCNodePath is vc/<vc>/nodes/<node>.
func VCNodePath(vc, node string) string { return VCNodesDir(vc) + "/" + node }

// VCHostsDir is vc/<vc>/hosts.
func VCHostsDir(vc string) string { return VCPath(vc) + "/hosts" }

// VCAccountsDir is vc/<vc>/accounts.
func VCAccountsDir(vc string) string { return VCPath(vc) + "/accounts" }

// VCJobsDir is vc/<vc>/jobs, the root of the VC's job queue (its layout
// belongs to package jobqueue).
func VCJobsDir(vc string) string { return VCPath(vc) + "/jobs" }

// VCSubdirs are the directories a new VC subtree is created with.
func VCSubdirs(vc string) []string {
	return []string{VCPath(vc), VCStatusDir(vc), VCNodesDir(vc), VCHostsDir(vc), VCAccountsDir(vc), VCJobsDir(vc)}
}
