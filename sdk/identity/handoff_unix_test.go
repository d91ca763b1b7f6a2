//go:build unix

package identity

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestHandoffFD reads a handoff from a real inherited-style pipe and closes
// it, and refuses descriptors that are not pipes without closing them.
func TestHandoffFD(t *testing.T) {
	root := seedKey(t, 23)
	id, err := Issue(root, "echo", "plugin", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = WriteHandoff(w, id, []*PublicKey{root.Public()})
		w.Close()
	}()
	// ReadHandoffFD closes the descriptor it reads: hand it a duplicate so
	// that r's own descriptor stays valid for the check below.
	fd, err := syscall.Dup(int(r.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	got, roots, ok, err := ReadHandoffFD(strconv.Itoa(fd))
	if err != nil || !ok || len(roots) != 1 || !got.Key.Public().Equal(id.Key.Public()) {
		t.Fatalf("ReadHandoffFD: %v %v", ok, err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("descriptor %d still open after the handoff: %v", fd, err)
	}
	if _, _, ok, err := ReadHandoffFD(""); ok || err != nil {
		t.Fatalf("no descriptor: %v %v", ok, err)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, v := range []string{"abc", "1", "-4", strconv.Itoa(int(f.Fd())), "987654"} {
		if _, _, ok, err := ReadHandoffFD(v); !ok || !errors.Is(err, ErrHandoff) {
			t.Errorf("%s=%s: %v %v", EnvPluginIdentityFD, v, ok, err)
		}
	}
	if _, err := f.Stat(); err != nil {
		t.Fatalf("a refused descriptor was closed: %v", err)
	}
}
