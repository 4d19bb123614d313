package sitenet

import (
	"os"
	"testing"
)

func TestAddressing(t *testing.T) {
	if got := SubnetOf(3).String(); got != "10.200.3.0/24" {
		t.Errorf("SubnetOf(3) = %s", got)
	}
	if got := SiteAddr(3).String(); got != "10.200.3.2/24" {
		t.Errorf("SiteAddr(3) = %s", got)
	}
	if got := GatewayOf(3).String(); got != "10.200.3.1" {
		t.Errorf("GatewayOf(3) = %s", got)
	}
	if got := PhyMAC(3).String(); got != "02:6d:75:00:01:03" {
		t.Errorf("PhyMAC(3) = %s", got)
	}
	if !SubnetOf(7).Contains(SiteAddr(7).Addr()) || !SubnetOf(7).Contains(GatewayOf(7)) {
		t.Error("site and gateway outside their subnet")
	}
}

func TestParseStart(t *testing.T) {
	stat := "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10"
	if got, err := parseStart(stat, 4242); err != nil || got != "987654" {
		t.Errorf("parseStart = %q, %v", got, err)
	}
	if _, err := parseStart("garbage", 1); err == nil {
		t.Error("garbage parsed")
	}
	self := os.Getpid()
	start, err := ProcStart(self)
	if err != nil || start == "" {
		t.Fatalf("ProcStart(self) = %q, %v", start, err)
	}
	if !SameProcess(self, start) || SameProcess(self, start+"1") || SameProcess(0, start) {
		t.Error("SameProcess")
	}
	if st := ProcState(self); st != "R" && st != "S" {
		t.Errorf("ProcState(self) = %q", st)
	}
}
