package cluster

// The DRA driver's image, built locally from hostdev-dra's release binary
// (no registry, no Dockerfile, no base image): one layer with the binary at
// /usr/bin/hostdev-dra and exactly the shared libraries the dynamic loader
// resolves for it (`ldd`), at the paths it resolves them to, plus the
// loader itself. deploy/kubernetes/daemonset.yaml names the image; the
// archive is imported on each node with containerd's `ctr images import`.
//
// Owns: the driver image's layout. Must not: fetch anything, or put more
// than the binary and its libraries in the image.

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

const maxDriverFile = 1 << 30

// ldd lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and
// "/lib64/ld-linux-x86-64.so.2 (0x...)"; linux-vdso has no file.
var lddLine = regexp.MustCompile(`^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$`)

// sharedLibraries lists the absolute paths the dynamic loader resolves for
// bin, the loader included, sorted; none for a static binary. (ldd may run
// the binary's loader: build the image from a binary you built.)
func sharedLibraries(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil && strings.Contains(string(out), "not a dynamic executable") {
		return nil, nil // static: the binary alone
	}
	if err != nil {
		return nil, fmt.Errorf("ldd %s failed: %w: %s", bin, err, strings.TrimSpace(string(out)))
	}
	var libs []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("ldd %s: a library is missing: %s", bin, strings.TrimSpace(line))
		}
		if m := lddLine.FindStringSubmatch(line); m != nil {
			libs = append(libs, m[1])
		}
	}
	sort.Strings(libs)
	return libs, nil
}

// driverLayer is the tar of the binary at /usr/bin/hostdev-dra and its
// libraries (each symlink's target read, stored as a regular file at the
// path the loader asks for).
func driverLayer(bin string) ([]byte, error) {
	libs, err := sharedLibraries(bin)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	var addDirs func(d string) error
	addDirs = func(d string) error {
		if d == "." || d == "/" || d == "" || dirs[d] {
			return nil
		}
		if err := addDirs(filepath.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: layerTime, Format: tar.FormatPAX})
	}
	add := func(at, from string, mode int64) error {
		data, err := readSmall(from, maxDriverFile)
		if err != nil {
			return fmt.Errorf("cannot read %s: %w", from, err)
		}
		if err := addDirs(filepath.Dir(at)); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(at, "/"), Mode: mode, Size: int64(len(data)), ModTime: layerTime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	}
	for _, d := range []string{"/tmp", "/etc"} {
		if err := addDirs(d); err != nil {
			return nil, err
		}
	}
	if err := add("/usr/bin/hostdev-dra", bin, 0o755); err != nil {
		return nil, err
	}
	for _, l := range libs {
		real, err := filepath.EvalSymlinks(l)
		if err != nil {
			return nil, fmt.Errorf("cannot resolve %s: %w", l, err)
		}
		if err := add(l, real, 0o755); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// BuildDriverImage writes an OCI archive holding one image, name (e.g.
// hostdev.local/hostdev-dra:0.1.0), whose entrypoint is the driver built
// at bin.
func BuildDriverImage(bin, name, dest string) error {
	if !strings.Contains(name, ":") {
		return fmt.Errorf("image name %q has no tag", name)
	}
	st, err := os.Stat(bin)
	if err != nil {
		return fmt.Errorf("cannot read %s (build hostdev-dra first): %w", bin, err)
	}
	if !st.Mode().IsRegular() {
		what := "something else"
		switch {
		case st.Mode()&os.ModeNamedPipe != 0:
			what = "a FIFO"
		case st.IsDir():
			what = "a directory"
		case st.Mode()&os.ModeDevice != 0:
			what = "a device"
		}
		return fmt.Errorf("%s is not a regular file: it is %s", bin, what)
	}
	arch, err := driverArch(bin)
	if err != nil {
		return err
	}
	data, err := driverLayer(bin)
	if err != nil {
		return err
	}
	layer := newBlob(mediaLayer, data)
	cfg := map[string]any{
		"architecture": arch,
		"os":           "linux",
		"created":      layerTime.Format(time.RFC3339),
		"config": map[string]any{
			"Entrypoint": []string{"/usr/bin/hostdev-dra"},
			"WorkingDir": "/",
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layer.desc.Digest}},
	}
	return writeArchive(dest, []blob{layer}, []imageConfig{{name: name, config: cfg, layers: []descriptor{layer.desc}}})
}

// driverArch is the OCI architecture of the ELF executable at p, read from
// its header: an image says the architecture its binary runs on, so that a
// node of another one refuses it instead of failing to exec it.
func driverArch(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", p, err)
	}
	defer f.Close()
	b := make([]byte, 4)
	if _, err := io.ReadFull(f, b); err != nil || !bytes.Equal(b, []byte("\x7fELF")) {
		return "", fmt.Errorf("%s is not an ELF executable", p)
	}
	e, err := elf.NewFile(f)
	if err != nil {
		return "", fmt.Errorf("%s has an ELF header Go cannot read: %w", p, err)
	}
	little := e.ByteOrder == binary.LittleEndian
	switch {
	case e.Machine == elf.EM_X86_64:
		return "amd64", nil
	case e.Machine == elf.EM_AARCH64:
		return "arm64", nil
	case e.Machine == elf.EM_PPC64 && little:
		return "ppc64le", nil
	case e.Machine == elf.EM_S390:
		return "s390x", nil
	case e.Machine == elf.EM_RISCV && e.Class == elf.ELFCLASS64:
		return "riscv64", nil
	}
	return "", fmt.Errorf("%s is built for %s, which has no image architecture here", p, e.Machine)
}

type imageConfig struct {
	name   string
	config map[string]any
	layers []descriptor
}

// writeArchive writes an OCI image layout tar with the given layers and one
// manifest per image, named for containerd's import.
func writeArchive(dest string, layers []blob, images []imageConfig) error {
	blobs := append([]blob(nil), layers...)
	var manifests []descriptor
	for _, im := range images {
		cb, err := json.Marshal(im.config)
		if err != nil {
			return err
		}
		config := newBlob(mediaConfig, cb)
		mb, err := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     mediaManifest,
			"config":        config.desc,
			"layers":        im.layers,
		})
		if err != nil {
			return err
		}
		manifest := newBlob(mediaManifest, mb)
		blobs = append(blobs, config, manifest)
		d := manifest.desc
		d.Annotations = map[string]string{
			"io.containerd.image.name":          im.name,
			"org.opencontainers.image.ref.name": im.name[strings.LastIndexByte(im.name, ':')+1:],
		}
		manifests = append(manifests, d)
	}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaIndex, "manifests": manifests})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: layerTime}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := put("index.json", index); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, b := range blobs {
		if seen[b.desc.Digest] {
			continue
		}
		seen[b.desc.Digest] = true
		if err := put("blobs/sha256/"+strings.TrimPrefix(b.desc.Digest, "sha256:"), b.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return writeFileAtomic(dest, buf.Bytes(), 0o644)
}

// ImportImage loads an OCI archive into the node's containerd (the CRI
// plugin's namespace) and checks that containerd lists name afterwards.
func (l *Lab) ImportImage(archive, name string) error {
	return l.importNamed(archive, []string{name})
}
