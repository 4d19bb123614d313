package provision

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/musubi-fabric/musubi/coord"
)

// VolumeSpec describes one virtual node's disk: a copy-on-write clone of the
// VC's application image, exported to that node alone.
type VolumeSpec struct {
	// VC and Node name the virtual cluster and the node (coord names).
	VC   string
	Node string
	// Image is the application image on the storage host (an absolute path
	// of a raw image file, or of a logical volume for the LVM backend). It
	// is read when the clone is made; a later Ensure keeps the existing
	// clone (Remove the volume to re-clone it from another image).
	Image string
	// Size is the volume's size in bytes. Zero means the image's size; a
	// larger size grows the clone (the extra space reads as zeros); a
	// smaller one is refused.
	Size int64
	// InitiatorName is the node's iSCSI initiator name (IQN); only logins
	// presenting it are admitted. InitiatorAddress admits logins by source
	// address instead. Exactly one of the two must be set: tgt admits a
	// login that matches any entry of a target's list, so binding both
	// would let the address log in under any name.
	InitiatorName    string
	InitiatorAddress netip.Addr
	// CHAPSecret is the secret a previous Ensure returned for this volume,
	// which the caller stored. With it, Ensure keeps (or, after a restart
	// of the target daemon, restores) that secret; without it, Ensure
	// generates a new one and replaces any the target had.
	CHAPSecret string
}

// Name is the volume's name, "<vc>/<node>".
func (s VolumeSpec) Name() string { return VolumeName(s.VC, s.Node) }

// Validate checks the fields every driver needs.
func (s VolumeSpec) Validate() error {
	if err := coord.ValidName(s.VC); err != nil {
		return fmt.Errorf("%w: VC: %v", ErrInvalid, err)
	}
	if err := coord.ValidName(s.Node); err != nil {
		return fmt.Errorf("%w: node: %v", ErrInvalid, err)
	}
	if !strings.HasPrefix(s.Image, "/") {
		return fmt.Errorf("%w: image %q is not an absolute path", ErrInvalid, s.Image)
	}
	if s.Size < 0 {
		return fmt.Errorf("%w: size %d", ErrInvalid, s.Size)
	}
	switch {
	case s.InitiatorName == "" && !s.InitiatorAddress.IsValid():
		return fmt.Errorf("%w: %s: no initiator name or address to admit", ErrInvalid, s.Name())
	case s.InitiatorName != "" && s.InitiatorAddress.IsValid():
		return fmt.Errorf("%w: %s: give an initiator name or an address, not both (tgt would admit either)", ErrInvalid, s.Name())
	case s.InitiatorName != "" && !ValidIQN(s.InitiatorName):
		return fmt.Errorf("%w: initiator name %q", ErrInvalid, s.InitiatorName)
	}
	if s.CHAPSecret != "" && !ValidSecret(s.CHAPSecret) {
		// The secret itself is never printed.
		return fmt.Errorf("%w: %s: CHAP secret has %d characters; want %d-%d letters and digits",
			ErrInvalid, s.Name(), len(s.CHAPSecret), MinSecretLen, MaxSecretLen)
	}
	return nil
}

// CHAP secret bounds: at least 12 characters (what common initiators
// require), only letters and digits (tgt's management protocol separates
// fields with commas, and iSCSI URLs carry the secret).
const (
	MinSecretLen = 12
	MaxSecretLen = 64
)

// ValidSecret reports whether s can be a CHAP secret of a musubi volume.
func ValidSecret(s string) bool {
	if len(s) < MinSecretLen || len(s) > MaxSecretLen {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// ValidIQN reports whether s looks like an iSCSI qualified name:
// "iqn." followed by lower-case letters, digits, '.', '-' and ':' (RFC 3720
// names after normalisation), at most 223 bytes.
func ValidIQN(s string) bool {
	if !strings.HasPrefix(s, "iqn.") || len(s) > 223 || len(s) < 6 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':') {
			return false
		}
	}
	return true
}

// VolumeName is "<vc>/<node>", the name Remove takes.
func VolumeName(vc, node string) string { return vc + "/" + node }

// ParseVolumeName splits a volume name into its VC and node.
func ParseVolumeName(name string) (vc, node string, err error) {
	vc, node, ok := strings.Cut(name, "/")
	if !ok {
		return "", "", fmt.Errorf("%w: volume name %q: want <vc>/<node>", ErrInvalid, name)
	}
	if err := coord.ValidName(vc); err != nil {
		return "", "", fmt.Errorf("%w: volume name %q: %v", ErrInvalid, name, err)
	}
	if err := coord.ValidName(node); err != nil {
		return "", "", fmt.Errorf("%w: volume name %q: %v", ErrInvalid, name, err)
	}
	return vc, node, nil
}

// Volume is an exported volume as a driver reports it.
type Volume struct {
	// Name is "<vc>/<node>".
	Name string
	VC   string
	Node string
	// Target is the iSCSI target name (IQN) and LUN the node logs in to, at
	// Portal ("host:port").
	Target string
	LUN    int
	Portal string
	// CHAPUser is the incoming CHAP account bound to the target.
	CHAPUser string
	// CHAPSecret is set only in what Ensure returns (List never knows it):
	// the caller stores it and passes it back in the next spec. It must
	// never be logged.
	CHAPSecret string `json:"-"`
	// InitiatorName or InitiatorAddress is the one initiator admitted.
	InitiatorName    string
	InitiatorAddress netip.Addr
	// Backend is the storage backend ("file", "lvm"), Path the backing
	// store tgt serves, Size its size in bytes.
	Backend string
	Path    string
	Size    int64
	// Problems lists what List found incomplete (a target without its
	// backing file, a clone without a target, a missing account...). A
	// volume with problems is repaired by Ensure or deleted by Remove.
	Problems []string
}

// Complete reports whether List found every part of the volume in place.
func (v Volume) Complete() bool { return len(v.Problems) == 0 }

// VolumeDriver provisions volumes on one storage host.
type VolumeDriver interface {
	// Ensure makes the volume exist as spec says and returns it, with the
	// CHAP secret the target now requires.
	Ensure(ctx context.Context, spec VolumeSpec) (Volume, error)
	// Remove deletes the volume called name ("<vc>/<node>"): its target,
	// its account and its clone. A missing volume is not an error.
	Remove(ctx context.Context, name string) error
	// List returns every musubi volume on the host, complete or not,
	// sorted by name, without secrets.
	List(ctx context.Context) ([]Volume, error)
}
