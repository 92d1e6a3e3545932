package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthpaas/berth/internal/testenv"
)

// TestInstallScript runs scripts/install.sh in a clean container made from
// the fixture Debian image, which has neither systemd nor a Docker Engine:
// --dry-run prints those steps, and the rest (user, directories, binary,
// settings, unit) happens for real. Run twice, it upgrades: the binary is
// replaced, the settings kept.
func TestInstallScript(t *testing.T) {
	testenv.Docker(t)
	bin := binary(t)
	script, err := filepath.Abs("../../scripts/install.sh")
	if err != nil {
		t.Fatal(err)
	}
	// One shell inside the container runs the scenario and prints what
	// the test checks, section by section, errors in line (docker run
	// relays the container's stdout and stderr as two streams, in no fixed
	// order between them).
	scenario := `set -u
exec 2>&1
echo '== bad url'; sh /install.sh --binary /opt/berth --public-url ftp://x --dry-run; echo "exit=$?"
echo '== first'; sh /install.sh --binary /opt/berth --public-url https://berth.example.com --dry-run; echo "exit=$?"
echo '== state'; id berth; stat -c '%a %U' /var/lib/berth; stat -c '%a %U:%G' /etc/berth/berth.env; cat /etc/berth/berth.env
grep -E '^(User|ExecStart|EnvironmentFile)=' /etc/systemd/system/berth.service; /usr/local/bin/berth version | head -n 1
echo 'BERTH_LOG_LEVEL=debug' >> /etc/berth/berth.env
echo '== second'; sh /install.sh --binary /opt/berth --dry-run; echo "exit=$?"
echo '== after'; cat /etc/berth/berth.env`
	out, err := exec.Command("docker", "run", "--rm", "--network", "none",
		"-v", script+":/install.sh:ro", "-v", bin+":/opt/berth:ro",
		"berth-fixture/debian:bookworm", "sh", "-c", scenario).CombinedOutput()
	if err != nil {
		t.Fatalf("docker run: %v\n%s", err, out)
	}
	sections := map[string]string{}
	name := ""
	for _, l := range strings.Split(string(out), "\n") {
		if n, ok := strings.CutPrefix(l, "== "); ok {
			name = n
			continue
		}
		sections[name] += l + "\n"
	}
	t.Logf("install output:\n%s", out)
	expect := func(section string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(sections[section], w) {
				t.Errorf("%s: missing %q in:\n%s", section, w, sections[section])
			}
		}
	}
	expect("bad url", "--public-url must start with http:// or https://", "exit=1")
	expect("first", "would run: env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io", "user berth: created",
		"settings: wrote", "would run: systemctl enable --now berth", "exit=0")
	expect("state", "(docker)", "700 berth", "640 root:berth", "BERTH_DATA_DIR=/var/lib/berth", "BERTH_LISTEN=127.0.0.1:3000",
		"BERTH_PUBLIC_URL=https://berth.example.com", "User=berth", "ExecStart=/usr/local/bin/berth server",
		"EnvironmentFile=/etc/berth/berth.env", "berth ")
	expect("second", "user berth: present", "settings: keeping", "would run: systemctl restart berth", "exit=0")
	expect("after", "BERTH_PUBLIC_URL=https://berth.example.com", "BERTH_LOG_LEVEL=debug")
	if strings.Contains(sections["bad url"], "user berth") {
		t.Error("a refused install changed the system")
	}
}
