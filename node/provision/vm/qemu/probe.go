package qemu

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/musubi-fabric/musubi/node/provision/vm"
)

// probeExit is QEMU's exit status when the probe firmware writes probeCode
// to the isa-debug-exit port: (code << 1) | 1.
const (
	probeCode = 0x2a
	probeExit = probeCode<<1 | 1
)

// ProbeFirmware is a 64 KiB firmware image for the KVM probe. The CPU
// starts in real mode at F000:FFF0, where a near jump leads to the probe:
//
//	mov ecx, 0x04000000   ; 64 million
//	dec ecx / jnz         ; count down
//	mov al, 0x2a
//	out 0xf4, al          ; isa-debug-exit: QEMU exits with 0x55
//	hlt / jmp hlt
//
// Under a working KVM this takes milliseconds; where guests are emulated
// instruction by instruction (the lab's kvm_pvm) it does not finish in
// the probe's time.
func ProbeFirmware() []byte {
	fw := make([]byte, 64<<10)
	for i := range fw {
		fw[i] = 0xf4 // hlt
	}
	code := []byte{
		0x66, 0xb9, 0x00, 0x00, 0x00, 0x04, // mov ecx, 0x04000000
		0x66, 0x49, // dec ecx
		0x75, 0xfc, // jnz -4
		0xb0, probeCode, // mov al, 0x2a
		0xe6, 0xf4, // out 0xf4, al
		0xf4,       // hlt
		0xeb, 0xfd, // jmp -3 (the hlt)
	}
	copy(fw[0xf000:], code)
	rel := 0xf000 - (0xfff0 + 3)
	fw[0xfff0] = 0xe9 // jmp near
	fw[0xfff1] = byte(rel)
	fw[0xfff2] = byte(rel >> 8)
	return fw
}

// ProbeTimeout bounds the KVM probe.
const ProbeTimeout = 5 * time.Second

// probeKVM checks that /dev/kvm opens and that QEMU runs the probe
// firmware under KVM to its end.
func (b *Backend) probeKVM(ctx context.Context) error {
	f, err := os.OpenFile(b.kvmDevice, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("%s: %w", b.kvmDevice, err)
	}
	f.Close()
	fw := filepath.Join(b.cfg.StateDir, "kvm-probe.bin")
	if err := os.WriteFile(fw, ProbeFirmware(), 0o600); err != nil {
		return err
	}
	defer os.Remove(fw)
	pctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	t0 := time.Now()
	_, err = b.cfg.Runner.Run(pctx, vm.Cmd{Name: b.cfg.QEMU, Args: []string{"-accel", "kvm", "-M", "pc", "-m", "16",
		"-nodefaults", "-no-user-config", "-display", "none", "-bios", fw,
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"}})
	if code := vm.ExitCodeOf(err); code != probeExit {
		if pctx.Err() != nil {
			return fmt.Errorf("the KVM probe did not finish in %v (guests are not run natively)", ProbeTimeout)
		}
		return fmt.Errorf("the KVM probe failed (exit %d): %v", code, err)
	}
	b.log.Debug("KVM probe passed", "took", time.Since(t0).Round(time.Millisecond))
	return nil
}
