package coord

import (
	"errors"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	good := []string{"a", "site1", "Site-2", "node.0", "u_x", "0abc", strings.Repeat("x", 63)}
	bad := []string{"", "-a", ".a", "_a", "a/b", "a b", "a~b", "é", strings.Repeat("x", 64), "a\x00"}
	for _, s := range good {
		if err := ValidName(s); err != nil {
			t.Errorf("ValidName(%q) = %v, want nil", s, err)
		}
	}
	for _, s := range bad {
		if err := ValidName(s); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("ValidName(%q) = %v, want ErrInvalidPath", s, err)
		}
	}
}

func TestValidPath(t *testing.T) {
	for _, p := range []string{"/", "/a", "/a/b", "/a.b/c-d"} {
		if err := ValidPath(p); err != nil {
			t.Errorf("ValidPath(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"", "a", "/a/", "//a", "/a//b", "/a/./b", "/a/..", "/a\x00"} {
		if err := ValidPath(p); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("ValidPath(%q) = %v, want ErrInvalidPath", p, err)
		}
	}
}

func TestLinkNames(t *testing.T) {
	if LinkName("s3", "s1") != "s1~s3" || LinkPath("s1", "s3") != "/links/s1~s3" {
		t.Errorf("LinkName not canonical: %s", LinkName("s3", "s1"))
	}
	a, b, err := ParseLinkName("s1~s3")
	if err != nil || a != "s1" || b != "s3" {
		t.Errorf("ParseLinkName = %q %q %v", a, b, err)
	}
	for _, n := range []string{"s1", "~s1", "s1~", "a~b~c"} {
		if _, _, err := ParseLinkName(n); err == nil {
			t.Errorf("ParseLinkName(%q) accepted", n)
		}
	}
}

func TestVLANPaths(t *testing.T) {
	if VLANPath(7) != "/vlans/0007" {
		t.Errorf("VLANPath(7) = %s", VLANPath(7))
	}
	if n, err := ParseVLAN("0007"); err != nil || n != 7 {
		t.Errorf("ParseVLAN = %d, %v", n, err)
	}
	for _, s := range []string{"0", "4095", "x", ""} {
		if _, err := ParseVLAN(s); err == nil {
			t.Errorf("ParseVLAN(%q) accepted", s)
		}
	}
}

func TestVCPaths(t *testing.T) {
	want := []string{"/vc/v", "/vc/v/status", "/vc/v/nodes", "/vc/v/hosts", "/vc/v/accounts", "/vc/v/jobs"}
	got := VCSubdirs("v")
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("VCSubdirs = %v", got)
	}
	if VCStatusPath("v", "s1") != "/vc/v/status/s1" || VCNodePath("v", "n0") != "/vc/v/nodes/n0" {
		t.Error("VC paths wrong")
	}
	if FederationRoot("demo") != "/musubi/demo" {
		t.Error("FederationRoot wrong")
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"a", "", "a/b", "site-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidName(s) == nil && (ValidPath("/"+s) != nil || strings.ContainsAny(s, "/~ ")) {
			t.Errorf("ValidName accepted %q, which is not a safe path element", s)
		}
	})
}
