package overlay

import (
	"fmt"
	"strconv"
)

// MAC is an Ethernet (EUI-48) address. The zero MAC means "unset" wherever a
// MAC is optional (for example Match.EthDst). It is a value type, so it can
// be compared and used as a map key; this package avoids "net" so that pure
// packages can import it.
type MAC [6]byte

// BroadcastMAC is ff:ff:ff:ff:ff:ff.
var BroadcastMAC = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ParseMAC parses the colon-separated form "02:00:00:00:00:01" (hex digits
// in either case).
func ParseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) != 17 {
		return m, fmt.Errorf("%w: MAC %q: want xx:xx:xx:xx:xx:xx", ErrInvalid, s)
	}
	for i := range 6 {
		if i > 0 && s[3*i-1] != ':' {
			return MAC{}, fmt.Errorf("%w: MAC %q: want xx:xx:xx:xx:xx:xx", ErrInvalid, s)
		}
		b, err := strconv.ParseUint(s[3*i:3*i+2], 16, 8)
		if err != nil {
			return MAC{}, fmt.Errorf("%w: MAC %q: want xx:xx:xx:xx:xx:xx", ErrInvalid, s)
		}
		m[i] = byte(b)
	}
	return m, nil
}

// MustParseMAC is ParseMAC for constants in tests and tables; it panics on a
// malformed literal.
func MustParseMAC(s string) MAC {
	m, err := ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// String returns the lower-case colon-separated form.
func (m MAC) String() string {
	const hex = "0123456789abcdef"
	b := make([]byte, 0, 17)
	for i, x := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hex[x>>4], hex[x&0xf])
	}
	return string(b)
}

// IsZero reports whether m is 00:00:00:00:00:00 (unset).
func (m MAC) IsZero() bool { return m == MAC{} }

// IsMulticast reports whether m is a group address (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 == 1 }

// MarshalText implements encoding.TextMarshaler (JSON strings).
func (m MAC) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *MAC) UnmarshalText(b []byte) error {
	v, err := ParseMAC(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}
