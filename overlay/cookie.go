package overlay

import "fmt"

// Cookie is an OpenFlow flow cookie as musubi lays it out, so that a
// restarted controller can tell its own flows, their VC and their
// generation from what it finds on the switch:
//
//	bits 63-48  owner magic CookieMagic (0x6d73, "ms"); other values are foreign
//	bits 47-44  reserved, zero
//	bits 43-32  VLAN tag of the VC the flow serves (0 for infrastructure flows)
//	bits 31-0   generation (Desired.Generation)
//
// Flows whose cookie does not carry the magic belong to someone else and
// musubi never modifies or deletes them.
type Cookie uint64

// CookieMagic is the owner mark in the top 16 bits of every musubi cookie.
const CookieMagic = 0x6d73

// Masks of the cookie's fields, for OpenFlow cookie/mask matching (for
// example deleting every flow of one VC: cookie=NewCookie(vlan,0),
// mask=CookieOwnerMask|CookieVLANMask).
const (
	CookieOwnerMask      Cookie = 0xffff_0000_0000_0000
	CookieReservedMask   Cookie = 0x0000_f000_0000_0000
	CookieVLANMask       Cookie = 0x0000_0fff_0000_0000
	CookieGenerationMask Cookie = 0x0000_0000_ffff_ffff
)

// NewCookie encodes a musubi-owned cookie. vlan must be 0-4095; higher bits
// are discarded (Validate rejects VLANs above 4094 elsewhere).
func NewCookie(vlan uint16, generation uint32) Cookie {
	return Cookie(CookieMagic)<<48 | Cookie(vlan&0xfff)<<32 | Cookie(generation)
}

// Owned reports whether the cookie carries musubi's owner magic and a zero
// reserved field.
func (c Cookie) Owned() bool {
	return c&CookieOwnerMask == Cookie(CookieMagic)<<48 && c&CookieReservedMask == 0
}

// VLAN returns the VC VLAN field (0 for infrastructure flows).
func (c Cookie) VLAN() uint16 { return uint16(c & CookieVLANMask >> 32) }

// Generation returns the generation field.
func (c Cookie) Generation() uint32 { return uint32(c & CookieGenerationMask) }

// Decode splits a cookie into its fields; ok is false for foreign cookies.
func (c Cookie) Decode() (vlan uint16, generation uint32, ok bool) {
	if !c.Owned() {
		return 0, 0, false
	}
	return c.VLAN(), c.Generation(), true
}

// String is the hexadecimal form ovs-ofctl prints ("0x6d73000a00000003").
func (c Cookie) String() string { return fmt.Sprintf("%#x", uint64(c)) }
