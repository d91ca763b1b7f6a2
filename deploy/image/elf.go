package main

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// elfDeps is what the dynamic loader needs to run an ELF file.
type elfDeps struct {
	interp string   // PT_INTERP, "" for a static file
	needed []string // DT_NEEDED, in order
	search []string // DT_RUNPATH / DT_RPATH directories, $ORIGIN expanded
	class  elf.Class
	mach   elf.Machine
}

func readELF(path string) (*elfDeps, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d := &elfDeps{class: f.Class, mach: f.Machine}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return nil, fmt.Errorf("%s: PT_INTERP: %w", path, err)
			}
			d.interp = strings.TrimRight(string(b), "\x00")
		}
	}
	if f.Section(".dynamic") == nil && f.SectionByType(elf.SHT_DYNAMIC) == nil {
		return d, nil
	}
	if d.needed, err = f.DynString(elf.DT_NEEDED); err != nil {
		return nil, fmt.Errorf("%s: DT_NEEDED: %w", path, err)
	}
	// DT_RUNPATH replaces DT_RPATH when both are there
	rp, _ := f.DynString(elf.DT_RUNPATH)
	if len(rp) == 0 {
		rp, _ = f.DynString(elf.DT_RPATH)
	}
	origin := filepath.Dir(path)
	for _, s := range rp {
		for _, dir := range strings.Split(s, ":") {
			dir = strings.ReplaceAll(strings.ReplaceAll(dir, "${ORIGIN}", origin), "$ORIGIN", origin)
			if dir != "" {
				d.search = append(d.search, dir)
			}
		}
	}
	return d, nil
}

// multiarch is Debian's library directory triple for a machine.
func multiarch(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "x86_64-linux-gnu"
	case elf.EM_AARCH64:
		return "aarch64-linux-gnu"
	}
	return ""
}

// systemDirs is where the build host keeps shared libraries, searched in
// this order after a file's own run path (the glibc loader's defaults,
// multiarch first).
func systemDirs(m elf.Machine) []string {
	var ds []string
	if t := multiarch(m); t != "" {
		ds = append(ds, "/lib/"+t, "/usr/lib/"+t)
	}
	return append(ds, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
}

// lib is one shared library the image needs: the file read on the build
// host (links followed) and the path the image holds it at.
type lib struct {
	src, dst string
}

// resolveLibs walks the DT_NEEDED closure of the ELF files roots (their
// build-host paths mapped to their image paths): every library, found in
// the file's run path or the system directories with the same class and
// machine, goes into the image at the path the loader will look in (the
// system directory it was found in, or beside the file for $ORIGIN), and
// the loader itself at its PT_INTERP path. A library that cannot be
// found is an error: the image would not start.
func resolveLibs(roots map[string]string) ([]lib, error) {
	type item struct{ src, dst string }
	var queue []item
	for src, dst := range roots {
		queue = append(queue, item{src, dst})
	}
	seen := map[string]bool{} // image paths
	var out []lib
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		d, err := readELF(it.src)
		if err != nil {
			return nil, err
		}
		if d.interp != "" && !seen[d.interp] {
			if _, err := os.Stat(d.interp); err != nil {
				return nil, fmt.Errorf("%s: interpreter %s: %w", it.src, d.interp, err)
			}
			seen[d.interp] = true
			out = append(out, lib{src: d.interp, dst: d.interp})
			queue = append(queue, item{d.interp, d.interp})
		}
	next:
		for _, n := range d.needed {
			if strings.Contains(n, "/") {
				return nil, fmt.Errorf("%s: DT_NEEDED %q with a path is not supported", it.src, n)
			}
			for i, dir := range append(append([]string{}, d.search...), systemDirs(d.mach)...) {
				cand := filepath.Join(dir, n)
				if !sameArch(cand, d) {
					continue
				}
				dst := filepath.Join(dir, n)
				if i < len(d.search) {
					// found through the run path: keep it where the
					// run path will find it in the image, beside the
					// file when the run path is $ORIGIN
					rel, err := filepath.Rel(filepath.Dir(it.src), dir)
					if err != nil || strings.HasPrefix(rel, "..") {
						return nil, fmt.Errorf("%s: %s found in run path %s outside $ORIGIN", it.src, n, dir)
					}
					dst = filepath.Join(filepath.Dir(it.dst), rel, n)
				}
				if !seen[dst] {
					seen[dst] = true
					out = append(out, lib{src: cand, dst: dst})
					queue = append(queue, item{cand, dst})
				}
				continue next
			}
			return nil, fmt.Errorf("%s: shared library %s not found (searched %q)", it.src, n, append(d.search, systemDirs(d.mach)...))
		}
	}
	return out, nil
}

// sameArch reports whether path is an ELF file of d's class and machine.
func sameArch(path string, d *elfDeps) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Class == d.class && f.Machine == d.mach
}
