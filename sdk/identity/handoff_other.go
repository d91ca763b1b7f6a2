//go:build !unix

package identity

import (
	"fmt"
	"os/exec"
)

// ReadHandoffFD is available on Unix systems only.
func ReadHandoffFD(fdValue string) (id *Identity, roots []*PublicKey, ok bool, err error) {
	if fdValue == "" {
		return nil, nil, false, nil
	}
	return nil, nil, true, fmt.Errorf("%w: inherited descriptors need a Unix system", ErrHandoff)
}

// AttachHandoff is available on Unix systems only.
func AttachHandoff(cmd *exec.Cmd, id *Identity, roots []*PublicKey) (release func(), err error) {
	return nil, fmt.Errorf("%w: inherited descriptors need a Unix system", ErrHandoff)
}
