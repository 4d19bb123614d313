package qemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/vmtest"
)

func TestProbeFirmware(t *testing.T) {
	fw := ProbeFirmware()
	if len(fw) != 64<<10 {
		t.Fatalf("size %d", len(fw))
	}
	// The reset vector jumps to the probe at 0xf000.
	if fw[0xfff0] != 0xe9 || 0xfff3+int(int16(uint16(fw[0xfff1])|uint16(fw[0xfff2])<<8)) != 0xf000 {
		t.Fatalf("reset vector % x", fw[0xfff0:0xfff3])
	}
	if fw[0xf000+11] != probeCode || probeExit != 85 {
		t.Fatal("probe code")
	}
}

func TestAccelDecision(t *testing.T) {
	kvm := filepath.Join(t.TempDir(), "kvm")
	if err := os.WriteFile(kvm, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		device string
		answer func(c vm.Cmd) ([]byte, bool, error)
		want   string
	}{
		{"probe passes", kvm, func(c vm.Cmd) ([]byte, bool, error) {
			return nil, true, &vm.CmdError{Cmd: c.String(), ExitCode: 85, Err: os.ErrClosed}
		}, AccelKVM},
		{"probe hangs", kvm, func(c vm.Cmd) ([]byte, bool, error) {
			return nil, true, &vm.CmdError{Cmd: c.String(), ExitCode: -1, Err: context.DeadlineExceeded}
		}, AccelTCG},
		{"no device", filepath.Join(t.TempDir(), "none"), nil, AccelTCG},
	} {
		host := vmtest.NewFakeHost()
		var probed []string
		if tc.answer != nil {
			host.OnRun = func(c vm.Cmd) ([]byte, bool, error) {
				if strings.Contains(c.String(), "-bios") {
					probed = append(probed, c.String())
					return tc.answer(c)
				}
				return nil, false, nil
			}
		}
		b, err := New(Config{StateDir: t.TempDir(), Runner: host, Ports: vmtest.NewMemPorts()})
		if err != nil {
			t.Fatal(err)
		}
		b.kvmDevice = tc.device
		if got := b.Accel(context.Background()); got != tc.want {
			t.Errorf("%s: accel %s, want %s", tc.name, got, tc.want)
		}
		if got := b.Accel(context.Background()); got != tc.want || len(probed) > 1 {
			t.Errorf("%s: second call %s, probes %d (want one)", tc.name, got, len(probed))
		}
		if tc.answer != nil && (len(probed) != 1 || !strings.Contains(probed[0], "-accel kvm")) {
			t.Errorf("%s: probe commands %q", tc.name, probed)
		}
	}
}
