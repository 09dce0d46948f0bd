package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestReleaseScript builds a release binary (amd64 only, to keep the suite quick; the script
// builds arm64 the same way) and checks the checksums and the stamped version.
func TestReleaseScript(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds two binaries")
	}
	t.Parallel()
	dist := t.TempDir()
	cmd := exec.Command("bash", "scripts/release.sh")
	cmd.Env = append(os.Environ(), "DIST="+dist, "VERSION=v9.9.9-test", "ARCHES=amd64")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("release.sh: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dist, "asyncqueue-v9.9.9-test-linux-amd64")); err != nil {
		t.Error(err)
	}
	check := exec.Command("sha256sum", "-c", "SHA256SUMS")
	check.Dir = dist
	if out, err := check.CombinedOutput(); err != nil || strings.Count(string(out), ": OK") != 1 {
		t.Errorf("checksums: %v %s", err, out)
	}
	if runtime.GOARCH == "amd64" {
		v, err := exec.Command(filepath.Join(dist, "asyncqueue-v9.9.9-test-linux-amd64"), "version").Output()
		if err != nil || !strings.HasPrefix(string(v), "asyncqueue v9.9.9-test ") {
			t.Errorf("version: %v %q", err, v)
		}
	}
}
