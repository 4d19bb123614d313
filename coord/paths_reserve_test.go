package coord

import (
	"errors"
	"testing"
)

func TestTimetableResourcePaths(t *testing.T) {
	if got := TimetableHostPath("h1"); got != "/timetable/host.h1" {
		t.Errorf("TimetableHostPath = %s", got)
	}
	if got := TimetableStoragePath("st.a"); got != "/timetable/storage.st.a" {
		t.Errorf("TimetableStoragePath = %s", got)
	}
	if got := VLANSlotPath(42, "vc1"); got != "/vlans/0042/vc1" {
		t.Errorf("VLANSlotPath = %s", got)
	}
	for name, want := range map[string][2]string{
		"host.h1":        {ResourceHost, "h1"},
		"storage.st.a-b": {ResourceStorage, "st.a-b"},
	} {
		kind, host, err := ParseTimetableResource(name)
		if err != nil || kind != want[0] || host != want[1] {
			t.Errorf("ParseTimetableResource(%q) = %q, %q, %v", name, kind, host, err)
		}
	}
	for _, bad := range []string{"", "host", "host.", "gpu.h1", ".h1", "host._x", "storage." + string(make([]byte, 60))} {
		if _, _, err := ParseTimetableResource(bad); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("ParseTimetableResource(%q) = %v, want ErrInvalidPath", bad, err)
		}
	}
}
