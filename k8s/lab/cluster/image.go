package cluster

// Images without a registry: one OCI archive (an OCI image layout in a tar)
// holds two images built from Debian's busybox-static, sharing one layer
// (/bin/busybox and a link per applet):
//
//   - PauseImage, the pod sandbox: a shell as pid 1 that sleeps, reaps and
//     exits on SIGTERM/SIGINT;
//   - TestImage, for test pods: the same layer, `sh` as its command.
//
// Nothing here fetches anything; the archive is imported with containerd's
// own `ctr images import`.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path"
	"sort"
	"strings"
	"time"
)

const (
	// PauseImage is the sandbox image containerd is pinned to.
	PauseImage = "hostdev.local/pause:lab"
	// TestImage is busybox for test pods (imagePullPolicy: Never).
	TestImage = "hostdev.local/busybox:lab"

	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	maxBusybox    = 16 << 20
)

// pauseScript is pid 1 of every pod sandbox: it waits for signals (a shell
// as pid 1 gets only those it traps) and reaps orphans through wait.
const pauseScript = `trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done`

var layerTime = time.Unix(0, 0).UTC()

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type blob struct {
	desc descriptor
	data []byte
}

func newBlob(mediaType string, data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{descriptor{MediaType: mediaType, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data))}, data}
}

// checkStatic refuses a busybox that needs a dynamic loader: the image has no
// libc.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("%s is not an ELF executable: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; the images need Debian's busybox-static", p)
		}
	}
	return nil
}

func busyboxLayer(busybox string) ([]byte, error) {
	if err := checkStatic(busybox); err != nil {
		return nil, err
	}
	bin, err := readSmall(busybox, maxBusybox)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", busybox, err)
	}
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list failed: %w", busybox, err)
	}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" && !strings.ContainsAny(a, "/.") {
			applets = append(applets, a)
		}
	}
	sort.Strings(applets)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: layerTime, Format: tar.FormatPAX})
	}
	for _, d := range []struct {
		n string
		m int64
	}{{"bin", 0o755}, {"dev", 0o755}, {"etc", 0o755}, {"proc", 0o555}, {"sys", 0o555}, {"tmp", 0o1777}, {"var", 0o755}, {"root", 0o700}} {
		if err := dir(d.n, d.m); err != nil {
			return nil, err
		}
	}
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"bin/busybox", 0o755, bin},
		{"etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		{"etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: layerTime, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	for _, a := range applets {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: path.Join("bin", a), Linkname: "busybox", Mode: 0o777, ModTime: layerTime, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type imageSpec struct {
	name       string
	entrypoint []string
	cmd        []string
}

// BuildImages writes the OCI archive holding PauseImage and TestImage to
// dest, from the static busybox at busybox.
func BuildImages(busybox, dest string) error {
	layerData, err := busyboxLayer(busybox)
	if err != nil {
		return err
	}
	layer := newBlob(mediaLayer, layerData)
	var images []imageConfig
	for _, im := range []imageSpec{
		{PauseImage, []string{"/bin/sh", "-c", pauseScript}, nil},
		{TestImage, nil, []string{"/bin/sh"}},
	} {
		images = append(images, imageConfig{name: im.name, layers: []descriptor{layer.desc}, config: map[string]any{
			"architecture": "amd64",
			"os":           "linux",
			"created":      layerTime.Format(time.RFC3339),
			"config": map[string]any{
				"Env":        []string{"PATH=/bin"},
				"Entrypoint": im.entrypoint,
				"Cmd":        im.cmd,
				"WorkingDir": "/",
			},
			"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layer.desc.Digest}},
		}})
	}
	return writeArchive(dest, []blob{layer}, images)
}

// importImages loads the lab's archive into containerd's k8s.io namespace
// (the one the CRI plugin serves) and unpacks it for the lab's snapshotter.
func (l *Lab) importImages(archive string) error {
	return l.importNamed(archive, []string{PauseImage, TestImage})
}

// importNamed imports archive and checks that containerd lists each of names.
func (l *Lab) importNamed(archive string, names []string) error {
	out, err := exec.Command(l.bin("ctr"), "--address", l.ContainerdSocket(), "--namespace", "k8s.io",
		"images", "import", "--snapshotter", l.Snapshotter, archive).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import %s failed: %w: %s", archive, err, strings.TrimSpace(string(out)))
	}
	out, err = exec.Command(l.bin("ctr"), "--address", l.ContainerdSocket(), "--namespace", "k8s.io",
		"images", "list", "--quiet").CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images list failed: %w: %s", err, strings.TrimSpace(string(out)))
	}
	for _, want := range names {
		if !strings.Contains("\n"+string(out), "\n"+want+"\n") {
			return fmt.Errorf("containerd does not list %s after the import (it lists: %s)", want, strings.TrimSpace(string(out)))
		}
	}
	return nil
}
