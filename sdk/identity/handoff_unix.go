//go:build unix

package identity

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// ReadHandoffFD reads a handoff from the inherited pipe whose descriptor
// number is fdValue (the value of EnvPluginIdentityFD) and closes it. ok is
// false when fdValue is empty: the process was not handed an identity. A
// descriptor that is not a pipe is left alone (it may be one of the
// runtime's own) and reported.
func ReadHandoffFD(fdValue string) (id *Identity, roots []*PublicKey, ok bool, err error) {
	if fdValue == "" {
		return nil, nil, false, nil
	}
	fd, err := strconv.Atoi(fdValue)
	if err != nil || fd < 3 {
		return nil, nil, true, fmt.Errorf("%w: %s=%q is not an inherited descriptor number", ErrHandoff, EnvPluginIdentityFD, fdValue)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, nil, true, fmt.Errorf("%w: descriptor %d: %w", ErrHandoff, fd, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
		return nil, nil, true, fmt.Errorf("%w: descriptor %d is not a pipe", ErrHandoff, fd)
	}
	f := os.NewFile(uintptr(fd), "identity-handoff")
	defer f.Close()
	id, roots, err = ReadHandoff(f)
	return id, roots, true, err
}

// AttachHandoff arranges for cmd's process to inherit a pipe carrying id and
// roots (WriteHandoff), named to it by EnvPluginIdentityFD in cmd.Env. Call
// it before cmd starts and the returned release once the start has returned
// (successfully or not): release closes the parent's end of the pipe, so
// that the writer stops when the child never reads. The key is written from
// a goroutine, so it may exceed the pipe's buffer; it ends when the child
// has read everything or has closed (or never got) its end.
func AttachHandoff(cmd *exec.Cmd, id *Identity, roots []*PublicKey) (release func(), err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("identity: handoff pipe: %w", err)
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, r)
	cmd.Env = append(cmd.Env, EnvPluginIdentityFD+"="+strconv.Itoa(2+len(cmd.ExtraFiles)))
	go func() {
		_ = WriteHandoff(w, id, roots) // EPIPE when the child is gone: nothing to do
		w.Close()
	}()
	return func() { r.Close() }, nil
}
