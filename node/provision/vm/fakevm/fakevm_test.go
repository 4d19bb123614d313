package fakevm_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/musubi-fabric/musubi/node/provision/vm"
	"github.com/musubi-fabric/musubi/node/provision/vm/fakevm"
	"github.com/musubi-fabric/musubi/node/provision/vm/vmtest"
)

func TestContract(t *testing.T) {
	h := fakevm.NewHost()
	vmtest.Run(t, vmtest.Harness{
		New: func(t *testing.T, ready vm.ReadyFunc) vm.Backend {
			return fakevm.New(h, fakevm.Config{Ready: ready})
		},
		Spec:  func(t *testing.T, sp *vm.NodeSpec) {},
		Crash: func(t *testing.T, st vm.NodeState) { h.Crash(st.Name) },
		Leftovers: func(t *testing.T) []string {
			return h.Running()
		},
	})
}

func TestFailNextAndCalls(t *testing.T) {
	h := fakevm.NewHost()
	b := fakevm.New(h, fakevm.Config{})
	boom := errors.New("boom")
	h.FailNext("ensure", boom)
	sp := vmtest.NewSpec("vc1", 0)
	ctx := context.Background()
	if _, err := b.Ensure(ctx, sp); !errors.Is(err, boom) {
		t.Fatalf("Ensure: %v", err)
	}
	if _, err := b.Ensure(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if got := h.Running(); !slices.Equal(got, []string{"vc1/n0"}) {
		t.Fatalf("running %v", got)
	}
	if err := b.Remove(ctx, "vc1/n0"); err != nil {
		t.Fatal(err)
	}
	if got, want := h.Calls(), []string{"ensure vc1/n0", "ensure vc1/n0", "remove vc1/n0"}; !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
}
