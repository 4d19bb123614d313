package iscsi

import (
	"encoding/base32"
	"fmt"
	"regexp"
	"strings"

	"github.com/musubi-fabric/musubi/coord"
	"github.com/musubi-fabric/musubi/node/provision"
)

// IQNPrefix starts the name of every target the driver creates: the mark of
// a musubi-owned target. List and Remove never touch targets without it.
const IQNPrefix = "iqn.2026-11.org.musubi:"

// UserPrefix starts the name of every CHAP account the driver creates.
const UserPrefix = "musubi:"

// TargetIQN is the target name of volume vc/node:
// "iqn.2026-11.org.musubi:<vc>:<node>". The separator is ':' rather than
// '.', which VC and node names may contain ("a.b"/"c" and "a"/"b.c" would
// collide). A name that is not already a valid IQN component (upper-case
// letters, '_') is written as '-' followed by its base32 spelling, so the
// mapping can be reversed (ParseTargetIQN) and never collides.
func TargetIQN(vc, node string) string { return IQNPrefix + iqnPart(vc) + ":" + iqnPart(node) }

// CHAPUser is the incoming CHAP account name of volume vc/node:
// "musubi:<vc>:<node>" with the same spelling as TargetIQN.
func CHAPUser(vc, node string) string { return UserPrefix + iqnPart(vc) + ":" + iqnPart(node) }

// ParseTargetIQN returns the VC and node of a musubi target name.
func ParseTargetIQN(iqn string) (vc, node string, ok bool) {
	rest, ok := strings.CutPrefix(iqn, IQNPrefix)
	if !ok {
		return "", "", false
	}
	return parsePair(rest)
}

// ParseCHAPUser returns the VC and node of a musubi CHAP account name.
func ParseCHAPUser(user string) (vc, node string, ok bool) {
	rest, ok := strings.CutPrefix(user, UserPrefix)
	if !ok {
		return "", "", false
	}
	return parsePair(rest)
}

func parsePair(s string) (vc, node string, ok bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", false
	}
	vc, ok1 := unIQNPart(a)
	node, ok2 := unIQNPart(b)
	if !ok1 || !ok2 || coord.ValidName(vc) != nil || coord.ValidName(node) != nil {
		return "", "", false
	}
	return vc, node, true
}

var (
	plainPart = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]*$`)
	b32       = base32.StdEncoding.WithPadding(base32.NoPadding)
)

func iqnPart(s string) string {
	if plainPart.MatchString(s) {
		return s
	}
	return "-" + strings.ToLower(b32.EncodeToString([]byte(s)))
}

func unIQNPart(p string) (string, bool) {
	enc, ok := strings.CutPrefix(p, "-")
	if !ok {
		return p, plainPart.MatchString(p)
	}
	b, err := b32.DecodeString(strings.ToUpper(enc))
	if err != nil {
		return "", false
	}
	return string(b), true
}

// checkNames refuses VC and node names whose target name would be too long.
func checkNames(vc, node string) error {
	if iqn := TargetIQN(vc, node); !provision.ValidIQN(iqn) {
		return fmt.Errorf("%w: %s/%s: target name %q is not a valid IQN (at most 223 bytes)", provision.ErrInvalid, vc, node, iqn)
	}
	return nil
}
