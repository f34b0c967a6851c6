package cluster

import (
	"archive/tar"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The image says the architecture its binary is built for (it once said
// amd64 whatever the binary was); a file that is no ELF is refused.
func TestDriverArchIsTheBinarysOwn(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("cannot find the test binary: %v", err)
	}
	arch, err := driverArch(self)
	if err != nil {
		t.Fatalf("driverArch(%s): %v", self, err)
	}
	if arch != runtime.GOARCH {
		t.Fatalf("driverArch(test binary) = %s, the binary is %s", arch, runtime.GOARCH)
	}
	script := filepath.Join(t.TempDir(), "hostdev-dra")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := driverArch(script); err == nil || !strings.Contains(err.Error(), "not an ELF executable") {
		t.Fatalf("a shell script was taken for a driver binary: %v", err)
	}
	// An arm64 binary (a bare ELF64 header, e_machine 183) is an arm64 image
	// on this machine too.
	hdr := make([]byte, 64)
	copy(hdr, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(hdr[16:], 2)   // ET_EXEC
	binary.LittleEndian.PutUint16(hdr[18:], 183) // EM_AARCH64
	binary.LittleEndian.PutUint32(hdr[20:], 1)
	binary.LittleEndian.PutUint16(hdr[52:], 64)
	binary.LittleEndian.PutUint16(hdr[54:], 56)
	binary.LittleEndian.PutUint16(hdr[58:], 64)
	arm := filepath.Join(t.TempDir(), "arm64")
	if err := os.WriteFile(arm, hdr, 0o755); err != nil {
		t.Fatal(err)
	}
	if arch, err := driverArch(arm); err != nil || arch != "arm64" {
		t.Fatalf("driverArch(arm64 header) = %q, %v", arch, err)
	}
	// ... and the image built from it says so in its config.
	dest := filepath.Join(t.TempDir(), "image.tar")
	if err := BuildDriverImage(arm, "hostdev.local/hostdev-dra:test", dest); err != nil {
		t.Fatalf("BuildDriverImage(arm64 header): %v", err)
	}
	if got := imageArchitectures(t, dest); len(got) != 1 || got[0] != "arm64" {
		t.Fatalf("the image's config says architecture %v, the binary is arm64", got)
	}
	// An ELF header cut short is refused, not read past its end.
	cut := filepath.Join(t.TempDir(), "cut")
	if err := os.WriteFile(cut, []byte("\x7fELF\x02\x01"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := driverArch(cut); err == nil {
		t.Fatal("a cut ELF header was accepted")
	}
}

// imageArchitectures reads an OCI layout tar and returns the architecture of
// every image config in it.
func imageArchitectures(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading %s: %v", path, err)
		}
		if !strings.HasPrefix(h.Name, "blobs/") || h.Size > 1<<20 {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Architecture string `json:"architecture"`
			Rootfs       any    `json:"rootfs"`
		}
		if json.Unmarshal(data, &cfg) == nil && cfg.Rootfs != nil {
			out = append(out, cfg.Architecture)
		}
	}
}
